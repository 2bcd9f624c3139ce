//! `lopper convert`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use lopper_converter::files::write_atomic;
use lopper_converter::inspect::{lopper_layers, totals};
use lopper_converter::pipeline::{convert_file, ConvertOptions};

/// Arguments of `lopper convert`.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model.
    input: PathBuf,
    /// Where to write the .lopper file (written to a temporary name, then renamed).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    export: super::ExportArgs,
    #[command(flatten)]
    shapes: super::ShapeArgs,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `lopper convert`.
pub fn run(args: Args) -> Result<()> {
    let options = ConvertOptions {
        import: args.shapes.import_options(),
        export: args.export.options(),
    };
    let converted = convert_file(&args.input, &options)
        .with_context(|| format!("cannot convert {}", args.input.display()))?;
    write_atomic(&args.output, &converted.bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let model = lopper_runtime::Model::from_vec(converted.bytes)?;
    let total = totals(&lopper_layers(&model));
    let s = &converted.stats;
    if args.json {
        let summary = serde_json::json!({
            "input": args.input,
            "output": args.output,
            "nodes": model.graph().nodes.len(),
            "params": total.params,
            "macs": total.macs,
            "file_bytes": model.bytes().len(),
            "batch_norms_folded": s.batch_norms_folded,
            "batch_norms_lowered": s.batch_norms_lowered,
            "biases_folded": s.biases_folded,
            "hard_swishes_recognised": s.hard_swishes_recognised,
            "activations_fused": s.activations_fused,
            "dead_nodes_removed": s.dead_nodes_removed,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "wrote {}: {} nodes, {} parameters, {:.1} M MACs, {} bytes",
            args.output.display(),
            model.graph().nodes.len(),
            total.params,
            total.macs as f64 / 1e6,
            model.bytes().len()
        );
        println!(
            "compaction: {} BatchNorms folded, {} lowered, {} biases folded, {} HardSwish recognised, {} activations fused, {} dead nodes removed",
            s.batch_norms_folded, s.batch_norms_lowered, s.biases_folded, s.hard_swishes_recognised, s.activations_fused, s.dead_nodes_removed
        );
    }
    Ok(())
}
