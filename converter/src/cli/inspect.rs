//! `lopper inspect`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lopper_converter::import::import;
use lopper_converter::inspect::{ir_layers, lopper_layers, totals, Layer};

/// Arguments of `lopper inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// An .onnx or .lopper file.
    file: PathBuf,
    /// Print JSON (one object with `layers` and `totals`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    shapes: super::ShapeArgs,
}

/// Runs `lopper inspect`.
pub fn run(args: Args) -> Result<()> {
    let is_onnx = args
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let layers = if is_onnx {
        let model = lopper_converter::onnx::load(&args.file)?;
        let options = args.shapes.import_options();
        let graph = import(&model, &options)
            .with_context(|| format!("cannot import {}", args.file.display()))?;
        ir_layers(&graph)
    } else {
        let model = lopper_runtime::Model::open(&args.file)
            .with_context(|| format!("cannot load {}", args.file.display()))?;
        lopper_layers(&model)
    };
    let total = totals(&layers);
    if args.json {
        let out = serde_json::json!({ "file": args.file, "layers": layers, "totals": total });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print_table(&layers);
    println!(
        "total: {} layers, {} parameters, {:.2} M MACs, {} weight bytes",
        layers.len(),
        total.params,
        total.macs as f64 / 1e6,
        total.bytes
    );
    Ok(())
}

fn print_table(layers: &[Layer]) {
    let name_width = layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    println!(
        "{:<name_width$} {:<18} {:<20} {:>10} {:>12} {:<12} {:>8} {:>10}",
        "name", "op", "output", "params", "MACs", "layout", "sparsity", "bytes"
    );
    for l in layers {
        let mut name = l.name.clone();
        if name.len() > name_width {
            name = format!("…{}", &name[name.len() - name_width + 1..]);
        }
        println!(
            "{:<name_width$} {:<18} {:<20} {:>10} {:>12} {:<12} {:>7.1}% {:>10}",
            name,
            l.op,
            format!("{:?}", l.output),
            l.params,
            l.macs,
            l.layout,
            l.sparsity * 100.0,
            l.bytes
        );
    }
}
