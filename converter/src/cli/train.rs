//! `lopper train`: trains the built-in seed network, or continues training an ONNX model,
//! on a data set, and writes `.onnx` or `.lopper`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lopper_converter::compact::compact;
use lopper_converter::export::{export, ExportOptions};
use lopper_converter::files::write_atomic;
use lopper_converter::ir::Graph;
use lopper_converter::train::data::check_input_shape;
use lopper_converter::train::seed_model::seed_model;
use lopper_converter::train::{evaluate_graph, train, TrainReport};

use super::train_args::{print_epoch, TrainArgs};

/// Arguments of `lopper train`.
#[derive(clap::Args)]
pub struct Args {
    /// An ONNX classifier to continue training; without it, the built-in seed network
    /// (Conv 32 3x3, MaxPool, Conv 64 3x3, MaxPool, Dense) sized for the data.
    model: Option<PathBuf>,
    /// Where to write the trained model: .onnx (trainable again) or .lopper (for the
    /// runtime).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    train: TrainArgs,
    /// Seed of the seed network's initial weights.
    #[arg(long = "init-seed", default_value_t = 0)]
    init_seed: u64,
    #[command(flatten)]
    shapes: super::ShapeArgs,
    /// Print the training report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `lopper train`.
pub fn run(args: Args) -> Result<()> {
    let format = OutputFormat::of(&args.output)?;
    let Some((data, validation)) = args.train.load()? else {
        bail!("lopper train needs --data SPEC (for example --data digits)");
    };
    let mut graph = match &args.model {
        Some(path) => super::import_onnx(path, &args.shapes)?,
        None => {
            let [c, h, w] = data.image_shape();
            seed_model([c, h, w], data.classes(), args.init_seed)?
        }
    };
    if let Some(&input) = graph.inputs.first() {
        check_input_shape(&data, graph.shape(input))?;
    }
    let config = args.train.config(10)?;
    eprintln!(
        "training on {} images ({} for validation), {} epochs of batch {}",
        data.len(),
        validation.len(),
        config.epochs,
        config.batch_size
    );
    let report = train(
        &mut graph,
        &data,
        Some(&validation),
        &config,
        None,
        &mut print_epoch,
    )?;
    let metrics = evaluate_graph(&graph, &validation, 256, true)?;
    format.write(&graph, &args.output)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "training": report, "validation": metrics, "output": args.output })
        );
    } else {
        print_summary(&report, metrics.top1, &args.output);
    }
    Ok(())
}

fn print_summary(report: &TrainReport, top1: f64, output: &Path) {
    println!(
        "trained {} steps in {:.1} s{}; validation top-1 {:.2}%; wrote {}",
        report.steps - report.resumed_from,
        report.seconds,
        if report.resumed_from > 0 {
            format!(" (resumed at step {})", report.resumed_from)
        } else {
            String::new()
        },
        top1 * 100.0,
        output.display()
    );
}

/// What to write, from the output's extension.
enum OutputFormat {
    Onnx,
    Lopper,
}

impl OutputFormat {
    fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("onnx") => Ok(OutputFormat::Onnx),
            Some("lopper") => Ok(OutputFormat::Lopper),
            _ => bail!(
                "{}: the output must end in .onnx or .lopper",
                path.display()
            ),
        }
    }

    fn write(&self, graph: &Graph, path: &Path) -> Result<()> {
        match self {
            OutputFormat::Onnx => lopper_converter::export_onnx::write_onnx(graph, path)
                .with_context(|| format!("cannot write {}", path.display())),
            OutputFormat::Lopper => {
                let mut graph = graph.clone();
                compact(&mut graph)?;
                let bytes = export(&graph, &ExportOptions::default())?;
                write_atomic(path, &bytes)
                    .with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }
}
