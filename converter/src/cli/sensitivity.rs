//! `lopper sensitivity`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use lopper_converter::files::write_atomic;
use lopper_converter::import::import;
use lopper_converter::ir::Graph;
use lopper_converter::npy;
use lopper_converter::onnx::load;
use lopper_converter::prune::criteria::Criterion;
use lopper_converter::prune::mask::Granularity;
use lopper_converter::prune::request::Method;
use lopper_converter::prune::sensitivity::{
    allocate, analyse_on_data, analyse_with_progress, random_inputs, Allocation, Sensitivity,
    Target,
};
use lopper_converter::train::data;

/// Arguments of `lopper sensitivity`.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model.
    input: PathBuf,
    /// What to remove: magnitude (single weights), block:RxC (e.g. block:4x1), channel
    /// (convolution filters and the layers tied to them), neuron (linear layer outputs).
    #[arg(long, default_value = "magnitude")]
    method: String,
    /// Importance: l1, l2, random, bn-scale (channels only).
    #[arg(long, default_value = "l1")]
    criterion: String,
    /// Seed of the random criterion and of the random calibration inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fractions removed to try in each layer alone, comma-separated, each in [0, 1).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.3,0.5,0.7,0.9",
        allow_negative_numbers = true
    )]
    grid: Vec<f32>,
    /// Number of random calibration inputs (uniform in [-1, 1), from --seed).
    #[arg(long = "inputs", value_name = "N", default_value_t = 4)]
    count: usize,
    /// Calibration data instead of random inputs, as NAME=FILE.npy (repeat for each input;
    /// the name may be omitted for a model with one input). The first dimension of the
    /// array holds one or more samples: an input of shape [1, 3, 48, 192] takes arrays of
    /// shape [K, 3, 48, 192], K samples.
    #[arg(long = "input", value_name = "NAME=FILE.npy", conflicts_with = "count")]
    data: Vec<String>,
    /// A labelled data set (digits, fashion-mnist-test, folder:DIR, ...): measure the top-1
    /// accuracy lost instead of the output distance.
    #[arg(long = "data", value_name = "SPEC", conflicts_with_all = ["count", "data"])]
    labelled: Option<String>,
    /// Images of --data to evaluate on (a seeded random subset; 0: all).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    shapes: super::ShapeArgs,
    /// Allocate per-layer amounts that remove --budget of the model's params or macs,
    /// with the least predicted damage.
    #[arg(long, value_name = "params|macs", requires = "budget")]
    target: Option<String>,
    /// Fraction of the --target to remove, in [0, 1).
    #[arg(long, value_name = "R", requires = "target")]
    budget: Option<f32>,
    /// Write the allocation as a `lopper prune --recipe` file (weight methods).
    #[arg(long = "recipe-out", value_name = "FILE.toml", requires = "target")]
    recipe_out: Option<PathBuf>,
    /// Print the curves (and the allocation) as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

fn method(s: &str) -> Result<Method> {
    Ok(match s.split(':').collect::<Vec<_>>().as_slice() {
        ["magnitude"] => Method::Weights(Granularity::Unstructured),
        ["channel"] => Method::Channels,
        ["neuron"] => Method::Neurons,
        ["block", dims] => {
            let number = |v: &str| -> Result<usize> {
                v.parse()
                    .with_context(|| format!("'{v}' in --method {s} is not a number"))
            };
            let (r, c) = dims
                .split_once('x')
                .with_context(|| format!("--method {s}: blocks are written RxC, e.g. block:4x1"))?;
            Method::Weights(Granularity::Block {
                rows: number(r)?,
                cols: number(c)?,
            })
        }
        _ => bail!("unknown --method {s}: use magnitude, block:RxC, channel or neuron (N:M has no amount to sweep)"),
    })
}

fn criterion(s: &str, seed: u64) -> Result<Criterion> {
    Ok(match s {
        "l1" => Criterion::L1,
        "l2" => Criterion::L2,
        "random" => Criterion::Random { seed },
        "bn-scale" => Criterion::BnScale,
        other => bail!("unknown --criterion {other}: use l1, l2, random or bn-scale"),
    })
}

/// Calibration samples from `NAME=FILE.npy` specs: each array is split along its first
/// dimension into samples of the input's shape.
fn calibration(graph: &Graph, specs: &[String]) -> Result<Vec<Vec<Tensor>>> {
    let names: Vec<&str> = graph
        .inputs
        .iter()
        .map(|&v| graph.values[v].name.as_str())
        .collect();
    let listing = || {
        graph
            .inputs
            .iter()
            .map(|&v| format!("'{}' {:?}", graph.values[v].name, graph.shape(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut per_input: Vec<Option<Vec<Tensor>>> = vec![None; names.len()];
    for spec in specs {
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) => (n, f),
            None if names.len() == 1 => (names[0], spec.as_str()),
            None => bail!(
                "--input {spec}: name the input (NAME=FILE.npy); the model has {}",
                listing()
            ),
        };
        let index = names
            .iter()
            .position(|n| *n == name)
            .with_context(|| format!("no input is named '{name}'; the model has {}", listing()))?;
        let shape = graph.shape(graph.inputs[index]);
        let (values, dims) = npy::read(file.as_ref())?;
        let per_sample: usize = shape.iter().product();
        let fits = match (shape.split_first(), dims.split_first()) {
            (Some((&n, rest)), Some((&k, file_rest))) => {
                rest == file_rest && n > 0 && k > 0 && k % n == 0
            }
            (None, None) => true,
            _ => false,
        };
        if !fits || per_sample == 0 {
            bail!(
                "{file}: shape {dims:?} does not hold samples of input '{name}' {shape:?} (the first dimension must be a multiple of {})",
                shape.first().copied().unwrap_or(1)
            );
        }
        let samples = values
            .chunks(per_sample)
            .map(|chunk| Tensor::from_vec(chunk.to_vec(), shape, &Device::Cpu))
            .collect::<candle_core::Result<Vec<_>>>()?;
        per_input[index] = Some(samples);
    }
    let mut columns = Vec::with_capacity(names.len());
    for (i, samples) in per_input.into_iter().enumerate() {
        let Some(samples) = samples else {
            bail!(
                "input '{}' {:?} has no calibration data (--input {}=FILE.npy)",
                names[i],
                graph.shape(graph.inputs[i]),
                names[i]
            );
        };
        columns.push(samples);
    }
    let count = columns.first().map_or(0, Vec::len);
    if columns.iter().any(|c| c.len() != count) {
        bail!(
            "the --input files hold different numbers of samples: {}",
            names
                .iter()
                .zip(&columns)
                .map(|(n, c)| format!("'{n}' {}", c.len()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok((0..count)
        .map(|s| columns.iter().map(|c| c[s].clone()).collect())
        .collect())
}

/// The curves as a terminal table: one row per layer, one metric column per amount.
fn table(s: &Sensitivity) -> String {
    let names: Vec<String> = s
        .layers
        .iter()
        .map(|c| match c.members.len() {
            0 | 1 => c.name.clone(),
            n => format!("{} (+{} tied)", c.name, n - 1),
        })
        .collect();
    let width = names.iter().map(String::len).max().unwrap_or(0).max(5);
    let mut out = format!(
        "{} pruning, {} criterion: {} (over {} inputs) with each layer pruned alone\n",
        s.method,
        s.criterion,
        s.metric.describe(),
        s.inputs
    );
    let _ = write!(out, "{:<width$} {:>10} {:>12}", "layer", "params", "MACs");
    for amount in &s.grid {
        let _ = write!(out, " {:>8}", format!("{:.0}%", amount * 100.0));
    }
    out.push('\n');
    for (name, c) in names.iter().zip(&s.layers) {
        let _ = write!(out, "{name:<width$} {:>10} {:>12}", c.params, c.macs);
        for p in &c.points {
            let _ = write!(out, " {:>8.4}", p.metric);
        }
        out.push('\n');
    }
    out
}

/// The allocation as a terminal table.
fn allocation_table(a: &Allocation, s: &Sensitivity, target: Target, budget: f32) -> String {
    let width = a.sparsity.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = format!(
        "allocation removing at least {:.1}% of the {} (predicted: {:.1}% removed, summed {} {:.4}):\n",
        budget * 100.0,
        target.name(),
        a.removed * 100.0,
        s.metric.short(),
        a.predicted
    );
    for (name, amount) in &a.sparsity {
        let _ = writeln!(out, "  {name:<width$} {:>5.1}%", amount * 100.0);
    }
    out
}

/// The allocation as a `lopper prune --recipe` file.
fn recipe(a: &Allocation, s: &Sensitivity, target: Target, model: &str) -> String {
    let mut out = format!(
        "# Written by `lopper sensitivity`: {} pruning, {} criterion, {:.1}% of the {} removed\n\
         # (predicted summed {} {:.4}). Apply with:\n\
         #   lopper prune {model} -o OUT.lopper --method {} --criterion {} --sparsity 0 --no-protect --recipe THIS.toml\n\
         [sparsity]\n",
        s.method,
        s.criterion,
        a.removed * 100.0,
        target.name(),
        s.metric.short(),
        a.predicted,
        s.method,
        s.criterion,
    );
    for (name, amount) in &a.sparsity {
        let _ = writeln!(out, "{} = {amount:?}", toml::Value::String(name.clone()));
    }
    out
}

/// The curves, with the allocation when one was asked for.
#[derive(serde::Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    sensitivity: &'a Sensitivity,
    #[serde(skip_serializing_if = "Option::is_none")]
    allocation: Option<&'a Allocation>,
}

/// Runs `lopper sensitivity`.
pub fn run(args: Args) -> Result<()> {
    let method = method(&args.method)?;
    let criterion = criterion(&args.criterion, args.seed)?;
    let target = match args.target.as_deref() {
        None => None,
        Some("params") => Some(Target::Params),
        Some("macs") => Some(Target::Macs),
        Some(other) => bail!("unknown --target {other}: use params or macs"),
    };
    if let Some(budget) = args.budget.filter(|b| !(0.0..1.0).contains(b)) {
        bail!("--budget {budget} is outside [0, 1): it is the fraction of the --target removed");
    }
    let structural = matches!(method, Method::Channels | Method::Neurons);
    if structural && args.recipe_out.is_some() {
        bail!(
            "--recipe-out needs a weight method (magnitude or block): `lopper prune --recipe` applies per-layer [sparsity] to weight methods, and --channels takes one ratio for every group"
        );
    }
    let model = load(&args.input)?;
    let graph = import(&model, &args.shapes.import_options())
        .with_context(|| format!("cannot import {}", args.input.display()))?;
    let start = Instant::now();
    let progress = |i: usize, n: usize, name: &str| eprintln!("layer {i}/{n}: {name}");
    let sensitivity = if let Some(spec) = &args.labelled {
        let all = data::open(spec).with_context(|| format!("cannot load --data {spec}"))?;
        let take = if args.limit == 0 {
            all.len()
        } else {
            args.limit.min(all.len())
        };
        let mut order = data::shuffled_indices(all.len(), args.seed, 0);
        order.truncate(take);
        order.sort_unstable();
        let subset = all.subset(&order, format!("{} ({take} images)", all.name()))?;
        analyse_on_data(&graph, method, criterion, &args.grid, &subset, progress)
    } else {
        let inputs = if args.data.is_empty() {
            if args.count == 0 {
                bail!("--inputs must be at least 1");
            }
            random_inputs(&graph, args.count, args.seed)?
        } else {
            calibration(&graph, &args.data)?
        };
        analyse_with_progress(&graph, method, criterion, &args.grid, &inputs, progress)
    }
    .with_context(|| format!("cannot analyse {}", args.input.display()))?;
    eprintln!(
        "{} layers x {} amounts x {} inputs in {:.1} s",
        sensitivity.layers.len(),
        sensitivity.grid.len(),
        sensitivity.inputs,
        start.elapsed().as_secs_f64()
    );
    let allocation = match (target, args.budget) {
        (Some(target), Some(budget)) => {
            Some((allocate(&sensitivity, target, budget)?, target, budget))
        }
        _ => None,
    };
    if let (Some((a, target, _)), Some(path)) = (&allocation, &args.recipe_out) {
        let text = recipe(a, &sensitivity, *target, &args.input.display().to_string());
        write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        let report = Report {
            sensitivity: &sensitivity,
            allocation: allocation.as_ref().map(|(a, ..)| a),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&sensitivity));
        if let Some((a, target, budget)) = &allocation {
            println!();
            print!("{}", allocation_table(a, &sensitivity, *target, *budget));
            if structural {
                println!("(advisory: `lopper prune --channels` takes one ratio for every group)");
            }
        }
        if let Some(path) = &args.recipe_out {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
