//! Latency of `.lopper` models in the runtime: warm-up, then timed runs, with several
//! models interleaved run by run so that they share the machine's state (clock speed,
//! caches, other load) instead of each getting its own luck.

use std::time::Instant;

use lopper_runtime::{RunError, Session};

/// Summary of timed runs, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Fastest run.
    pub min_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Slowest run.
    pub max_ms: f64,
    /// Timed runs.
    pub iters: usize,
}

impl Latency {
    /// Summarises run times in milliseconds (at least one).
    pub fn from_samples(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Latency {
            min_ms: ms[0],
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            max_ms: ms[ms.len() - 1],
            iters: ms.len(),
        }
    }
}

/// Fills every input of `session` with deterministic values in `[-1, 1)`.
pub fn fill_inputs(session: &mut Session<'_>) -> Result<(), RunError> {
    let count = session.model().inputs().len();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for index in 0..count {
        for x in session.input_mut(index)? {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *x = (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
        }
    }
    Ok(())
}

/// Runs each session `warmup` times, then `iters` timed rounds in which every session runs
/// once, in turn; returns one summary per session. `iters` is at least 1.
pub fn measure_interleaved(
    sessions: &mut [Session<'_>],
    warmup: usize,
    iters: usize,
) -> Vec<Latency> {
    for session in sessions.iter_mut() {
        for _ in 0..warmup {
            session.run();
        }
    }
    let mut samples = vec![Vec::with_capacity(iters.max(1)); sessions.len()];
    for _ in 0..iters.max(1) {
        for (session, times) in sessions.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            session.run();
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    samples.into_iter().map(Latency::from_samples).collect()
}

/// Median time of one node over the profiled runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NodeCost {
    /// Position in execution order.
    pub index: usize,
    /// Node name from the source model.
    pub name: String,
    /// Op name, e.g. "Conv2d".
    pub op: &'static str,
    /// Median wall time in milliseconds.
    pub p50_ms: f64,
}

/// Where one run's time goes: every node's median over `iters` profiled runs, after
/// `warmup` plain ones. Timing each node adds a little overhead per node, so the sum is
/// slightly above an unprofiled run.
pub fn profile(session: &mut Session<'_>, warmup: usize, iters: usize) -> Vec<NodeCost> {
    for _ in 0..warmup {
        session.run();
    }
    let mut nodes: Vec<NodeCost> = Vec::new();
    let mut samples: Vec<Vec<f64>> = Vec::new();
    for _ in 0..iters.max(1) {
        session.run_profiled(|t| {
            if t.index == nodes.len() {
                nodes.push(NodeCost {
                    index: t.index,
                    name: t.name.to_string(),
                    op: t.op,
                    p50_ms: 0.0,
                });
                samples.push(Vec::with_capacity(iters.max(1)));
            }
            samples[t.index].push(t.elapsed.as_secs_f64() * 1e3);
        });
    }
    for (node, times) in nodes.iter_mut().zip(samples) {
        node.p50_ms = Latency::from_samples(times).p50_ms;
    }
    nodes
}

/// Per-op totals of a profile, largest first: `(op, nodes, total ms)`.
pub fn by_op(profile: &[NodeCost]) -> Vec<(&'static str, usize, f64)> {
    let mut totals: Vec<(&'static str, usize, f64)> = Vec::new();
    for node in profile {
        match totals.iter_mut().find(|(op, _, _)| *op == node.op) {
            Some((_, count, ms)) => {
                *count += 1;
                *ms += node.p50_ms;
            }
            None => totals.push((node.op, 1, node.p50_ms)),
        }
    }
    totals.sort_by(|a, b| b.2.total_cmp(&a.2));
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_hand() {
        let l = Latency::from_samples((1..=11).rev().map(f64::from).collect());
        assert_eq!(
            (l.min_ms, l.p50_ms, l.p90_ms, l.max_ms, l.iters),
            (1.0, 6.0, 10.0, 11.0, 11)
        );
        let one = Latency::from_samples(vec![2.5]);
        assert_eq!((one.min_ms, one.p50_ms, one.max_ms), (2.5, 2.5, 2.5));
    }

    #[test]
    fn op_totals_add_up_nodes_of_one_op() {
        let node = |index, op, p50_ms| NodeCost {
            index,
            name: format!("n{index}"),
            op,
            p50_ms,
        };
        let profile = [
            node(0, "Conv2d", 1.0),
            node(1, "Transpose", 0.5),
            node(2, "Conv2d", 2.0),
        ];
        assert_eq!(by_op(&profile), [("Conv2d", 2, 3.0), ("Transpose", 1, 0.5)]);
    }
}
