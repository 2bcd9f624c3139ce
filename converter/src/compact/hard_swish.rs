//! HardSwish written out as elementwise nodes becomes one `HardSwish` activation, which then
//! fuses into the layer before it. Exporters without a HardSwish op (Paddle, opsets before
//! 14) write `x * relu6(x + 3) / 6` as Add, Clip, Mul and Div (or a Mul by 1/6), or
//! `x * HardSigmoid(x)` with alpha 1/6 and beta 1/2; run as written that is four passes over
//! memory where one fused epilogue suffices.

use candle_core::DType;
use lopper_runtime::graph::{Activation, BinaryKind, Op as Rt};

use super::{private, producer};
use crate::ir::{Graph, Op, ValueId};

/// Rewrites every HardSwish pattern into a `Unary` HardSwish node; returns how many.
pub(super) fn fuse_hard_swish(graph: &mut Graph) -> usize {
    let mut fused = 0;
    for i in 0..graph.nodes.len() {
        if let Some(x) = hard_swish_input(graph, i) {
            let node = &mut graph.nodes[i];
            node.op = Op::Runtime(Rt::Unary);
            node.inputs = vec![x];
            node.activation = Activation::HardSwish;
            fused += 1;
        }
    }
    fused
}

/// The `x` of node `i` when node `i` computes `hardswish(x)` from nodes nobody else reads.
fn hard_swish_input(graph: &Graph, i: usize) -> Option<ValueId> {
    let node = &graph.nodes[i];
    if node.activation != Activation::None || node.outputs.len() != 1 {
        return None;
    }
    let out_shape = graph.shape(node.outputs[0]);
    match node.op {
        // x * HardSigmoid(x) with alpha 1/6, beta 1/2.
        Op::Runtime(Rt::Binary(BinaryKind::Mul)) if !is_scaled_product(graph, i) => {
            let (x, gate) = product_with(graph, i, |gate| {
                let p = single_reader_producer(graph, gate)?;
                let n = &graph.nodes[p];
                let is_gate = n.op == Op::Runtime(Rt::Unary)
                    && matches!(n.activation, Activation::HardSigmoid { alpha, beta }
                        if close(alpha, 1.0 / 6.0) && close(beta, 0.5));
                is_gate.then_some(n.inputs[0])
            })?;
            (graph.shape(x) == out_shape && gate == x).then_some(x)
        }
        // (x * relu6(x + 3)) / 6 or (x * relu6(x + 3)) * (1 / 6).
        Op::Runtime(Rt::Binary(kind @ (BinaryKind::Div | BinaryKind::Mul))) => {
            let (m, c) = (node.inputs[0], node.inputs[1]);
            let divisor = scalar(graph, c)?;
            let scale_ok = match kind {
                BinaryKind::Div => close(divisor, 6.0),
                _ => close(divisor, 1.0 / 6.0),
            };
            if !scale_ok {
                return None;
            }
            let p = single_reader_producer(graph, m)?;
            if graph.nodes[p].op != Op::Runtime(Rt::Binary(BinaryKind::Mul))
                || graph.nodes[p].activation != Activation::None
            {
                return None;
            }
            let (x, shifted) = product_with(graph, p, |gate| relu6_of_plus_three(graph, gate))?;
            (shifted == x && graph.shape(x) == out_shape).then_some(x)
        }
        _ => None,
    }
}

/// Whether Mul node `i` is itself `product * (1/6)`, the outer node of the relu6 form.
fn is_scaled_product(graph: &Graph, i: usize) -> bool {
    graph.nodes[i]
        .inputs
        .get(1)
        .and_then(|&c| scalar(graph, c))
        .is_some_and(|s| close(s, 1.0 / 6.0))
}

/// For a binary node `p` reading `(a, b)`, the pair `(other, found)` where `gate` accepts
/// one operand (returning `found`) and `other` is the remaining operand.
fn product_with(
    graph: &Graph,
    p: usize,
    gate: impl Fn(ValueId) -> Option<ValueId>,
) -> Option<(ValueId, ValueId)> {
    let inputs = &graph.nodes[p].inputs;
    let (a, b) = (*inputs.first()?, *inputs.get(1)?);
    gate(b).map(|f| (a, f)).or_else(|| gate(a).map(|f| (b, f)))
}

/// `x` when `v = relu6(x + 3)`, written as `Clip(Add(x, 3), 0, 6)` or as an Add with a
/// fused Clip.
fn relu6_of_plus_three(graph: &Graph, v: ValueId) -> Option<ValueId> {
    let relu6 = |a: Activation| a == Activation::Clip { min: 0.0, max: 6.0 };
    let p = single_reader_producer(graph, v)?;
    let clip = &graph.nodes[p];
    let add = if clip.op == Op::Runtime(Rt::Unary) && relu6(clip.activation) {
        let a = single_reader_producer(graph, clip.inputs[0])?;
        (graph.nodes[a].activation == Activation::None).then_some(a)?
    } else if relu6(clip.activation) {
        p
    } else {
        return None;
    };
    let add = &graph.nodes[add];
    if add.op != Op::Runtime(Rt::Binary(BinaryKind::Add)) {
        return None;
    }
    let (a, b) = (add.inputs[0], add.inputs[1]);
    let three = |c: ValueId| scalar(graph, c).is_some_and(|s| close(s, 3.0));
    if three(b) {
        Some(a)
    } else if three(a) {
        Some(b)
    } else {
        None
    }
}

/// The producer of `v` when `v` is read by one node only (so rewriting that node loses
/// nothing) and is written by a single-output node.
fn single_reader_producer(graph: &Graph, v: ValueId) -> Option<usize> {
    let p = producer(graph, v)?;
    (private(graph, v) && graph.nodes[p].outputs.len() == 1).then_some(p)
}

/// The value of a constant holding exactly one number.
fn scalar(graph: &Graph, v: ValueId) -> Option<f32> {
    let t = graph.constant_of(v)?;
    if t.elem_count() != 1 {
        return None;
    }
    t.to_dtype(DType::F32)
        .ok()?
        .flatten_all()
        .ok()?
        .to_vec1::<f32>()
        .ok()?
        .first()
        .copied()
}

/// Equal up to f32 rounding of the decimal constants exporters write.
fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}
