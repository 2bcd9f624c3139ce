//! `lopper demo`: the whole trip on one command. Trains the seed network of TF-MOT's
//! pruning example, prunes it three ways (unstructured and 4x1 blocks with polynomial
//! decay 50% -> 90% during fine-tuning, and 50% of the channels removed then fine-tuned),
//! exports each to `.lopper`, and measures accuracy and latency in the runtime.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use lopper_converter::compact::compact;
use lopper_converter::export::{export, ExportOptions};
use lopper_converter::files::write_atomic;
use lopper_converter::ir::Graph;
use lopper_converter::latency::{fill_inputs, measure_interleaved, Latency};
use lopper_converter::pipeline::{prune_graph, ConvertError};
use lopper_converter::prune::criteria::Criterion;
use lopper_converter::prune::mask::Granularity;
use lopper_converter::prune::request::{prune, Method, PruneRequest, PruneSummary};
use lopper_converter::prune::schedule::PolynomialDecay;
use lopper_converter::train::data::{self, Dataset};
use lopper_converter::train::gradual::GradualPruning;
use lopper_converter::train::seed_model::seed_model;
use lopper_converter::train::{evaluate_graph, evaluate_model, train, TrainConfig};
use lopper_runtime::{Model, Session};

use super::train_args::print_epoch;

/// Arguments of `lopper demo`.
#[derive(clap::Args)]
pub struct Args {
    /// The data: digits (embedded, 1,797 8x8 images; a stratified 20% is the test set),
    /// fashion-mnist[:DIR] (its own train and test files), or any data spec of
    /// `lopper train`.
    #[arg(long, default_value = "digits")]
    data: String,
    /// Folder for the .lopper files and report.json.
    #[arg(long, default_value = "lopper-demo")]
    out: PathBuf,
    /// Epochs of dense training (default: 30 on digits, 6 otherwise).
    #[arg(long)]
    epochs: Option<usize>,
    /// Epochs of fine-tuning per pruned variant (default: 15 on digits, 4 otherwise).
    #[arg(long = "fine-tune-epochs")]
    fine_tune_epochs: Option<usize>,
    /// Base learning rate of dense training (SGD with momentum, cosine decay).
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Base learning rate of fine-tuning; pruning takes weights away, and the rest needs
    /// room to move (0.01 loses about half a point more on Fashion-MNIST at 90%).
    #[arg(long = "fine-tune-lr", default_value_t = 0.03)]
    fine_tune_lr: f64,
    /// Timed runs per model for the latency columns.
    #[arg(long, default_value_t = 300)]
    iters: usize,
    /// Seed of the initial weights, the split and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// One exported model and what was measured on it.
#[derive(serde::Serialize)]
struct Row {
    name: String,
    how: String,
    file: PathBuf,
    /// Top-1 on the test set, in the runtime.
    top1: f64,
    /// Top-1 of the same model in the converter's reference executor.
    top1_ir: f64,
    /// Test images whose runtime prediction differs from the IR's.
    prediction_mismatches: usize,
    /// Non-zero weights and biases.
    nonzero_params: usize,
    file_bytes: usize,
    latency: Option<Latency>,
    train_seconds: f64,
}

/// Runs `lopper demo`.
pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let (train_set, test_set, small) = load(&args.data, args.seed)?;
    let epochs = args.epochs.unwrap_or(if small { 30 } else { 6 });
    let fine_tune = args.fine_tune_epochs.unwrap_or(if small { 15 } else { 4 });
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    eprintln!(
        "lopper demo: {} training and {} test images of {}x{}x{}, {} classes",
        train_set.len(),
        test_set.len(),
        train_set.image_shape()[0],
        train_set.image_shape()[1],
        train_set.image_shape()[2],
        train_set.classes()
    );

    let [c, h, w] = train_set.image_shape();
    let mut dense = seed_model([c, h, w], train_set.classes(), args.seed)?;
    eprintln!("1/4 training the dense seed network for {epochs} epochs");
    let dense_config = TrainConfig {
        epochs,
        lr: args.lr,
        seed: args.seed,
        show_progress: true,
        ..TrainConfig::default()
    };
    let t = Instant::now();
    train(
        &mut dense,
        &train_set,
        None,
        &dense_config,
        None,
        &mut print_epoch,
    )?;
    let dense_seconds = t.elapsed().as_secs_f64();

    let mut rows = vec![finish_dense(&dense, &test_set, &args.out, dense_seconds)?];
    let fine_tune_config = TrainConfig {
        epochs: fine_tune,
        lr: args.fine_tune_lr,
        seed: args.seed + 1,
        show_progress: true,
        ..TrainConfig::default()
    };
    let steps =
        (fine_tune * (train_set.len() / fine_tune_config.batch_size.min(train_set.len()))) as i64;
    let maker = VariantMaker {
        dense: &dense,
        train_set: &train_set,
        test_set: &test_set,
        out: &args.out,
        config: &fine_tune_config,
    };
    for (i, (name, granularity, what)) in [
        ("sparse-90", Granularity::Unstructured, "single weights"),
        (
            "block4x1-90",
            Granularity::Block { rows: 4, cols: 1 },
            "4x1 blocks",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        eprintln!(
            "{}/4 {name}: polynomial decay 50% -> 90% over {fine_tune} epochs of fine-tuning",
            i + 2
        );
        let how = format!(
            "{what}, magnitude, polynomial decay 50% -> 90% of conv2 and dense while fine-tuning {fine_tune} epochs"
        );
        let request = request(Method::Weights(granularity), 0.0);
        rows.push(maker.make(name, how, |g, data, config| {
            let mut schedule = PolynomialDecay::new(0.5, 0.9, 0, (steps * 2 / 3).max(1))?;
            schedule.frequency = (steps / 30).max(1);
            let mut hook = GradualPruning::new(schedule, request)?;
            train(g, data, None, config, Some(&mut hook), &mut print_epoch)?;
            Ok(PruneSummary {
                layers: Vec::new(),
                groups: Vec::new(),
            })
        })?);
    }
    eprintln!(
        "4/4 channels-50: 50% of the channels removed (L1), then {fine_tune} epochs of fine-tuning"
    );
    let how = format!("50% of conv channels removed (L1), fine-tuned {fine_tune} epochs");
    rows.push(maker.make("channels-50", how, |g, data, config| {
        let summary = prune(g, &request(Method::Channels, 0.5))?;
        train(g, data, None, config, None, &mut print_epoch)?;
        Ok(summary)
    })?);

    eprintln!(
        "measuring latency: {} interleaved runs per model, batch 1, one thread",
        args.iters
    );
    let models: Vec<Model<'static>> = rows
        .iter()
        .map(|r| Model::open(&r.file).with_context(|| format!("cannot load {}", r.file.display())))
        .collect::<Result<_>>()?;
    let mut sessions = models
        .iter()
        .map(Session::new)
        .collect::<Result<Vec<_>, _>>()?;
    for s in &mut sessions {
        fill_inputs(s)?;
    }
    for (row, latency) in rows
        .iter_mut()
        .zip(measure_interleaved(&mut sessions, 20, args.iters))
    {
        row.latency = Some(latency);
    }

    let report = serde_json::json!({
        "data": args.data,
        "train_images": train_set.len(),
        "test_images": test_set.len(),
        "epochs": epochs,
        "fine_tune_epochs": fine_tune,
        "lr": args.lr,
        "fine_tune_lr": args.fine_tune_lr,
        "seconds": started.elapsed().as_secs_f64(),
        "models": rows,
    });
    let report_path = args.out.join("report.json");
    write_atomic(
        &report_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", report_path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&rows, test_set.name(), test_set.len());
        println!(
            "\nfiles and report.json in {}/ ({:.0} s in all)",
            args.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Makes pruned variants of the trained dense model.
struct VariantMaker<'a> {
    dense: &'a Graph,
    train_set: &'a Dataset,
    test_set: &'a Dataset,
    out: &'a Path,
    config: &'a TrainConfig,
}

impl VariantMaker<'_> {
    /// Prunes and fine-tunes a copy of the dense model with `transform`, exports it as
    /// `name.lopper`, and measures it.
    fn make(
        &self,
        name: &str,
        how: String,
        transform: impl FnOnce(&mut Graph, &Dataset, &TrainConfig) -> Result<PruneSummary, ConvertError>,
    ) -> Result<Row> {
        let started = Instant::now();
        let pruned = prune_graph(
            self.dense.clone(),
            &ExportOptions::default(),
            how.clone(),
            |g| transform(g, self.train_set, self.config),
        )?;
        let seconds = started.elapsed().as_secs_f64();
        finish(
            name,
            how,
            pruned.graph,
            pruned.bytes,
            self.test_set,
            self.out,
            seconds,
        )
    }
}

/// Training and test sets, and whether the set is small (the embedded digits).
fn load(spec: &str, seed: u64) -> Result<(Dataset, Dataset, bool)> {
    let (name, dir) = spec.split_once(':').unwrap_or((spec, ""));
    if name == "fashion-mnist" {
        let dir = if dir.is_empty() {
            Path::new(data::FASHION_MNIST_DIR)
        } else {
            Path::new(dir)
        };
        return Ok((
            data::fashion_mnist(dir, true)?,
            data::fashion_mnist(dir, false)?,
            false,
        ));
    }
    let all = data::open(spec).with_context(|| format!("cannot load --data {spec}"))?;
    let small = all.len() < 10_000;
    let (train, test) = data::split_indices(all.labels(), all.classes(), 0.2, seed)?;
    Ok((
        all.subset(&train, format!("{} (training 80%)", all.name()))?,
        all.subset(&test, format!("{} (test 20%)", all.name()))?,
        small,
    ))
}

/// Magnitude (L1) pruning by `amount`. Weight methods leave the first convolution alone
/// (288 weights on one-channel images, which see the pixels directly); channel pruning
/// thins both convolutions.
fn request(method: Method, amount: f32) -> PruneRequest {
    let exclude = match method {
        Method::Weights(_) => vec!["conv1".into()],
        _ => Vec::new(),
    };
    PruneRequest {
        method,
        criterion: Criterion::L1,
        amount,
        global: false,
        round_to: 1,
        exclude,
        overrides: Default::default(),
        protect_defaults: false,
    }
}

/// Exports the dense model and measures it.
fn finish_dense(dense: &Graph, test: &Dataset, out: &Path, seconds: f64) -> Result<Row> {
    let mut graph = dense.clone();
    compact(&mut graph)?;
    let bytes = export(&graph, &ExportOptions::default())?;
    finish(
        "dense",
        "the seed network, trained".into(),
        graph,
        bytes,
        test,
        out,
        seconds,
    )
}

/// Writes one model, evaluates it in the runtime and in the IR.
fn finish(
    name: &str,
    how: String,
    graph: Graph,
    bytes: Vec<u8>,
    test: &Dataset,
    out: &Path,
    train_seconds: f64,
) -> Result<Row> {
    let file = out.join(format!("{name}.lopper"));
    write_atomic(&file, &bytes).with_context(|| format!("cannot write {}", file.display()))?;
    let model = Model::from_vec(bytes.clone())?;
    let runtime = evaluate_model(&model, test, true)?;
    let ir = evaluate_graph(&graph, test, 256, false)?;
    let mismatches = runtime
        .predictions
        .iter()
        .zip(&ir.predictions)
        .filter(|(a, b)| a != b)
        .count();
    Ok(Row {
        name: name.into(),
        how,
        file,
        top1: runtime.top1,
        top1_ir: ir.top1,
        prediction_mismatches: mismatches,
        nonzero_params: nonzero_params(&graph)?,
        file_bytes: bytes.len(),
        latency: None,
        train_seconds,
    })
}

/// Non-zero entries of the constants layers read.
fn nonzero_params(graph: &Graph) -> Result<usize> {
    let mut count = 0;
    for node in &graph.nodes {
        for &v in node.inputs.iter().skip(1) {
            if let Some(t) = graph.constant_of(v) {
                count += t
                    .ne(0f32)?
                    .to_dtype(candle_core::DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()? as usize;
            }
        }
    }
    Ok(count)
}

fn print_table(rows: &[Row], data: &str, test_images: usize) {
    let dense = &rows[0];
    let dense_p50 = dense.latency.map_or(f64::NAN, |l| l.p50_ms);
    println!(
        "\n{data}: test top-1 in the runtime; latency batch 1, one thread, interleaved runs\n"
    );
    println!(
        "{:<12} {:>8} {:>8} {:>10} {:>10} {:>10} {:>9}",
        "model", "top-1", "vs dense", "params", "file", "p50 ms", "speed-up"
    );
    for r in rows {
        let p50 = r.latency.map_or(f64::NAN, |l| l.p50_ms);
        println!(
            "{:<12} {:>7.2}% {:>+7.2} {:>10} {:>10} {:>10.4} {:>8.2}x",
            r.name,
            r.top1 * 100.0,
            (r.top1 - dense.top1) * 100.0,
            r.nonzero_params,
            r.file_bytes,
            p50,
            dense_p50 / p50
        );
    }
    let mismatches: usize = rows.iter().map(|r| r.prediction_mismatches).sum();
    println!(
        "\nruntime vs the converter's reference executor: {mismatches} different predictions over {} test images x {} models",
        test_images,
        rows.len()
    );
}
