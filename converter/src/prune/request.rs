//! One pruning request applied to a graph: which method, criterion, amount and scope, with
//! per-layer overrides and exclusions, and the defaults that protect the first layer and
//! the classifier.

use std::collections::HashMap;

use candle_core::Tensor;
use lopper_runtime::graph::Op as Rt;

use super::criteria::{bn_scale_scores, channel_scores, weight_scores, Criterion};
use super::depgraph::{build, DepGraph};
use super::mask::{apply as apply_mask, global_masks, mask, sparsity_of, Granularity};
use super::structural::{apply, select, ChannelRequest, GroupChange, Mode};
use super::{PruneError, Result};
use crate::ir::{Graph, Op};

/// What is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Weights, blocks or N:M groups are zeroed (stored sparse on export).
    Weights(Granularity),
    /// Output channels of convolutions and the layers tied to them are cut out.
    Channels,
    /// Neurons (output features) of linear layers are cut out.
    Neurons,
}

/// A full request.
#[derive(Clone, Debug, PartialEq)]
pub struct PruneRequest {
    /// What is removed.
    pub method: Method,
    /// How importance is measured.
    pub criterion: Criterion,
    /// Fraction removed: of weights (weight methods) or of channels (structural ones).
    pub amount: f32,
    /// One threshold across layers instead of the same fraction in each.
    pub global: bool,
    /// Keep channel counts a multiple of this.
    pub round_to: usize,
    /// Layers left alone, by name.
    pub exclude: Vec<String>,
    /// Per-layer fractions that replace `amount` (weight methods).
    pub overrides: HashMap<String, f32>,
    /// Leave the first layer and the classifier alone (recommended: they are small and
    /// sensitive).
    pub protect_defaults: bool,
}

/// What a request changed.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PruneSummary {
    /// Per layer: name, fraction of zero weights after (weight methods).
    pub layers: Vec<(String, f32)>,
    /// Per group of tied layers: channels before and after (structural methods).
    pub groups: Vec<GroupChange>,
}

/// Convolution and linear layers with constant weights: what pruning can touch.
fn weight_layers(graph: &Graph) -> Vec<usize> {
    (0..graph.nodes.len())
        .filter(|&n| {
            let node = &graph.nodes[n];
            matches!(node.op, Op::Runtime(Rt::Conv2d(_) | Rt::Linear))
                && graph.constant_of(node.inputs[1]).is_some()
        })
        .collect()
}

/// Node index of every named layer, erroring on names the graph does not have.
fn resolve_names<'a>(graph: &Graph, names: impl Iterator<Item = &'a String>) -> Result<Vec<usize>> {
    names
        .map(|name| {
            graph
                .nodes
                .iter()
                .position(|n| &n.name == name)
                .ok_or_else(|| PruneError::UnknownLayer(name.clone()))
        })
        .collect()
}

/// Applies `request` to `graph`.
pub fn prune(graph: &mut Graph, request: &PruneRequest) -> Result<PruneSummary> {
    if !(0.0..1.0).contains(&request.amount) {
        return Err(PruneError::Sparsity(request.amount));
    }
    for (name, &s) in &request.overrides {
        if !(0.0..1.0).contains(&s) {
            return Err(PruneError::NotPrunable {
                layer: name.clone(),
                reason: format!("sparsity {s} is outside [0, 1)"),
            });
        }
    }
    let excluded = resolve_names(graph, request.exclude.iter())?;
    resolve_names(graph, request.overrides.keys())?;
    let layers = weight_layers(graph);
    let mut protected = excluded.clone();
    if request.protect_defaults {
        protected.extend(layers.first());
        protected.extend(layers.last());
    }
    match request.method {
        Method::Weights(granularity) => {
            prune_weights(graph, request, granularity, &layers, &protected)
        }
        Method::Channels | Method::Neurons => prune_channels(graph, request, &protected),
    }
}

fn prune_weights(
    graph: &mut Graph,
    request: &PruneRequest,
    granularity: Granularity,
    layers: &[usize],
    protected: &[usize],
) -> Result<PruneSummary> {
    // N:M needs every row to split into groups of at least n columns (a 3x3 depthwise
    // filter has 9 columns: 2:4 cannot hold it); such layers stay dense.
    let fits = |n: &usize| match granularity {
        Granularity::NM { n: keep, m } => {
            let cols: usize = graph.shape(graph.nodes[*n].inputs[1])[1..].iter().product();
            cols % m == 0 || cols % m >= keep
        }
        _ => true,
    };
    let targets: Vec<usize> = layers
        .iter()
        .copied()
        .filter(|n| !protected.contains(n) && fits(n))
        .collect();
    let weight = |graph: &Graph, n: usize| {
        graph
            .constant_of(graph.nodes[n].inputs[1])
            .expect("weight_layers checked")
            .clone()
    };
    let scores: Vec<Tensor> = targets
        .iter()
        .map(|&n| weight_scores(&weight(graph, n), request.criterion, None))
        .collect::<Result<_>>()?;
    let amounts: Vec<f32> = targets
        .iter()
        .map(|&n| {
            *request
                .overrides
                .get(&graph.nodes[n].name)
                .unwrap_or(&request.amount)
        })
        .collect();
    let masks: Vec<Tensor> = if request.global && request.overrides.is_empty() {
        global_masks(&scores, granularity, request.amount)?
    } else {
        scores
            .iter()
            .zip(&amounts)
            .map(|(s, &a)| mask(s, granularity, a))
            .collect::<Result<_>>()?
    };
    let mut summary = PruneSummary {
        layers: Vec::new(),
        groups: Vec::new(),
    };
    for (&n, m) in targets.iter().zip(&masks) {
        let pruned = apply_mask(&weight(graph, n), m)?;
        summary
            .layers
            .push((graph.nodes[n].name.clone(), sparsity_of(&pruned)));
        let name = graph.values[graph.nodes[n].inputs[1]].name.clone();
        let id = graph.constant(&name, pruned);
        graph.nodes[n].inputs[1] = id;
    }
    Ok(summary)
}

/// Importance of every class: the sum over its member layers of each channel's score.
fn class_scores(graph: &Graph, dep: &DepGraph, criterion: Criterion) -> Result<Vec<f32>> {
    let mut per_layer: HashMap<usize, Vec<f32>> = HashMap::new();
    let mut scores = vec![0f32; dep.classes.len()];
    for (c, class) in dep.classes.iter().enumerate() {
        for &(n, ch) in &class.members {
            if let std::collections::hash_map::Entry::Vacant(slot) = per_layer.entry(n) {
                let node = &graph.nodes[n];
                let s = if criterion == Criterion::BnScale {
                    let gamma = bn_after(graph, n).ok_or_else(|| PruneError::NotPrunable {
                        layer: node.name.clone(),
                        reason: "the bn-scale criterion needs a BatchNormalization right after the layer".into(),
                    })?;
                    bn_scale_scores(&gamma)?
                } else {
                    let w = graph
                        .constant_of(node.inputs[1])
                        .expect("producers have constant weights");
                    channel_scores(w, 0, criterion, None)?
                };
                slot.insert(s);
            }
            scores[c] += per_layer[&n][ch];
        }
    }
    Ok(scores)
}

/// The scale of the BatchNorm that reads node `n`'s output, if one does.
fn bn_after(graph: &Graph, n: usize) -> Option<Tensor> {
    let out = graph.nodes[n].outputs[0];
    graph
        .nodes
        .iter()
        .find(|m| matches!(m.op, Op::BatchNorm { .. }) && m.inputs[0] == out)
        .and_then(|m| graph.constant_of(m.inputs[1]).cloned())
}

fn prune_channels(
    graph: &mut Graph,
    request: &PruneRequest,
    protected: &[usize],
) -> Result<PruneSummary> {
    let dep = build(graph);
    let mut protect: Vec<usize> = protected.iter().filter_map(|&n| dep.group_of(n)).collect();
    if request.method == Method::Neurons {
        // Neurons: only groups made of linear layers.
        for (g, group) in dep.groups.iter().enumerate() {
            if group
                .layers
                .iter()
                .any(|&n| !matches!(graph.nodes[n].op, Op::Runtime(Rt::Linear)))
            {
                protect.push(g);
            }
        }
    }
    let scores = class_scores(graph, &dep, request.criterion)?;
    let channel_request = ChannelRequest {
        ratio: request.amount,
        global: request.global,
        round_to: request.round_to,
        protect,
    };
    let (remove, groups) = select(graph, &dep, &scores, &channel_request)?;
    apply(graph, &dep, &remove, Mode::Remove)?;
    Ok(PruneSummary {
        layers: Vec::new(),
        groups,
    })
}
