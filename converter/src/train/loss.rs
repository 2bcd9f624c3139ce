//! Cross-entropy on class scores, and finding the class scores in a graph.

use candle_core::{DType, Tensor, D};
use lopper_runtime::graph::Op as Rt;

use super::{Result, TrainError};
use crate::ir::{Graph, Op, ValueId};

/// Mean cross-entropy of `logits` `[N, classes]` against `labels` (one class index per
/// row): `mean(logsumexp(z) - z[label])`, computed with the row maximum subtracted so large
/// scores do not overflow. Differentiable.
pub fn cross_entropy(logits: &Tensor, labels: &[u32]) -> Result<Tensor> {
    let log_probs = log_softmax(logits)?;
    let picked = (log_probs * one_hot(labels, logits.dim(1)?, logits.device())?)?;
    Ok(picked.sum(1)?.mean_all()?.neg()?)
}

/// `log(softmax(z))` along the last axis.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// `[labels.len(), classes]` with a 1 at each label.
fn one_hot(labels: &[u32], classes: usize, device: &candle_core::Device) -> Result<Tensor> {
    let mut data = vec![0f32; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        data[row * classes + label as usize] = 1.0;
    }
    Ok(Tensor::from_vec(data, (labels.len(), classes), device)?)
}

/// The value holding the class scores of a classifier: its single output, or the input of
/// a final Softmax (training needs the scores before it). Errors when the model has
/// several outputs or its output is not `[N, classes]` (with optional trailing 1s).
pub fn logits_value(graph: &Graph) -> Result<ValueId> {
    let &[out] = graph.outputs.as_slice() else {
        return Err(TrainError::Model(format!(
            "the model has {} outputs; training and evaluation need a classifier with one output of class scores",
            graph.outputs.len()
        )));
    };
    let producer = graph.nodes.iter().find(|n| n.outputs.contains(&out));
    let value = match producer {
        Some(node) if matches!(node.op, Op::Runtime(Rt::Softmax { .. })) => node.inputs[0],
        _ => out,
    };
    let shape = graph.shape(value);
    if shape.len() < 2 || shape[2..].iter().any(|&d| d != 1) {
        return Err(TrainError::Model(format!(
            "output '{}' has shape {shape:?}; a classifier's output is [batch, classes]",
            graph.values[value].name
        )));
    }
    Ok(value)
}

/// `graph` with `value` as its only output (the scores before a final Softmax).
pub fn scores_graph(graph: &Graph) -> Result<Graph> {
    let value = logits_value(graph)?;
    let mut g = graph.clone();
    g.outputs = vec![value];
    if let Some(last) = g.nodes.iter().rposition(|n| n.outputs.contains(&value)) {
        g.nodes.truncate(last + 1);
    }
    Ok(g)
}

/// Flattens scores `[N, classes, 1, ...]` to `[N, classes]` in f32.
pub fn as_matrix(scores: &Tensor) -> Result<Tensor> {
    let n = scores.dim(0)?;
    let classes = scores.elem_count() / n.max(1);
    Ok(scores.reshape((n, classes))?.to_dtype(DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_by_hand() {
        // Row 0: scores [0, ln 3] -> p = [1/4, 3/4], label 1 -> -ln(3/4).
        // Row 1: scores [2, 2]    -> p = [1/2, 1/2], label 0 -> ln 2.
        let z = Tensor::new(&[[0f32, 3f32.ln()], [2.0, 2.0]], &Device::Cpu).unwrap();
        let loss = cross_entropy(&z, &[1, 0])
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (-(0.75f32).ln() + 2f32.ln()) / 2.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
        // Huge scores do not overflow.
        let z = Tensor::new(&[[1000f32, 0.0]], &Device::Cpu).unwrap();
        let loss = cross_entropy(&z, &[0]).unwrap().to_scalar::<f32>().unwrap();
        assert!(loss.abs() < 1e-6, "{loss}");
    }

    #[test]
    fn gradient_is_softmax_minus_one_hot() {
        let var = candle_core::Var::new(&[[1f32, 2.0, 3.0]], &Device::Cpu).unwrap();
        let loss = cross_entropy(var.as_tensor(), &[2]).unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<f32> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let e: Vec<f32> = [1f32, 2.0, 3.0].iter().map(|z| z.exp()).collect();
        let sum: f32 = e.iter().sum();
        let want = [e[0] / sum, e[1] / sum, e[2] / sum - 1.0];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{g:?} vs {want:?}");
        }
    }
}
