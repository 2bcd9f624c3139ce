//! `lopper prune`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use lopper_converter::files::write_atomic;
use lopper_converter::pipeline::{prune_file, prune_graph, ConvertOptions};
use lopper_converter::train::evaluate_model;

use super::train_args::print_epoch;

use lopper_converter::prune::criteria::Criterion;
use lopper_converter::prune::mask::Granularity;
use lopper_converter::prune::request::{Method, PruneRequest};
use lopper_converter::train::fine_tune::{FineTuneSchedule, FineTuning};

/// Arguments of `lopper prune`.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model.
    input: PathBuf,
    /// Where to write the pruned .lopper file.
    #[arg(short, long)]
    output: PathBuf,
    /// What to remove: magnitude (single weights), block:RxC (e.g. block:4x1), nm:N:M
    /// (e.g. nm:2:4), channel (convolution filters, removed for real), neuron (linear
    /// layer outputs, removed for real), layer (whole residual blocks and shape-keeping
    /// conv units; --channels R is the fraction of candidates removed).
    #[arg(long, value_name = "METHOD")]
    method: String,
    /// Importance: l1, l2, random, bn-scale (channels only: the BatchNorm scale after
    /// each layer, as in network slimming), taylor (|w| times the RMS loss gradient on
    /// calibration batches of --data; one-shot and iterative schedules).
    #[arg(long, default_value = "l1")]
    criterion: String,
    /// Seed of the random criterion.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of weights removed, for magnitude and block (N:M sets its own).
    #[arg(long, value_name = "S")]
    sparsity: Option<f32>,
    /// Fraction of channels (or neurons) removed.
    #[arg(long, value_name = "R")]
    channels: Option<f32>,
    /// Fraction of multiply-accumulates to remove: the channel fraction is searched.
    #[arg(long = "target-macs", value_name = "R")]
    target_macs: Option<f32>,
    /// layer: the same fraction in every layer; global: one threshold over all layers.
    #[arg(long, default_value = "layer")]
    scope: String,
    /// Keep channel counts a multiple of this (4, 8, 16 suit SIMD kernels).
    #[arg(long = "round-to", default_value_t = 1)]
    round_to: usize,
    /// Layers (node names, see `lopper inspect`) to leave alone.
    #[arg(long, value_name = "NAME")]
    exclude: Vec<String>,
    /// Also prune the first layer and the classifier, which are protected by default.
    #[arg(long = "no-protect")]
    no_protect: bool,
    /// TOML recipe: `exclude = ["name", ...]` and a `[sparsity]` table of per-layer
    /// fractions (weight methods).
    #[arg(long, value_name = "FILE")]
    recipe: Option<PathBuf>,
    /// Write the pruning report as JSON here (it is also stored in the .lopper file).
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Also write the pruned model as ONNX, physically smaller, for other runtimes.
    #[arg(long = "emit-onnx", value_name = "OUT.onnx")]
    emit_onnx: Option<PathBuf>,
    #[command(flatten)]
    export: super::ExportArgs,
    #[command(flatten)]
    shapes: super::ShapeArgs,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// With --data: how pruning meets training. oneshot: prune, then fine-tune;
    /// polynomial: prune gradually while fine-tuning, TF-MOT's polynomial decay from
    /// --initial-sparsity to the target (weight methods); iterative:N: N rounds of prune
    /// then fine-tune, each removing the same share of what is left.
    #[arg(long, default_value = "oneshot")]
    schedule: String,
    /// Sparsity at the start of a polynomial schedule.
    #[arg(long = "initial-sparsity", default_value_t = 0.5)]
    initial_sparsity: f32,
    /// Fine-tuning on --data (epochs default to 2; per round for iterative schedules).
    #[command(flatten)]
    train: super::train_args::TrainArgs,
}

/// A recipe file.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Recipe {
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    sparsity: HashMap<String, f32>,
}

fn method(s: &str) -> Result<Method> {
    let number = |v: &str| -> Result<usize> {
        v.parse::<usize>()
            .with_context(|| format!("'{v}' in --method {s} is not a number"))
    };
    Ok(match s.split(':').collect::<Vec<_>>().as_slice() {
        ["magnitude"] => Method::Weights(Granularity::Unstructured),
        ["channel"] => Method::Channels,
        ["neuron"] => Method::Neurons,
        ["layer"] => Method::Layers,
        ["block", dims] => {
            let (r, c) = dims
                .split_once('x')
                .with_context(|| format!("--method {s}: blocks are written RxC, e.g. block:4x1"))?;
            Method::Weights(Granularity::Block {
                rows: number(r)?,
                cols: number(c)?,
            })
        }
        ["nm", n, m] => Method::Weights(Granularity::NM {
            n: number(n)?,
            m: number(m)?,
        }),
        _ => bail!(
            "unknown --method {s}: use magnitude, block:RxC, nm:N:M, channel, neuron or layer"
        ),
    })
}

fn criterion(s: &str, seed: u64) -> Result<Criterion> {
    Ok(match s {
        "l1" => Criterion::L1,
        "l2" => Criterion::L2,
        "random" => Criterion::Random { seed },
        "bn-scale" => Criterion::BnScale,
        "taylor" => Criterion::Taylor,
        other => bail!("unknown --criterion {other}: use l1, l2, random, bn-scale or taylor"),
    })
}

/// Runs `lopper prune`.
pub fn run(args: Args) -> Result<()> {
    let method = method(&args.method)?;
    let criterion = criterion(&args.criterion, args.seed)?;
    let global = match args.scope.as_str() {
        "layer" => false,
        "global" => true,
        other => bail!("unknown --scope {other}: use layer or global"),
    };
    let recipe: Recipe = match &args.recipe {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{} is not a valid recipe", path.display()))?
        }
        None => Recipe::default(),
    };
    let structural = matches!(method, Method::Channels | Method::Neurons | Method::Layers);
    let amount = match (method, args.sparsity, args.channels, args.target_macs) {
        (Method::Weights(Granularity::NM { n, m }), None, None, None) => {
            1.0 - n as f32 / m.max(1) as f32
        }
        (Method::Weights(_), Some(s), None, None) => s,
        (Method::Weights(_), ..) => {
            bail!("weight methods take --sparsity S (the fraction of weights removed)")
        }
        (_, None, Some(r), None) => r,
        (_, None, None, Some(_)) => 0.0,
        _ => bail!(
            "{} takes --channels R or --target-macs R (fractions removed)",
            args.method
        ),
    };
    let mut exclude = args.exclude.clone();
    exclude.extend(recipe.exclude);
    let mut request = PruneRequest {
        method,
        criterion,
        amount,
        global,
        round_to: args.round_to,
        exclude,
        overrides: recipe.sparsity,
        protect_defaults: !args.no_protect,
    };
    let options = ConvertOptions {
        import: args.shapes.import_options(),
        export: args.export.options(),
    };
    if let Some(target) = args.target_macs {
        if !structural {
            bail!("--target-macs needs a structural method (channel or neuron): zeroed weights do not remove MACs from dense kernels");
        }
        request.amount =
            lopper_converter::pipeline::ratio_for_macs(&args.input, &options, &request, target)
                .with_context(|| format!("cannot reach {}% fewer MACs", target * 100.0))?;
    }
    let description = format!(
        "{} pruning, {} criterion, {:.0}% {}{}",
        args.method,
        criterion.name(),
        request.amount * 100.0,
        if structural {
            "of channels"
        } else {
            "of weights"
        },
        if global { ", global" } else { " per layer" }
    );
    let pruned = match args.train.load()? {
        None if criterion == Criterion::Taylor => {
            bail!("the taylor criterion needs calibration data: give it with --data")
        }
        None if args.train.epochs.is_some() || args.schedule != "oneshot" => {
            bail!("--epochs and --schedule fine-tune the pruned model: give the training data with --data")
        }
        None => prune_file(&args.input, &options, &request, description)
            .with_context(|| format!("cannot prune {}", args.input.display()))?,
        Some((train, validation)) => {
            let graph = super::import_onnx(&args.input, &args.shapes)?;
            let tuning = FineTuning {
                train: &train,
                validation: &validation,
                config: &args.train.config(2)?,
                schedule: FineTuneSchedule::parse(&args.schedule, args.initial_sparsity)?,
                on_epoch: &print_epoch,
            };
            let mut accuracy = None;
            let mut pruned = prune_graph(graph, &options.export, description, |g| {
                let (summary, a) = tuning.run(g, &request)?;
                accuracy = Some(a);
                Ok(summary)
            })
            .with_context(|| format!("cannot prune {}", args.input.display()))?;
            if let Some(mut a) = accuracy {
                let model = lopper_runtime::Model::from_vec(pruned.bytes.clone())?;
                a.runtime_top1 = evaluate_model(&model, &validation, true)?.top1;
                pruned.report.accuracy = Some(a);
            }
            pruned
        }
    };
    write_atomic(&args.output, &pruned.bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let json = serde_json::to_string_pretty(&pruned.report)?;
    if let Some(path) = &args.report {
        write_atomic(path, json.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.emit_onnx {
        lopper_converter::export_onnx::write_onnx(&pruned.graph, path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", pruned.report.table());
        println!("wrote {}", args.output.display());
    }
    Ok(())
}
