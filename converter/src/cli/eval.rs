//! `lopper eval`: accuracy of a classifier on a data set, as an ONNX model in the IR or
//! as a `.lopper` file in the runtime.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lopper_converter::train::data;
use lopper_converter::train::{evaluate_graph, evaluate_model, Metrics};

/// Arguments of `lopper eval`.
#[derive(clap::Args)]
pub struct Args {
    /// The model: .onnx (run by the converter's reference executor) or .lopper (run by
    /// the runtime).
    model: PathBuf,
    /// The data: digits, fashion-mnist[:DIR], fashion-mnist-test, idx:IMAGES,LABELS,
    /// folder:DIR, npy:INPUTS,LABELS.
    #[arg(long, value_name = "SPEC")]
    data: String,
    /// Images per batch for ONNX models.
    #[arg(long = "batch-size", default_value_t = 256)]
    batch_size: usize,
    #[command(flatten)]
    shapes: super::ShapeArgs,
    /// Print the metrics as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `lopper eval`.
pub fn run(args: Args) -> Result<()> {
    let data =
        data::open(&args.data).with_context(|| format!("cannot load --data {}", args.data))?;
    let metrics: Metrics = if super::is_onnx(&args.model) {
        let graph = super::import_onnx(&args.model, &args.shapes)?;
        evaluate_graph(&graph, &data, args.batch_size, true)
    } else {
        let model = lopper_runtime::Model::open(&args.model)
            .with_context(|| format!("cannot load {}", args.model.display()))?;
        evaluate_model(&model, &data, true)
    }
    .with_context(|| {
        format!(
            "cannot evaluate {} on {}",
            args.model.display(),
            data.name()
        )
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        println!(
            "{}: {} images of {}: top-1 {:.2}%, top-5 {:.2}%, loss {:.4}",
            args.model.display(),
            metrics.count,
            data.name(),
            metrics.top1 * 100.0,
            metrics.top5 * 100.0,
            metrics.loss
        );
    }
    Ok(())
}
