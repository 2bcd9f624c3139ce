//! `lopper bench`: latency of a `.lopper` model in the runtime on this machine, optionally
//! against a second model with the runs interleaved.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lopper_converter::latency::{
    by_op, fill_inputs, measure_interleaved, profile, Latency, NodeCost,
};
use lopper_runtime::{Model, Session};

/// Arguments of `lopper bench`.
#[derive(clap::Args)]
pub struct Args {
    /// The .lopper model.
    model: PathBuf,
    /// A second .lopper model (typically the dense original) run in turn with the first.
    #[arg(long, value_name = "OTHER.lopper")]
    vs: Option<PathBuf>,
    /// Threads per run.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed runs per model.
    #[arg(long, default_value_t = 200)]
    iters: usize,
    /// Untimed runs per model first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Print one JSON object: p50_ms and friends (vs_p50_ms and ratio with --vs).
    #[arg(long)]
    json: bool,
    /// Also time every node of MODEL (median over --iters runs) and show where the time
    /// goes: per op, and the N slowest nodes.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "15")]
    profile: Option<usize>,
}

/// Runs `lopper bench`.
pub fn run(args: Args) -> Result<()> {
    if args.threads == 0 || args.iters == 0 {
        bail!("--threads and --iters must be at least 1");
    }
    let mut paths = vec![args.model.clone()];
    paths.extend(args.vs.clone());
    let models: Vec<Model<'static>> = paths.iter().map(|p| open(p)).collect::<Result<_>>()?;
    let mut sessions = Vec::new();
    for (model, path) in models.iter().zip(&paths) {
        let mut session =
            Session::new(model).with_context(|| format!("cannot plan {}", path.display()))?;
        session
            .set_threads(args.threads)
            .with_context(|| format!("cannot start {} threads", args.threads))?;
        fill_inputs(&mut session)?;
        sessions.push(session);
    }
    let results = measure_interleaved(&mut sessions, args.warmup, args.iters);
    let arena = sessions[0].arena_bytes();
    let nodes = args
        .profile
        .map(|_| profile(&mut sessions[0], args.warmup, args.iters));
    if args.json {
        let mut out = serde_json::json!({
            "model": args.model,
            "threads": args.threads,
            "iters": args.iters,
            "warmup": args.warmup,
            "arena_bytes": arena,
            "min_ms": results[0].min_ms,
            "p50_ms": results[0].p50_ms,
            "p90_ms": results[0].p90_ms,
            "max_ms": results[0].max_ms,
        });
        if let (Some(vs), Some(other)) = (&args.vs, results.get(1)) {
            out["vs"] = serde_json::json!(vs);
            out["vs_min_ms"] = serde_json::json!(other.min_ms);
            out["vs_p50_ms"] = serde_json::json!(other.p50_ms);
            out["vs_p90_ms"] = serde_json::json!(other.p90_ms);
            out["vs_max_ms"] = serde_json::json!(other.max_ms);
            out["ratio"] = serde_json::json!(results[0].p50_ms / other.p50_ms);
        }
        if let Some(nodes) = &nodes {
            out["profile"] = serde_json::json!(nodes);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} run(s) per model after {} warm-up, {} thread(s), random inputs{}\n",
        args.iters,
        args.warmup,
        args.threads,
        if args.vs.is_some() {
            ", models interleaved"
        } else {
            ""
        }
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>10}",
        "model", "min ms", "p50 ms", "p90 ms", "max ms"
    );
    for (path, l) in paths.iter().zip(&results) {
        print_row(path, l);
    }
    if let Some(other) = results.get(1) {
        let ratio = results[0].p50_ms / other.p50_ms;
        let (factor, word) = if ratio <= 1.0 {
            (1.0 / ratio, "faster")
        } else {
            (ratio, "slower")
        };
        println!(
            "\nratio (p50 of {} / p50 of {}): {ratio:.3}: {factor:.2}x {word}",
            args.model.display(),
            paths[1].display(),
        );
    }
    if let (Some(nodes), Some(top)) = (&nodes, args.profile) {
        print_profile(nodes, top);
    }
    Ok(())
}

/// Per-op totals, then the `top` slowest nodes, each with its share of the summed time.
fn print_profile(nodes: &[NodeCost], top: usize) {
    let total: f64 = nodes.iter().map(|n| n.p50_ms).sum();
    let share = |ms: f64| 100.0 * ms / total.max(f64::MIN_POSITIVE);
    println!("\nprofile of the first model: per-node medians, summing to {total:.4} ms");
    println!("{:<24} {:>6} {:>10} {:>7}", "op", "nodes", "ms", "share");
    for (op, count, ms) in by_op(nodes) {
        println!("{op:<24} {count:>6} {ms:>10.4} {:>6.1}%", share(ms));
    }
    let mut slowest: Vec<&NodeCost> = nodes.iter().collect();
    slowest.sort_by(|a, b| b.p50_ms.total_cmp(&a.p50_ms));
    println!(
        "\n{:>5} {:<40} {:<16} {:>10} {:>7}",
        "#", "node", "op", "ms", "share"
    );
    for n in slowest.into_iter().take(top) {
        println!(
            "{:>5} {:<40} {:<16} {:>10.4} {:>6.1}%",
            n.index,
            n.name,
            n.op,
            n.p50_ms,
            share(n.p50_ms)
        );
    }
}

fn open(path: &Path) -> Result<Model<'static>> {
    if super::is_onnx(path) {
        bail!(
            "{}: lopper bench measures .lopper files; convert it first with `lopper convert`",
            path.display()
        );
    }
    Model::open(path).with_context(|| format!("cannot load {}", path.display()))
}

fn print_row(path: &Path, l: &Latency) {
    let name = path.display().to_string();
    println!(
        "{name:<40} {:>10.4} {:>10.4} {:>10.4} {:>10.4}",
        l.min_ms, l.p50_ms, l.p90_ms, l.max_ms
    );
}
