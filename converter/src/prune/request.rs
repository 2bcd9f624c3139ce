//! One pruning request applied to a graph: which method, criterion, amount and scope, with
//! per-layer overrides and exclusions, and the defaults that protect the first layer and
//! the classifier.

use std::collections::HashMap;

use candle_core::Tensor;
use lopper_runtime::graph::Op as Rt;

use super::criteria::{bn_scale_scores, channel_scores, weight_scores, Criterion};
use super::depgraph::{build, DepGraph};
use super::layers::prune_layers;
use super::mask::{apply as apply_mask, global_masks, mask, sparsity_of, Granularity};
use super::structural::{apply, select, ChannelRequest, GroupChange, Mode};
use super::{PruneError, Result};
use crate::ir::{Graph, Op, ValueId};

/// What is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Weights, blocks or N:M groups are zeroed (stored sparse on export).
    Weights(Granularity),
    /// Output channels of convolutions and the layers tied to them are cut out.
    Channels,
    /// Neurons (output features) of linear layers are cut out.
    Neurons,
    /// Whole residual blocks (replaced by their shortcut) and shape-keeping conv units
    /// (replaced by their input).
    Layers,
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

/// Loss gradients of layer weights, by the weight's value: what the Taylor criterion
/// multiplies the weights by.
pub type Gradients = HashMap<ValueId, Tensor>;

/// Applies `request` to `graph`.
pub fn prune(graph: &mut Graph, request: &PruneRequest) -> Result<PruneSummary> {
    prune_with_gradients(graph, request, &Gradients::new())
}

/// Applies `request` to `graph`, scoring with `gradients` when the criterion is Taylor.
pub fn prune_with_gradients(
    graph: &mut Graph,
    request: &PruneRequest,
    gradients: &Gradients,
) -> Result<PruneSummary> {
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
    let layers = weight_layers(graph);
    for (name, n) in request
        .overrides
        .keys()
        .zip(resolve_names(graph, request.overrides.keys())?)
    {
        if matches!(request.method, Method::Channels | Method::Neurons) {
            return Err(PruneError::NotPrunable {
                layer: name.clone(),
                reason: "per-layer fractions apply to weight pruning; structural pruning uses one fraction per group".into(),
            });
        }
        if !layers.contains(&n) {
            let op = graph.nodes[n].op.name();
            return Err(PruneError::NotPrunable {
                layer: name.clone(),
                reason: format!("it is a {op}, which has no constant weights"),
            });
        }
    }
    let mut protected = excluded.clone();
    if request.protect_defaults {
        protected.extend(layers.first());
        protected.extend(layers.last());
    }
    match request.method {
        Method::Weights(granularity) => {
            prune_weights(graph, request, granularity, &layers, &protected, gradients)
        }
        Method::Channels | Method::Neurons => prune_channels(graph, request, &protected, gradients),
        Method::Layers => {
            let removed = prune_layers(graph, request.criterion, request.amount, &protected)?;
            let layers = removed.into_iter().map(|name| (name, 1.0)).collect();
            Ok(PruneSummary {
                layers,
                groups: Vec::new(),
            })
        }
    }
}

fn prune_weights(
    graph: &mut Graph,
    request: &PruneRequest,
    granularity: Granularity,
    layers: &[usize],
    protected: &[usize],
    gradients: &Gradients,
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
        .map(|&n| {
            let grad = gradients.get(&graph.nodes[n].inputs[1]);
            weight_scores(&weight(graph, n), request.criterion, grad)
        })
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
fn class_scores(
    graph: &Graph,
    dep: &DepGraph,
    criterion: Criterion,
    gradients: &Gradients,
) -> Result<Vec<f32>> {
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
                    channel_scores(w, 0, criterion, gradients.get(&node.inputs[1]))?
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
    gradients: &Gradients,
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
    let scores = class_scores(graph, &dep, request.criterion, gradients)?;
    let channel_request = ChannelRequest {
        ratio: request.amount,
        global: request.global,
        round_to: request.round_to,
        protect,
    };
    let (remove, groups) = select(graph, &dep, &scores, &channel_request)?;
    if request.amount > 0.0 && !remove.contains(&true) {
        let reasons: Vec<String> = groups
            .iter()
            .filter_map(|g| g.skipped.as_ref().map(|why| format!("{}: {why}", g.layer)))
            .collect();
        return Err(PruneError::NotPrunable {
            layer: "(every group)".into(),
            reason: format!("no channel can be removed ({})", reasons.join("; ")),
        });
    }
    apply(graph, &dep, &remove, Mode::Remove)?;
    Ok(PruneSummary {
        layers: Vec::new(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use lopper_runtime::graph::Activation;

    use super::*;

    /// x [1, 4] -> fc1 (8) -> relu -> fc2 (8) -> fc3 (3): three linear layers.
    fn mlp() -> Graph {
        let mut g = Graph::default();
        let x = g.activation("x", vec![1, 4]);
        g.inputs.push(x);
        let mut prev = x;
        for (i, (out, inp)) in [(8, 4), (8, 8), (3, 8)].into_iter().enumerate() {
            let values: Vec<f32> = (0..out * inp)
                .map(|k| ((k * 31 + i) % 17) as f32 - 8.0)
                .collect();
            let w = g.constant(
                &format!("w{i}"),
                Tensor::from_vec(values, (out, inp), &Device::Cpu).unwrap(),
            );
            let y = g.activation(&format!("y{i}"), vec![1, out]);
            g.push(
                &format!("fc{}", i + 1),
                Op::Runtime(Rt::Linear),
                vec![prev, w],
                vec![y],
            );
            g.nodes[i].activation = Activation::Relu;
            prev = y;
        }
        g.outputs.push(prev);
        g
    }

    fn request(method: Method, amount: f32) -> PruneRequest {
        PruneRequest {
            method,
            criterion: Criterion::L1,
            amount,
            global: false,
            round_to: 1,
            exclude: Vec::new(),
            overrides: HashMap::new(),
            protect_defaults: true,
        }
    }

    #[test]
    fn magnitude_pruning_spares_the_first_and_last_layers() {
        let mut g = mlp();
        let summary = prune(
            &mut g,
            &request(Method::Weights(Granularity::Unstructured), 0.5),
        )
        .unwrap();
        assert_eq!(summary.layers, vec![("fc2".to_string(), 0.5)]);
    }

    #[test]
    fn neurons_are_removed_for_real() {
        let mut g = mlp();
        let summary = prune(&mut g, &request(Method::Neurons, 0.5)).unwrap();
        // fc1's output is protected (first layer), fc3's is the graph output: only fc2 shrinks.
        assert_eq!(g.shape(g.nodes[1].outputs[0]), &[1, 4]);
        assert_eq!(g.shape(g.nodes[2].inputs[1]), &[3, 4]);
        assert!(summary
            .groups
            .iter()
            .any(|c| c.layer == "fc2" && c.before == 8 && c.after == 4));
    }

    #[test]
    fn bad_requests_are_refused_clearly() {
        let mut g = mlp();
        let err = prune(
            &mut g,
            &request(Method::Weights(Granularity::Unstructured), 1.0),
        )
        .unwrap_err();
        assert!(matches!(err, PruneError::Sparsity(s) if s == 1.0), "{err}");
        let mut r = request(Method::Weights(Granularity::Unstructured), 0.5);
        r.exclude = vec!["conv99".into()];
        assert_eq!(
            prune(&mut g, &r).unwrap_err().to_string(),
            "no layer is named 'conv99'"
        );
        // Every group protected or pinned by the graph output: nothing can go.
        let mut r = request(Method::Neurons, 0.5);
        r.exclude = vec!["fc2".into()];
        let err = prune(&mut g, &r).unwrap_err().to_string();
        assert!(
            err.contains("no channel can be removed") && err.contains("fc2: protected"),
            "{err}"
        );
        let mut r = request(Method::Channels, 0.5);
        r.overrides = HashMap::from([("fc2".to_string(), 0.3)]);
        assert!(prune(&mut g, &r)
            .unwrap_err()
            .to_string()
            .contains("per-layer fractions"));
    }
}
