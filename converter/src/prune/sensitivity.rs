//! Sensitivity analysis: prune each layer (or, for structural methods, each group of tied
//! layers) alone over a grid of amounts, measure how far the model moves, and allocate
//! per-layer sparsities that meet a global parameter or MAC target with the least
//! predicted damage.
//!
//! Without labels the damage is the relative distance of the outputs to the dense model's
//! on calibration inputs ([`Metric::OutputDistance`]); with a labelled data set it is the
//! top-1 accuracy lost ([`Metric::AccuracyDrop`]). The predicted damage of an
//! allocation is the sum of the per-layer metrics at the chosen amounts: layers are
//! assumed to hurt independently, the usual first-order assumption of sensitivity-based
//! allocation (Han et al. 2015; Li et al. 2017).

use candle_core::{Device, Tensor};
use lopper_runtime::graph::Op as Rt;
use serde::{Deserialize, Serialize};

use super::criteria::{uniform, Criterion};
use super::depgraph::build;
use super::mask::Granularity;
use super::request::{prune, Method, PruneRequest};
use super::{check_sparsity, PruneError};
use crate::inspect::{ir_layers, totals, Layer, Totals};
use crate::ir::{eval, EvalError, Graph, Op};
use crate::train::data::Dataset;
use crate::train::evaluate_graph;

/// Why a sensitivity analysis or an allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum SensitivityError {
    /// Pruning one layer failed (also: a grid value or budget outside `[0, 1)`).
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// The dense or a pruned graph could not be evaluated (boxed: it is large).
    #[error(transparent)]
    Eval(Box<EvalError>),
    /// candle refused a tensor operation while measuring.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The request cannot be analysed (no grid, no inputs, N:M, nothing prunable).
    #[error("sensitivity analysis: {0}")]
    Request(String),
    /// The dense model's outputs are all zero on a calibration input, so a relative
    /// distance is undefined.
    #[error("the dense model's outputs are all zero on calibration input {0}: the relative output distance is undefined; use other inputs")]
    ZeroOutput(usize),
    /// The grid cannot remove as much as the budget asks.
    #[error("cannot remove {budget:.1}% of the {target}: pruning every layer at the top of the grid removes only {reachable:.1}%; add larger grid values")]
    Budget {
        /// "parameters" or "MACs".
        target: &'static str,
        /// Requested percentage.
        budget: f32,
        /// Largest percentage the curves reach.
        reachable: f32,
    },
}

impl From<EvalError> for SensitivityError {
    fn from(e: EvalError) -> Self {
        SensitivityError::Eval(Box::new(e))
    }
}

/// Result of sensitivity analysis.
pub type Result<T, E = SensitivityError> = std::result::Result<T, E>;

/// What is measured after pruning one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// `||y_pruned - y_dense|| / ||y_dense||` over all graph outputs together (Euclidean
    /// norms), averaged over the calibration inputs: 0 means unchanged. Needs no labels.
    OutputDistance,
    /// Top-1 accuracy of the dense model minus that of the pruned one on a labelled data
    /// set, floored at 0 (pruning that happens to help predicts no damage).
    AccuracyDrop,
}

impl Metric {
    /// What the metric is, for tables.
    pub fn describe(&self) -> &'static str {
        match self {
            Metric::OutputDistance => "relative output distance to the dense model",
            Metric::AccuracyDrop => "top-1 accuracy lost (fraction)",
        }
    }

    /// Short name of the summed damage of an allocation.
    pub fn short(&self) -> &'static str {
        match self {
            Metric::OutputDistance => "output distance",
            Metric::AccuracyDrop => "accuracy loss",
        }
    }
}

/// One grid point of a layer's curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Fraction removed in this layer alone (of weights, or of the group's channels).
    pub amount: f32,
    /// The metric with only this layer pruned.
    pub metric: f32,
    /// Parameters removed from the model: zeroed weights (weight methods), or every
    /// parameter cut out (structural methods, including the next layers' inputs).
    pub params_removed: usize,
    /// MACs removed: those of the zeroed weights, which sparse kernels skip (weight
    /// methods), or the MACs of every slice cut out (structural methods).
    pub macs_removed: usize,
}

/// The curve of one layer, or of one group of tied layers for structural methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerCurve {
    /// Layer name (a group is named by its first layer, as in the pruning report); the
    /// key of `PruneRequest::overrides`.
    pub name: String,
    /// Every layer pruned together with it (itself only, for weight methods).
    pub members: Vec<String>,
    /// Parameters of the member layers, dense.
    pub params: usize,
    /// MACs of the member layers, dense.
    pub macs: usize,
    /// One point per grid value, in increasing amount.
    pub points: Vec<Point>,
}

/// Sensitivity of every prunable layer of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// Pruning method, as the CLI spells it (`magnitude`, `block:4x1`, `channel`, ...).
    pub method: String,
    /// Criterion name.
    pub criterion: String,
    /// What the curves measure.
    pub metric: Metric,
    /// Number of calibration inputs (or labelled images) the metric is averaged over.
    pub inputs: usize,
    /// Top-1 accuracy of the dense model, with [`Metric::AccuracyDrop`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense_top1: Option<f64>,
    /// The amounts tried, increasing.
    pub grid: Vec<f32>,
    /// Parameters of the whole model, dense.
    pub params: usize,
    /// MACs of the whole model, dense.
    pub macs: usize,
    /// One curve per prunable layer (or group), in graph order.
    pub layers: Vec<LayerCurve>,
}

/// What a global budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Parameters.
    Params,
    /// Multiply-accumulates.
    Macs,
}

impl Target {
    /// Plural noun for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Params => "parameters",
            Target::Macs => "MACs",
        }
    }
}

/// Per-layer amounts meeting a global budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Allocation {
    /// Every analysed layer with its amount (0 for layers left dense), in curve order:
    /// collect it into `PruneRequest::overrides`.
    pub sparsity: Vec<(String, f32)>,
    /// Fraction of the model's parameters (or MACs) the allocation removes.
    pub removed: f32,
    /// Predicted damage: the sum of the chosen points' metrics.
    pub predicted: f32,
}

/// The spelling of `method` on the command line.
fn method_name(method: Method) -> String {
    match method {
        Method::Weights(Granularity::Unstructured) => "magnitude".into(),
        Method::Weights(Granularity::Block { rows, cols }) => format!("block:{rows}x{cols}"),
        Method::Weights(Granularity::NM { n, m }) => format!("nm:{n}:{m}"),
        Method::Channels => "channel".into(),
        Method::Neurons => "neuron".into(),
        Method::Layers => "layer".into(),
    }
}

/// What is pruned alone: node indices, the first one naming it.
struct Unit {
    nodes: Vec<usize>,
    /// Structural groups: (channels, removable channels).
    channels: Option<(usize, usize)>,
}

impl Unit {
    /// False when pruning `amount` cannot remove a single channel of the group (the
    /// count rounds down to zero, or only one channel is left), so pruning would refuse.
    fn removes_something(&self, amount: f32) -> bool {
        match self.channels {
            None => true,
            Some((total, removable)) => {
                // As `structural::select` counts, with `round_to` 1.
                let count = ((amount * total as f32).floor() as usize).min(removable);
                total - (total - count).max(1) > 0
            }
        }
    }
}

/// Convolution and linear layers with constant weights.
fn weight_layers(graph: &Graph) -> Vec<usize> {
    (0..graph.nodes.len())
        .filter(|&n| {
            let node = &graph.nodes[n];
            matches!(node.op, Op::Runtime(Rt::Conv2d(_) | Rt::Linear))
                && node
                    .inputs
                    .get(1)
                    .is_some_and(|&w| graph.constant_of(w).is_some())
        })
        .collect()
}

/// The units `method` prunes: each weight layer, or each structural group with at least
/// one removable channel (made only of linear layers for `Neurons`).
fn units(graph: &Graph, method: Method, layers: &[usize]) -> Vec<Unit> {
    match method {
        // Refused by `analyse_with_progress`: whole layers have no amount to sweep.
        Method::Layers => Vec::new(),
        Method::Weights(_) => layers
            .iter()
            .map(|&n| Unit {
                nodes: vec![n],
                channels: None,
            })
            .collect(),
        Method::Channels | Method::Neurons => {
            let dep = build(graph);
            dep.groups
                .iter()
                .filter(|g| g.classes.iter().any(|&c| dep.classes[c].blocked.is_none()))
                .filter(|g| {
                    method == Method::Channels
                        || g.layers
                            .iter()
                            .all(|&n| matches!(graph.nodes[n].op, Op::Runtime(Rt::Linear)))
                })
                .map(|g| Unit {
                    nodes: g.layers.clone(),
                    channels: Some((
                        g.classes.len(),
                        g.classes
                            .iter()
                            .filter(|&&c| dep.classes[c].blocked.is_none())
                            .count(),
                    )),
                })
                .collect()
        }
    }
}

/// Exact zeros of node `n`'s weight.
fn weight_zeros(graph: &Graph, n: usize) -> Result<usize> {
    let Some(w) = graph.constant_of(graph.nodes[n].inputs[1]) else {
        return Ok(0);
    };
    Ok(super::to_f32_vec(w)?.iter().filter(|&&x| x == 0.0).count())
}

/// The metric between dense and pruned outputs of one input (index `input`).
fn measure(metric: Metric, dense: &[Tensor], pruned: &[Tensor], input: usize) -> Result<f32> {
    match metric {
        Metric::OutputDistance => {
            let (mut diff, mut norm) = (0f64, 0f64);
            for (d, p) in dense.iter().zip(pruned) {
                diff += f64::from(p.sub(d)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
                norm += f64::from(d.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
            if norm == 0.0 {
                return Err(SensitivityError::ZeroOutput(input));
            }
            Ok((diff / norm).sqrt() as f32)
        }
        Metric::AccuracyDrop => Err(SensitivityError::Request(
            "accuracy is measured on labelled data, not on calibration inputs".into(),
        )),
    }
}

/// The unpruned model and what is measured against it.
struct Dense<'a> {
    graph: &'a Graph,
    inputs: &'a [Vec<Tensor>],
    /// Outputs per calibration input.
    outputs: Vec<Vec<Tensor>>,
    /// Per-node parameters and MACs.
    rows: Vec<Layer>,
    totals: Totals,
    metric: Metric,
    /// Labelled images and the dense model's top-1 on them, for [`Metric::AccuracyDrop`].
    labelled: Option<(&'a Dataset, f64)>,
}

impl Dense<'_> {
    /// Prunes `unit` alone as `request` says (its exclusions leave only the unit) on a
    /// copy and measures the metric and what was removed.
    fn point(&self, unit: &Unit, request: &PruneRequest) -> Result<Point> {
        let amount = request.amount;
        if !unit.removes_something(amount) {
            return Ok(Point {
                amount,
                metric: 0.0,
                params_removed: 0,
                macs_removed: 0,
            });
        }
        let mut pruned = self.graph.clone();
        prune(&mut pruned, request)?;
        let metric = match self.labelled {
            Some((data, dense_top1)) => {
                let top1 = evaluate_graph(&pruned, data, 256, false)
                    .map_err(|e| {
                        SensitivityError::Request(format!("evaluating on {}: {e}", data.name()))
                    })?
                    .top1;
                (dense_top1 - top1).max(0.0)
            }
            None => {
                let mut sum = 0f64;
                for (i, (x, d)) in self.inputs.iter().zip(&self.outputs).enumerate() {
                    sum += f64::from(measure(self.metric, d, &eval(&pruned, x)?, i)?);
                }
                sum / self.inputs.len() as f64
            }
        };
        let (params_removed, macs_removed) = match request.method {
            Method::Weights(_) => {
                let n = unit.nodes[0];
                let removed =
                    weight_zeros(&pruned, n)?.saturating_sub(weight_zeros(self.graph, n)?);
                let count: usize = self
                    .graph
                    .shape(self.graph.nodes[n].inputs[1])
                    .iter()
                    .product();
                // Every weight takes part in the same number of MACs.
                let macs = (self.rows[n].macs as u128 * removed as u128)
                    .checked_div(count as u128)
                    .unwrap_or(0);
                (removed, macs as usize)
            }
            Method::Channels | Method::Neurons | Method::Layers => {
                let after = totals(&ir_layers(&pruned));
                (
                    self.totals.params.saturating_sub(after.params),
                    self.totals.macs.saturating_sub(after.macs),
                )
            }
        };
        Ok(Point {
            amount,
            metric: metric as f32,
            params_removed,
            macs_removed,
        })
    }
}

/// [`analyse_with_progress`] without progress reports.
pub fn analyse(
    graph: &Graph,
    method: Method,
    criterion: Criterion,
    grid: &[f32],
    inputs: &[Vec<Tensor>],
) -> Result<Sensitivity> {
    analyse_with_progress(graph, method, criterion, grid, inputs, |_, _, _| {})
}

/// Prunes every prunable layer of `graph` alone (for `Channels` and `Neurons`: every
/// structural group) at each amount of `grid`, on a copy, runs the copy on every
/// calibration input (one tensor per graph input each) and records the output distance
/// to the dense model. `progress(i, n, name)` is called before unit `i` (1-based) of `n`.
/// Errors on grid values outside `[0, 1)`, an empty grid or input list, N:M and whole-layer
/// methods (no amount to sweep), a model with nothing to prune, and failures to prune or
/// evaluate.
pub fn analyse_with_progress(
    graph: &Graph,
    method: Method,
    criterion: Criterion,
    grid: &[f32],
    inputs: &[Vec<Tensor>],
    progress: impl FnMut(usize, usize, &str),
) -> Result<Sensitivity> {
    analyse_core(graph, method, criterion, grid, inputs, None, progress)
}

/// Like [`analyse_with_progress`], measuring the top-1 accuracy lost on the labelled
/// `data` ([`Metric::AccuracyDrop`]) instead of the output distance.
pub fn analyse_on_data(
    graph: &Graph,
    method: Method,
    criterion: Criterion,
    grid: &[f32],
    data: &Dataset,
    progress: impl FnMut(usize, usize, &str),
) -> Result<Sensitivity> {
    let dense_top1 = evaluate_graph(graph, data, 256, false)
        .map_err(|e| SensitivityError::Request(format!("evaluating on {}: {e}", data.name())))?
        .top1;
    analyse_core(
        graph,
        method,
        criterion,
        grid,
        &[],
        Some((data, dense_top1)),
        progress,
    )
}

fn analyse_core(
    graph: &Graph,
    method: Method,
    criterion: Criterion,
    grid: &[f32],
    inputs: &[Vec<Tensor>],
    labelled: Option<(&Dataset, f64)>,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Sensitivity> {
    for &amount in grid {
        check_sparsity(amount)?;
    }
    let mut grid = grid.to_vec();
    grid.sort_by(f32::total_cmp);
    grid.dedup();
    if grid.is_empty() {
        return Err(SensitivityError::Request(
            "the grid of amounts is empty".into(),
        ));
    }
    if let Method::Weights(Granularity::NM { n, m }) = method {
        return Err(SensitivityError::Request(format!(
            "{n}:{m} pruning always removes {n} of every {m}: there is no amount to sweep; use magnitude or block pruning"
        )));
    }
    if method == Method::Layers {
        return Err(SensitivityError::Request(
            "layer pruning removes whole layers: there is no amount to sweep; use magnitude, block, channel or neuron pruning".into(),
        ));
    }
    if inputs.is_empty() && labelled.is_none() {
        return Err(SensitivityError::Request(
            "at least one calibration input is needed".into(),
        ));
    }
    let rows = ir_layers(graph);
    let dense = Dense {
        graph,
        inputs,
        outputs: inputs
            .iter()
            .map(|x| eval(graph, x))
            .collect::<Result<_, _>>()?,
        totals: totals(&rows),
        rows,
        metric: if labelled.is_some() {
            Metric::AccuracyDrop
        } else {
            Metric::OutputDistance
        },
        labelled,
    };
    let layers = weight_layers(graph);
    let units = units(graph, method, &layers);
    if units.is_empty() {
        return Err(SensitivityError::Request(format!(
            "the model has no layer that {} pruning can touch",
            method_name(method)
        )));
    }
    let mut curves = Vec::with_capacity(units.len());
    for (u, unit) in units.iter().enumerate() {
        let name = graph.nodes[unit.nodes[0]].name.clone();
        progress(u + 1, units.len(), &name);
        let mut request = PruneRequest {
            method,
            criterion,
            amount: 0.0,
            global: false,
            round_to: 1,
            exclude: layers
                .iter()
                .filter(|n| !unit.nodes.contains(n))
                .map(|&n| graph.nodes[n].name.clone())
                .collect(),
            overrides: Default::default(),
            protect_defaults: false,
        };
        let mut points = Vec::with_capacity(grid.len());
        for &amount in &grid {
            request.amount = amount;
            points.push(dense.point(unit, &request)?);
        }
        curves.push(LayerCurve {
            name,
            members: unit
                .nodes
                .iter()
                .map(|&n| graph.nodes[n].name.clone())
                .collect(),
            params: unit.nodes.iter().map(|&n| dense.rows[n].params).sum(),
            macs: unit.nodes.iter().map(|&n| dense.rows[n].macs).sum(),
            points,
        });
    }
    Ok(Sensitivity {
        method: method_name(method),
        criterion: criterion.name().into(),
        metric: dense.metric,
        inputs: labelled.map_or(inputs.len(), |(data, _)| data.len()),
        dense_top1: labelled.map(|(_, top1)| top1),
        grid,
        params: dense.totals.params,
        macs: dense.totals.macs,
        layers: curves,
    })
}

/// `count` calibration inputs for `graph`, uniform in `[-1, 1)`, the same for the same
/// `seed`.
pub fn random_inputs(graph: &Graph, count: usize, seed: u64) -> Result<Vec<Vec<Tensor>>> {
    (0..count as u64)
        .map(|i| {
            graph
                .inputs
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let shape = graph.shape(v);
                    let stream = seed
                        .wrapping_mul(0x1000_0000_01b3)
                        .wrapping_add(i * 1024 + k as u64);
                    let values: Vec<f32> = uniform(stream, shape.iter().product())
                        .into_iter()
                        .map(|u| 2.0 * u - 1.0)
                        .collect();
                    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
                })
                .collect()
        })
        .collect()
}

/// Chooses an amount per layer from the curves of `s` so that at least `budget` (a
/// fraction in `[0, 1)`) of the model's parameters or MACs go, greedily: every layer
/// starts dense, and the layer whose next grid step adds the least metric per parameter
/// (or MAC) removed is raised one step, until the budget is met. Errors when even the top
/// of the grid in every layer removes too little.
pub fn allocate(s: &Sensitivity, target: Target, budget: f32) -> Result<Allocation> {
    check_sparsity(budget)?;
    let total = match target {
        Target::Params => s.params,
        Target::Macs => s.macs,
    };
    let cost = |p: &Point| match target {
        Target::Params => p.params_removed,
        Target::Macs => p.macs_removed,
    };
    // The goal in units, forgiving the f32 rounding of the budget.
    let goal = (f64::from(budget) * total as f64 * (1.0 - 1e-6)).ceil() as usize;
    // Level per layer: None (dense) or an index into its points.
    let mut level: Vec<Option<usize>> = vec![None; s.layers.len()];
    let at = |curve: &LayerCurve, l: Option<usize>| {
        l.map_or((0, 0.0), |k| {
            (cost(&curve.points[k]), curve.points[k].metric)
        })
    };
    let mut removed: usize = 0;
    while removed < goal {
        // (metric per unit removed, layer, next level)
        let mut best: Option<(f64, usize, usize)> = None;
        for (i, curve) in s.layers.iter().enumerate() {
            let (r0, m0) = at(curve, level[i]);
            let start = level[i].map_or(0, |k| k + 1);
            let Some(next) = (start..curve.points.len()).find(|&k| cost(&curve.points[k]) > r0)
            else {
                continue;
            };
            let (r1, m1) = at(curve, Some(next));
            let ratio = (f64::from(m1) - f64::from(m0)) / (r1 - r0) as f64;
            if best.is_none_or(|(b, _, _)| ratio.total_cmp(&b).is_lt()) {
                best = Some((ratio, i, next));
            }
        }
        let Some((_, i, next)) = best else {
            let reachable: usize = s
                .layers
                .iter()
                .map(|c| c.points.iter().map(cost).max().unwrap_or(0))
                .sum();
            return Err(SensitivityError::Budget {
                target: target.name(),
                budget: budget * 100.0,
                reachable: (reachable as f64 / total.max(1) as f64 * 100.0) as f32,
            });
        };
        removed = removed - at(&s.layers[i], level[i]).0 + cost(&s.layers[i].points[next]);
        level[i] = Some(next);
    }
    Ok(Allocation {
        sparsity: s
            .layers
            .iter()
            .zip(&level)
            .map(|(c, l)| (c.name.clone(), l.map_or(0.0, |k| c.points[k].amount)))
            .collect(),
        removed: (removed as f64 / total.max(1) as f64) as f32,
        predicted: s.layers.iter().zip(&level).map(|(c, &l)| at(c, l).1).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopper_runtime::graph::{Activation, BinaryKind};

    fn t(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
    }

    /// `x[1,4] -> small (weights ~0.01) -> a`, `x -> big (weights ~1) -> b`, `y = a + b`:
    /// the big path dominates the output, so pruning it moves the output much more.
    fn two_paths() -> Graph {
        let mut g = Graph::default();
        let x = g.activation("x", vec![1, 4]);
        g.inputs.push(x);
        let path = |g: &mut Graph, name: &str, scale: f32| {
            let w: Vec<f32> = (0..8)
                .map(|i| scale * (1.0 + i as f32 / 8.0) * if i % 3 == 0 { -1.0 } else { 1.0 })
                .collect();
            let w = g.constant(&format!("{name}.w"), t(&w, &[2, 4]));
            let out = g.activation(name, vec![1, 2]);
            g.push(name, Op::Runtime(Rt::Linear), vec![x, w], vec![out]);
            out
        };
        let a = path(&mut g, "small", 0.01);
        let b = path(&mut g, "big", 1.0);
        let y = g.activation("y", vec![1, 2]);
        g.push(
            "add",
            Op::Runtime(Rt::Binary(BinaryKind::Add)),
            vec![a, b],
            vec![y],
        );
        g.outputs.push(y);
        g
    }

    fn curve<'a>(s: &'a Sensitivity, name: &str) -> &'a LayerCurve {
        s.layers.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn the_dominant_path_is_more_sensitive() {
        let g = two_paths();
        let inputs = random_inputs(&g, 3, 7).unwrap();
        let grid = [0.25, 0.5, 0.75];
        let s = analyse(
            &g,
            Method::Weights(Granularity::Unstructured),
            Criterion::L1,
            &grid,
            &inputs,
        )
        .unwrap();
        assert_eq!(s.grid, grid);
        assert_eq!((s.params, s.macs, s.inputs), (16, 16, 3));
        let (small, big) = (curve(&s, "small"), curve(&s, "big"));
        assert_eq!((small.params, small.macs), (8, 8));
        for (ps, pb) in small.points.iter().zip(&big.points) {
            assert!(
                pb.metric > 10.0 * ps.metric && ps.metric > 0.0,
                "{ps:?} {pb:?}"
            );
            // 8 weights per layer: 25% is 2 weights, in MACs 2 too at batch 1.
            assert_eq!(ps.params_removed, (ps.amount * 8.0) as usize);
            assert_eq!(ps.macs_removed, ps.params_removed);
        }
        // The allocation for a quarter of the parameters takes them from the small path.
        let a = allocate(&s, Target::Params, 0.25).unwrap();
        assert_eq!(
            a.sparsity,
            vec![("small".to_string(), 0.5), ("big".to_string(), 0.0)]
        );
        assert_eq!(a.removed, 0.25);
        // It plugs into a request and removes what it said.
        let mut pruned = g.clone();
        let summary = prune(
            &mut pruned,
            &PruneRequest {
                method: Method::Weights(Granularity::Unstructured),
                criterion: Criterion::L1,
                amount: 0.0,
                global: false,
                round_to: 1,
                exclude: vec![],
                overrides: a.sparsity.iter().cloned().collect(),
                protect_defaults: false,
            },
        )
        .unwrap();
        assert_eq!(
            summary.layers,
            vec![("small".to_string(), 0.5), ("big".to_string(), 0.0)]
        );
    }

    #[test]
    fn channel_groups_count_what_they_cut_in_the_next_layer() {
        // x[1,4] -> fc1 (8 outputs, bias) -> relu -> fc2 (2 outputs): one prunable group,
        // fc1's 8 neurons (fc2's outputs are the graph's).
        let mut g = Graph::default();
        let x = g.activation("x", vec![1, 4]);
        g.inputs.push(x);
        let w1 = g.constant(
            "w1",
            t(
                &(0..32).map(|i| i as f32 / 32.0).collect::<Vec<_>>(),
                &[8, 4],
            ),
        );
        let b1 = g.constant("b1", t(&[0.1; 8], &[8]));
        let h = g.activation("h", vec![1, 8]);
        g.push("fc1", Op::Runtime(Rt::Linear), vec![x, w1, b1], vec![h]);
        g.nodes[0].activation = Activation::Relu;
        let w2 = g.constant("w2", t(&[0.5; 16], &[2, 8]));
        let y = g.activation("y", vec![1, 2]);
        g.push("fc2", Op::Runtime(Rt::Linear), vec![h, w2], vec![y]);
        g.outputs.push(y);
        let inputs = random_inputs(&g, 2, 1).unwrap();
        for method in [Method::Channels, Method::Neurons] {
            let s = analyse(&g, method, Criterion::L1, &[0.1, 0.5], &inputs).unwrap();
            assert_eq!(s.layers.len(), 1, "{s:?}");
            let c = &s.layers[0];
            assert_eq!((c.name.as_str(), c.params, c.macs), ("fc1", 40, 32));
            // 10% of 8 neurons rounds down to none: nothing removed, nothing changed.
            let p = &c.points[0];
            assert_eq!((p.metric, p.params_removed, p.macs_removed), (0.0, 0, 0));
            // Half of 8 neurons: 4 rows of w1 (16) + 4 biases + 4 columns of w2 (8) = 28
            // parameters; MACs 4 x 4 in fc1 + 2 x 4 in fc2 = 24.
            let p = &c.points[1];
            assert_eq!((p.params_removed, p.macs_removed), (28, 24));
            assert!(p.metric > 0.0);
        }
    }

    /// Curves of layers `l0`, `l1`, ... of 100 parameters each, from (amount, metric,
    /// parameters removed, MACs removed); the model has 200 parameters and 400 MACs.
    fn synthetic(points: &[&[(f32, f32, usize, usize)]]) -> Sensitivity {
        Sensitivity {
            method: "magnitude".into(),
            criterion: "l1".into(),
            metric: Metric::OutputDistance,
            inputs: 1,
            dense_top1: None,
            grid: vec![0.25, 0.5, 0.75],
            params: 200,
            macs: 400,
            layers: points
                .iter()
                .enumerate()
                .map(|(i, ps)| LayerCurve {
                    name: format!("l{i}"),
                    members: vec![format!("l{i}")],
                    params: 100,
                    macs: 200,
                    points: ps
                        .iter()
                        .map(|&(amount, metric, params_removed, macs_removed)| Point {
                            amount,
                            metric,
                            params_removed,
                            macs_removed,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn pairs(a: &Allocation) -> Vec<(&str, f32)> {
        a.sparsity.iter().map(|(n, x)| (n.as_str(), *x)).collect()
    }

    #[test]
    fn allocation_on_synthetic_curves() {
        // At amounts 0.25 / 0.5 / 0.75:
        //   l0 metric 0.05, 0.10, 0.60; params removed 25, 50, 75; MACs 50, 100, 150
        //   l1 metric 0.02, 0.30, 0.40; params removed 25, 50, 75; MACs 10, 20, 30
        let s = synthetic(&[
            &[
                (0.25, 0.05, 25, 50),
                (0.5, 0.10, 50, 100),
                (0.75, 0.60, 75, 150),
            ],
            &[
                (0.25, 0.02, 25, 10),
                (0.5, 0.30, 50, 20),
                (0.75, 0.40, 75, 30),
            ],
        ]);
        // Metric per parameter of each step: l0 0.002, 0.002, 0.020; l1 0.0008, 0.0112,
        // 0.004. Budget 40% of 200 = 80 parameters:
        //   1. l1 -> 0.25 (0.0008)                        removed 25
        //   2. l0 -> 0.25 (0.002 < l1's next, 0.0112)     removed 50
        //   3. l0 -> 0.50 (0.002)                         removed 75
        //   4. l1 -> 0.50 (0.0112 < l0's next, 0.020)     removed 100 >= 80
        let a = allocate(&s, Target::Params, 0.4).unwrap();
        assert_eq!(pairs(&a), [("l0", 0.5), ("l1", 0.5)]);
        assert_eq!(a.removed, 0.5);
        assert!((a.predicted - 0.40).abs() < 1e-6, "{a:?}");
        // Budget 20% = 40: steps 1 and 2.
        let a = allocate(&s, Target::Params, 0.2).unwrap();
        assert_eq!(pairs(&a), [("l0", 0.25), ("l1", 0.25)]);
        // Budget 10% = 20: step 1 only.
        let a = allocate(&s, Target::Params, 0.1).unwrap();
        assert_eq!(pairs(&a), [("l0", 0.0), ("l1", 0.25)]);
        assert!((a.predicted - 0.02).abs() < 1e-6, "{a:?}");
        // Nothing to remove: everything dense.
        let a = allocate(&s, Target::Params, 0.0).unwrap();
        assert_eq!(pairs(&a), [("l0", 0.0), ("l1", 0.0)]);
        assert_eq!(a.predicted, 0.0);
        // By MACs, metric per MAC: l0 0.001, 0.001, 0.010; l1 0.002, 0.028, 0.010.
        // Budget 25% of 400 = 100: l0 -> 0.25 (50), l0 -> 0.5 (100).
        let a = allocate(&s, Target::Macs, 0.25).unwrap();
        assert_eq!(pairs(&a), [("l0", 0.5), ("l1", 0.0)]);
        // Budget 40% = 160: then l1 -> 0.25 (0.002; 110), l0 -> 0.75 (0.010 < 0.028; 160).
        let a = allocate(&s, Target::Macs, 0.4).unwrap();
        assert_eq!(pairs(&a), [("l0", 0.75), ("l1", 0.25)]);
        assert_eq!(a.removed, 0.4);
    }

    #[test]
    fn unreachable_budgets_and_bad_amounts_are_errors() {
        let s = synthetic(&[&[(0.5, 0.1, 50, 100)], &[(0.5, 0.2, 50, 100)]]);
        // Both layers at the top remove 100 of 200 parameters: 50%.
        assert!(allocate(&s, Target::Params, 0.5).is_ok());
        match allocate(&s, Target::Params, 0.6) {
            Err(e @ SensitivityError::Budget { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("60.0%") && msg.contains("50.0%"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            allocate(&s, Target::Params, 1.0),
            Err(SensitivityError::Prune(PruneError::Sparsity(b))) if b == 1.0
        ));
        let g = two_paths();
        let inputs = random_inputs(&g, 1, 0).unwrap();
        let magnitude = Method::Weights(Granularity::Unstructured);
        for bad in [1.0, -0.1, f32::NAN] {
            let err = analyse(&g, magnitude, Criterion::L1, &[0.5, bad], &inputs).unwrap_err();
            assert!(
                matches!(err, SensitivityError::Prune(PruneError::Sparsity(_))),
                "{err:?}"
            );
        }
        assert!(matches!(
            analyse(&g, magnitude, Criterion::L1, &[], &inputs),
            Err(SensitivityError::Request(_))
        ));
        assert!(matches!(
            analyse(&g, magnitude, Criterion::L1, &[0.5], &[]),
            Err(SensitivityError::Request(_))
        ));
        let nm = Method::Weights(Granularity::NM { n: 2, m: 4 });
        assert!(matches!(
            analyse(&g, nm, Criterion::L1, &[0.5], &inputs),
            Err(SensitivityError::Request(_))
        ));
        assert!(matches!(
            analyse(&g, Method::Layers, Criterion::L1, &[0.5], &inputs),
            Err(SensitivityError::Request(_))
        ));
        // The two paths meet at the graph output: no channel can go.
        assert!(matches!(
            analyse(&g, Method::Channels, Criterion::L1, &[0.5], &inputs),
            Err(SensitivityError::Request(_))
        ));
    }

    #[test]
    fn random_inputs_are_seeded_and_shaped() {
        let g = two_paths();
        let a = random_inputs(&g, 2, 5).unwrap();
        let b = random_inputs(&g, 2, 5).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0][0].dims(), [1, 4]);
        let v = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(&a[1][0]), v(&b[1][0]));
        assert_ne!(v(&a[0][0]), v(&a[1][0]));
        assert!(v(&a[0][0]).iter().all(|x| (-1.0..1.0).contains(x)));
    }
}
