//! Compaction: rewrites that keep what the graph computes and make it smaller and faster.
//! BatchNorm folds into the preceding convolution or linear layer (or becomes a per-channel
//! Mul and Add), constant bias additions fold into that layer's bias, HardSwish written out
//! as elementwise nodes becomes one activation, activations fuse into their producer, and
//! nodes nobody reads are dropped.

mod hard_swish;

use candle_core::{DType, Tensor};
use lopper_runtime::graph::{Activation, BinaryKind, Op as Rt};

use crate::ir::{Graph, Op, ValueId};

/// What compaction did, for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// BatchNorms folded into a convolution or linear layer.
    pub batch_norms_folded: usize,
    /// BatchNorms turned into a per-channel Mul and Add.
    pub batch_norms_lowered: usize,
    /// Constant additions folded into a bias.
    pub biases_folded: usize,
    /// HardSwish patterns (`x * relu6(x + 3) / 6`, `x * HardSigmoid(x)`) made one activation.
    pub hard_swishes_recognised: usize,
    /// Activations fused into their producer.
    pub activations_fused: usize,
    /// Nodes removed because nothing reads them.
    pub dead_nodes_removed: usize,
}

/// Runs every pass until nothing changes.
pub fn compact(graph: &mut Graph) -> candle_core::Result<CompactStats> {
    let mut stats = CompactStats::default();
    loop {
        let before = stats.clone();
        fold_batch_norms(graph, &mut stats)?;
        fold_bias_adds(graph, &mut stats)?;
        stats.hard_swishes_recognised += hard_swish::fuse_hard_swish(graph);
        remove_dead_nodes(graph, &mut stats);
        fuse_activations(graph, &mut stats);
        remove_dead_nodes(graph, &mut stats);
        if stats == before {
            return Ok(stats);
        }
    }
}

/// The node writing `v`, if any.
fn producer(graph: &Graph, v: ValueId) -> Option<usize> {
    graph.nodes.iter().position(|n| n.outputs.contains(&v))
}

/// Whether `v` is read by exactly one node and is not a graph output.
fn private(graph: &Graph, v: ValueId) -> bool {
    let readers = graph.nodes.iter().filter(|n| n.inputs.contains(&v)).count();
    readers == 1 && !graph.outputs.contains(&v)
}

/// A convolution or linear layer with constant weights and no fused activation, whose
/// output is read only by `reader`: the target of BatchNorm and bias folding.
fn foldable_layer(graph: &Graph, v: ValueId) -> Option<usize> {
    let p = producer(graph, v)?;
    let node = &graph.nodes[p];
    let layer = matches!(node.op, Op::Runtime(Rt::Conv2d(_) | Rt::Linear));
    let constant = |slot: usize| {
        node.inputs
            .get(slot)
            .is_none_or(|&i| graph.constant_of(i).is_some())
    };
    (layer
        && node.activation == Activation::None
        && constant(1)
        && constant(2)
        && private(graph, v))
    .then_some(p)
}

/// Output channels of a layer's weight and its current bias (zeros when it has none).
fn layer_bias(graph: &Graph, layer: usize) -> candle_core::Result<Tensor> {
    let node = &graph.nodes[layer];
    let out_channels = graph.shape(node.inputs[1])[0];
    match node.inputs.get(2) {
        Some(&b) => graph
            .constant_of(b)
            .expect("foldable_layer checked")
            .to_dtype(DType::F32),
        None => Tensor::zeros(out_channels, DType::F32, &candle_core::Device::Cpu),
    }
}

/// Replaces the layer's bias (adding the input when it had none).
fn set_bias(graph: &mut Graph, layer: usize, bias: Tensor) {
    let name = format!("{}.bias", graph.nodes[layer].name);
    let id = graph.constant(&name, bias);
    let node = &mut graph.nodes[layer];
    if node.inputs.len() > 2 {
        node.inputs[2] = id;
    } else {
        node.inputs.push(id);
    }
}

/// Makes `node` write `to` instead of its current output and removes node `gone`.
fn bypass(graph: &mut Graph, node: usize, gone: usize) {
    let to = graph.nodes[gone].outputs[0];
    graph.nodes[node].outputs[0] = to;
    graph.nodes.remove(gone);
}

fn fold_batch_norms(graph: &mut Graph, stats: &mut CompactStats) -> candle_core::Result<()> {
    let mut i = 0;
    while i < graph.nodes.len() {
        let Op::BatchNorm { epsilon } = graph.nodes[i].op else {
            i += 1;
            continue;
        };
        let node = graph.nodes[i].clone();
        let param = |slot: usize| {
            graph
                .constant_of(node.inputs[slot])
                .expect("import keeps BatchNorm parameters constant")
                .to_dtype(DType::F32)
        };
        let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
        // y = (x - mean) * s + beta with s = gamma / sqrt(var + eps).
        let scale = gamma.div(&var.affine(1.0, f64::from(epsilon))?.sqrt()?)?;
        let shift = beta.sub(&mean.mul(&scale)?)?;
        if let Some(layer) = foldable_layer(graph, node.inputs[0]) {
            let w_id = graph.nodes[layer].inputs[1];
            let w = graph
                .constant_of(w_id)
                .expect("checked")
                .to_dtype(DType::F32)?;
            let mut per_row = vec![w.dims()[0]];
            per_row.resize(w.rank(), 1);
            let w = w.broadcast_mul(&scale.reshape(per_row)?)?;
            let bias = layer_bias(graph, layer)?.mul(&scale)?.add(&shift)?;
            let name = format!("{}.weight", graph.nodes[layer].name);
            graph.nodes[layer].inputs[1] = graph.constant(&name, w);
            set_bias(graph, layer, bias);
            graph.nodes[layer].activation = node.activation;
            bypass(graph, layer, i);
            stats.batch_norms_folded += 1;
            continue;
        }
        // Otherwise a per-channel Mul and Add, channels on axis 1.
        let shape = graph.shape(node.inputs[0]).to_vec();
        let mut per_channel = vec![shape[1]];
        per_channel.resize(shape.len() - 1, 1);
        let s = graph.constant(
            &format!("{}.scale", node.name),
            scale.reshape(per_channel.clone())?,
        );
        let t = graph.constant(&format!("{}.shift", node.name), shift.reshape(per_channel)?);
        let mid = graph.activation(&format!("{}.scaled", node.name), shape);
        graph.nodes[i].op = Op::Runtime(Rt::Binary(BinaryKind::Mul));
        graph.nodes[i].inputs = vec![node.inputs[0], s];
        graph.nodes[i].outputs = vec![mid];
        let add = crate::ir::Node {
            name: format!("{}.shift", node.name),
            op: Op::Runtime(Rt::Binary(BinaryKind::Add)),
            inputs: vec![mid, t],
            outputs: node.outputs.clone(),
            activation: node.activation,
        };
        graph.nodes[i].activation = Activation::None;
        graph.nodes.insert(i + 1, add);
        stats.batch_norms_lowered += 1;
        i += 2;
    }
    Ok(())
}

/// `Add(layer(x), c)` with a constant `c` that is one value per output channel (shape
/// `[C]` for Linear, `[C, 1, 1]` or `[1, C, 1, 1]` for Conv2d) becomes the layer's bias.
fn fold_bias_adds(graph: &mut Graph, stats: &mut CompactStats) -> candle_core::Result<()> {
    let mut i = 0;
    while i < graph.nodes.len() {
        let node = &graph.nodes[i];
        if node.op != Op::Runtime(Rt::Binary(BinaryKind::Add)) || node.inputs.len() != 2 {
            i += 1;
            continue;
        }
        let (a, b) = (node.inputs[0], node.inputs[1]);
        let (x, c) = if graph.constant_of(b).is_some() {
            (a, b)
        } else {
            (b, a)
        };
        let (Some(layer), Some(data)) = (foldable_layer(graph, x), graph.constant_of(c)) else {
            i += 1;
            continue;
        };
        let channels = graph.shape(graph.nodes[layer].inputs[1])[0];
        let out_rank = graph.shape(x).len();
        let cs = graph.shape(c);
        // The channel axis is 1 for convolutions, the last axis for linear layers.
        let channel_axis = if matches!(graph.nodes[layer].op, Op::Runtime(Rt::Conv2d(_))) {
            1
        } else {
            out_rank - 1
        };
        let per_channel = cs.len() <= out_rank
            && cs.iter().rev().enumerate().all(|(k, &d)| {
                let axis = out_rank - 1 - k;
                d == 1 || (axis == channel_axis && d == channels)
            })
            && cs.iter().product::<usize>() == channels;
        if !per_channel || graph.shape(node.outputs[0]) != graph.shape(x) {
            i += 1;
            continue;
        }
        let add = data.to_dtype(DType::F32)?.flatten_all()?;
        let bias = layer_bias(graph, layer)?.add(&add)?;
        set_bias(graph, layer, bias);
        let activation = graph.nodes[i].activation;
        graph.nodes[layer].activation = activation;
        bypass(graph, layer, i);
        stats.biases_folded += 1;
    }
    Ok(())
}

/// A `Unary` node fuses into the node writing its input when that node has no activation
/// and nobody else reads the value.
fn fuse_activations(graph: &mut Graph, stats: &mut CompactStats) {
    let mut i = 0;
    while i < graph.nodes.len() {
        let node = &graph.nodes[i];
        if node.op != Op::Runtime(Rt::Unary) {
            i += 1;
            continue;
        }
        let x = node.inputs[0];
        let target = producer(graph, x).filter(|&p| {
            let p = &graph.nodes[p];
            p.activation == Activation::None
                && p.outputs.len() == 1
                && !matches!(p.op, Op::BatchNorm { .. })
                && private(graph, x)
        });
        match target {
            Some(p) => {
                graph.nodes[p].activation = graph.nodes[i].activation;
                bypass(graph, p, i);
                stats.activations_fused += 1;
            }
            None => i += 1,
        }
    }
}

/// Removes nodes whose outputs nobody reads, until none is left.
fn remove_dead_nodes(graph: &mut Graph, stats: &mut CompactStats) {
    loop {
        let used: Vec<bool> = {
            let mut used = vec![false; graph.values.len()];
            for n in &graph.nodes {
                for &v in &n.inputs {
                    used[v] = true;
                }
            }
            for &v in &graph.outputs {
                used[v] = true;
            }
            used
        };
        let before = graph.nodes.len();
        graph.nodes.retain(|n| n.outputs.iter().any(|&o| used[o]));
        let removed = before - graph.nodes.len();
        if removed == 0 {
            return;
        }
        stats.dead_nodes_removed += removed;
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use lopper_runtime::graph::Conv2d;

    use super::*;
    use crate::ir::eval;

    fn t(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn seq(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * scale)
            .collect()
    }

    /// Runs `graph` before and after compaction on the same input; they must agree.
    fn same_outputs(mut graph: Graph, input: Tensor) -> (Graph, CompactStats) {
        let before = eval(&graph, std::slice::from_ref(&input)).unwrap();
        let stats = compact(&mut graph).unwrap();
        let after = eval(&graph, &[input]).unwrap();
        for (b, a) in before.iter().zip(&after) {
            let diff = b
                .sub(a)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        }
        (graph, stats)
    }

    /// x -> Conv (2 out channels) -> BatchNorm -> Relu -> y, plus a dead branch.
    fn conv_bn_relu() -> Graph {
        let mut g = Graph::default();
        let x = g.activation("x", vec![1, 1, 3, 3]);
        g.inputs.push(x);
        let w = g.constant("w", t(&seq(8, 0.3), &[2, 1, 2, 2]));
        let c = g.activation("c", vec![1, 2, 2, 2]);
        g.push(
            "conv",
            Op::Runtime(Rt::Conv2d(Conv2d::default())),
            vec![x, w],
            vec![c],
        );
        let params: Vec<ValueId> = [[1.5f32, -0.5], [0.1, 0.2], [0.3, -0.4], [2.0, 0.5]]
            .iter()
            .enumerate()
            .map(|(i, p)| g.constant(&format!("bn{i}"), t(p, &[2])))
            .collect();
        let b = g.activation("b", vec![1, 2, 2, 2]);
        let mut inputs = vec![c];
        inputs.extend(params);
        g.push("bn", Op::BatchNorm { epsilon: 1e-5 }, inputs, vec![b]);
        let y = g.activation("y", vec![1, 2, 2, 2]);
        g.push("relu", Op::Runtime(Rt::Unary), vec![b], vec![y]);
        g.nodes[2].activation = Activation::Relu;
        let dead = g.activation("dead", vec![1, 2, 2, 2]);
        g.push("dead", Op::Runtime(Rt::Unary), vec![b], vec![dead]);
        g.outputs.push(y);
        g
    }

    #[test]
    fn batch_norm_folds_into_conv_and_relu_fuses() {
        let x = t(&seq(9, 0.7), &[1, 1, 3, 3]);
        let (g, stats) = same_outputs(conv_bn_relu(), x);
        assert_eq!(stats.dead_nodes_removed, 1);
        assert_eq!(stats.batch_norms_folded, 1);
        assert_eq!(stats.activations_fused, 1);
        assert_eq!(g.nodes.len(), 1, "one conv with bias and relu is left");
        assert_eq!(g.nodes[0].activation, Activation::Relu);
        assert_eq!(g.nodes[0].inputs.len(), 3);
    }

    #[test]
    fn batch_norm_without_a_layer_becomes_mul_and_add() {
        let mut g = Graph::default();
        let x = g.activation("x", vec![1, 2, 2, 2]);
        g.inputs.push(x);
        let params: Vec<ValueId> = (0..4)
            .map(|i| g.constant(&format!("p{i}"), t(&[1.0 + i as f32, 0.5], &[2])))
            .collect();
        let y = g.activation("y", vec![1, 2, 2, 2]);
        let mut inputs = vec![x];
        inputs.extend(params);
        g.push("bn", Op::BatchNorm { epsilon: 1e-3 }, inputs, vec![y]);
        g.outputs.push(y);
        let (g, stats) = same_outputs(g, t(&seq(8, 0.9), &[1, 2, 2, 2]));
        assert_eq!(stats.batch_norms_lowered, 1);
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(ops, ["Mul", "Add"]);
    }

    #[test]
    fn constant_add_after_linear_becomes_its_bias() {
        let mut g = Graph::default();
        let x = g.activation("x", vec![2, 3]);
        g.inputs.push(x);
        let w = g.constant("w", t(&seq(12, 0.2), &[4, 3]));
        let l = g.activation("l", vec![2, 4]);
        g.push("fc", Op::Runtime(Rt::Linear), vec![x, w], vec![l]);
        let c = g.constant("c", t(&[1.0, -2.0, 3.0, 0.5], &[4]));
        let y = g.activation("y", vec![2, 4]);
        g.push(
            "add",
            Op::Runtime(Rt::Binary(BinaryKind::Add)),
            vec![l, c],
            vec![y],
        );
        g.outputs.push(y);
        let (g, stats) = same_outputs(g, t(&seq(6, 0.5), &[2, 3]));
        assert_eq!(stats.biases_folded, 1);
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.nodes[0].inputs.len(), 3);
    }

    #[test]
    fn an_add_of_a_full_tensor_is_not_a_bias() {
        let mut g = Graph::default();
        let x = g.activation("x", vec![2, 3]);
        g.inputs.push(x);
        let w = g.constant("w", t(&seq(12, 0.2), &[4, 3]));
        let l = g.activation("l", vec![2, 4]);
        g.push("fc", Op::Runtime(Rt::Linear), vec![x, w], vec![l]);
        let c = g.constant("c", t(&seq(8, 1.0), &[2, 4]));
        let y = g.activation("y", vec![2, 4]);
        g.push(
            "add",
            Op::Runtime(Rt::Binary(BinaryKind::Add)),
            vec![l, c],
            vec![y],
        );
        g.outputs.push(y);
        let (g, stats) = same_outputs(g, t(&seq(6, 0.5), &[2, 3]));
        assert_eq!(stats.biases_folded, 0);
        assert_eq!(g.nodes.len(), 2);
    }

    /// x -> Conv -> `c * relu6(c + 3) / divisor` (or `* (1 / 6)` when `divisor` is None),
    /// with the relu6 as its own Clip node when `clip_node`, else fused into the Add.
    fn conv_then_hard_swish(divisor: Option<f32>, clip_node: bool) -> Graph {
        let mut g = Graph::default();
        let x = g.activation("x", vec![1, 1, 3, 3]);
        g.inputs.push(x);
        let w = g.constant("w", t(&seq(8, 2.0), &[2, 1, 2, 2]));
        let shape = vec![1, 2, 2, 2];
        let c = g.activation("c", shape.clone());
        let conv = Op::Runtime(Rt::Conv2d(Conv2d::default()));
        g.push("conv", conv, vec![x, w], vec![c]);
        let three = g.constant("three", t(&[3.0], &[]));
        let shifted = g.activation("shifted", shape.clone());
        let add = Op::Runtime(Rt::Binary(BinaryKind::Add));
        g.push("add", add, vec![c, three], vec![shifted]);
        let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
        let gate = if clip_node {
            let gate = g.activation("gate", shape.clone());
            g.push("clip", Op::Runtime(Rt::Unary), vec![shifted], vec![gate]);
            g.nodes.last_mut().unwrap().activation = relu6;
            gate
        } else {
            g.nodes.last_mut().unwrap().activation = relu6;
            shifted
        };
        let product = g.activation("product", shape.clone());
        let mul = Op::Runtime(Rt::Binary(BinaryKind::Mul));
        g.push("mul", mul.clone(), vec![gate, c], vec![product]);
        let (kind, k) = match divisor {
            Some(d) => (BinaryKind::Div, d),
            None => (BinaryKind::Mul, 1.0 / 6.0),
        };
        let k = g.constant("k", t(&[k], &[1]));
        let y = g.activation("y", shape);
        g.push(
            "scale",
            Op::Runtime(Rt::Binary(kind)),
            vec![product, k],
            vec![y],
        );
        g.outputs.push(y);
        g
    }

    #[test]
    fn written_out_hard_swish_fuses_into_the_conv() {
        for (divisor, clip_node) in [(Some(6.0), true), (None, true), (Some(6.0), false)] {
            let g = conv_then_hard_swish(divisor, clip_node);
            let (g, stats) = same_outputs(g, t(&seq(9, 0.7), &[1, 1, 3, 3]));
            assert_eq!(stats.hard_swishes_recognised, 1, "{divisor:?} {clip_node}");
            assert_eq!(g.nodes.len(), 1, "{:?}", g.nodes);
            assert_eq!(g.nodes[0].activation, Activation::HardSwish);
        }
    }

    #[test]
    fn a_different_divisor_or_a_shared_gate_is_not_hard_swish() {
        let (g, stats) = same_outputs(
            conv_then_hard_swish(Some(5.0), true),
            t(&seq(9, 0.7), &[1, 1, 3, 3]),
        );
        assert_eq!(stats.hard_swishes_recognised, 0);
        assert_eq!(
            g.nodes.len(),
            4,
            "Clip fuses into the Add, nothing else changes"
        );

        let mut g = conv_then_hard_swish(Some(6.0), true);
        let gate = g.nodes[2].outputs[0];
        g.outputs.push(gate);
        let (g, stats) = same_outputs(g, t(&seq(9, 0.7), &[1, 1, 3, 3]));
        assert_eq!(
            stats.hard_swishes_recognised, 0,
            "the gate is a graph output"
        );
        assert!(g.nodes.len() >= 4);
    }

    #[test]
    fn x_times_hard_sigmoid_of_x_is_hard_swish() {
        let mut g = Graph::default();
        let x = g.activation("x", vec![2, 5]);
        g.inputs.push(x);
        let gate = g.activation("gate", vec![2, 5]);
        g.push("hsig", Op::Runtime(Rt::Unary), vec![x], vec![gate]);
        g.nodes[0].activation = Activation::HardSigmoid {
            alpha: 1.0 / 6.0,
            beta: 0.5,
        };
        let y = g.activation("y", vec![2, 5]);
        let mul = Op::Runtime(Rt::Binary(BinaryKind::Mul));
        g.push("mul", mul, vec![x, gate], vec![y]);
        g.outputs.push(y);
        let (g, stats) = same_outputs(g, t(&seq(10, 1.3), &[2, 5]));
        assert_eq!(stats.hard_swishes_recognised, 1);
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.nodes[0].activation, Activation::HardSwish);
    }
}
