//! Command-line parsing and the subcommands.

mod bench;
mod convert;
mod demo;
mod eval;
mod inspect;
mod prune;
mod run;
mod sensitivity;
mod train;
mod train_args;

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Prunes neural networks and ships them to phones and small boards.
#[derive(Parser)]
#[command(name = "lopper", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert an ONNX model to a .lopper file (import, compact, export).
    Convert(convert::Args),
    /// Show the layers of an .onnx or .lopper file: op, shapes, parameters, MACs, layout, bytes.
    Inspect(inspect::Args),
    /// Run a .lopper model on .npy inputs and write its outputs as .npy files.
    Run(run::Args),
    /// Prune an ONNX model (weights, blocks, N:M, channels or neurons) and write a .lopper file.
    Prune(Box<prune::Args>),
    /// Prune each layer alone over a grid of amounts and measure the damage; optionally
    /// allocate per-layer sparsities that meet a global parameter or MAC budget.
    Sensitivity(sensitivity::Args),
    /// Train a classifier (the built-in seed network, or an ONNX model) on a data set.
    Train(train::Args),
    /// Accuracy of an .onnx or .lopper classifier on a data set.
    Eval(eval::Args),
    /// Latency of a .lopper model on this machine (min / p50 / p90 / max), optionally
    /// interleaved with a second model (--vs) for a fair ratio.
    Bench(bench::Args),
    /// The whole trip on the embedded digits: train a small CNN, prune it three ways with
    /// fine-tuning, export, and compare accuracy, size and latency in the runtime.
    Demo(demo::Args),
}

/// Parses the command line and runs the subcommand.
pub fn run() -> Result<()> {
    match Cli::parse().command {
        Command::Convert(args) => convert::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Run(args) => run::run(args),
        Command::Prune(args) => prune::run(*args),
        Command::Sensitivity(args) => sensitivity::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
    }
}

/// How to fix the open dimensions of an ONNX model's inputs; shared by every subcommand
/// that reads ONNX.
#[derive(clap::Args)]
pub struct ShapeArgs {
    /// Size of a symbolic batch dimension (for .onnx models).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Shape of an input the .onnx file leaves open, e.g. x=1,3,224,224.
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...", value_parser = parse_shape)]
    pub input_shapes: Vec<(String, Vec<usize>)>,
}

impl ShapeArgs {
    /// The import options these arguments ask for.
    pub fn import_options(&self) -> lopper_converter::import::ImportOptions {
        lopper_converter::import::ImportOptions {
            batch: self.batch,
            input_shapes: self.input_shapes.iter().cloned().collect(),
            ..Default::default()
        }
    }

    /// Whether any shape option was given.
    pub fn given(&self) -> bool {
        self.batch != 1 || !self.input_shapes.is_empty()
    }
}

/// Parses `NAME=D0,D1,...`.
pub fn parse_shape(s: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = s.split_once('=').ok_or("expected NAME=D0,D1,...")?;
    let dims = dims
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| format!("'{d}' is not a dimension"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), dims))
}

/// Whether a path names an ONNX file (by its extension).
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Reads and imports an ONNX file, naming it in errors.
pub fn import_onnx(path: &Path, shapes: &ShapeArgs) -> Result<lopper_converter::ir::Graph> {
    let model = lopper_converter::onnx::load(path)?;
    lopper_converter::import::import(&model, &shapes.import_options())
        .with_context(|| format!("cannot import {}", path.display()))
}

/// How weights are written: shared by `convert` and `prune`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Choose each layer's layout (dense, CSR, BSR, 2:4) by timing its product on this
    /// machine instead of the built-in cost model; for the device you will run on, run
    /// it there.
    #[arg(long)]
    pub tune: bool,
    /// What the layout choice optimises: speed (never a sparse layout slower than dense)
    /// or size (the fewest bytes).
    #[arg(long, default_value = "speed", value_parser = ["speed", "size"])]
    pub prefer: String,
    /// Store convolution and linear weights as f16 (half the bytes).
    #[arg(long)]
    pub f16: bool,
}

impl ExportArgs {
    /// The export options these flags ask for.
    pub fn options(&self) -> lopper_converter::export::ExportOptions {
        use lopper_converter::prune::layout::Objective;
        use lopper_runtime::graph::Storage;
        lopper_converter::export::ExportOptions {
            storage: if self.f16 { Storage::F16 } else { Storage::F32 },
            tune: self.tune,
            objective: if self.prefer == "size" {
                Objective::Size
            } else {
                Objective::Speed
            },
            ..Default::default()
        }
    }
}
