//! Changing the batch size of an IR graph, so that one imported model trains on
//! mini-batches and evaluates a last, smaller batch.
//!
//! The IR has static shapes. A graph whose activations all carry the batch as their
//! leading axis, and whose ops never look across that axis, computes each sample on its
//! own; then a graph for another batch size is the same nodes with the leading dimension
//! of every activation replaced. Ops that mix or move the batch axis (a concatenation,
//! slice, gather, reduction, softmax or normalization over axis 0, a transpose that moves
//! it, a matrix product with a batched right operand) make the rebatch an error naming the
//! node.

use lopper_runtime::graph::Op as Rt;

use super::TrainError;
use crate::ir::{Graph, Op};

/// Returns `graph` with batch size `batch` instead of the batch of its first input.
pub fn rebatch(graph: &Graph, batch: usize) -> Result<Graph, TrainError> {
    if batch == 0 {
        return Err(TrainError::Config(
            "the batch size must be at least 1".into(),
        ));
    }
    let old = batch_of(graph)?;
    if old == batch {
        return Ok(graph.clone());
    }
    for node in &graph.nodes {
        if let Some(reason) = mixes_batch(graph, &node.op, &node.inputs) {
            return Err(TrainError::Batch(format!(
                "node '{}' ({}) {reason}, so the model cannot run with another batch size",
                node.name,
                node.op.name()
            )));
        }
    }
    let mut out = graph.clone();
    for value in out.values.iter_mut().filter(|v| v.constant.is_none()) {
        match value.shape.first_mut() {
            Some(first) if *first == old => *first = batch,
            _ => {
                return Err(TrainError::Batch(format!(
                    "value '{}' has shape {:?}, which does not start with the batch size {old}",
                    value.name, value.shape
                )))
            }
        }
    }
    Ok(out)
}

/// The batch size of a graph: the leading dimension of its first input.
pub fn batch_of(graph: &Graph) -> Result<usize, TrainError> {
    graph
        .inputs
        .first()
        .and_then(|&v| graph.shape(v).first().copied())
        .ok_or_else(|| TrainError::Batch("the graph has no input with a batch axis".into()))
}

/// Why an op with these operands couldn't run on another batch size, if it couldn't.
fn mixes_batch(graph: &Graph, op: &Op, inputs: &[usize]) -> Option<&'static str> {
    let Op::Runtime(op) = op else { return None };
    let on_batch = match op {
        Rt::Concat { axis } | Rt::Softmax { axis } => *axis == 0,
        Rt::Gather(g) => g.axis == 0,
        Rt::LayerNorm(n) => n.axis == 0,
        Rt::Reduce(r) => r.axes.contains(&0),
        Rt::Transpose { perm } => perm.first() != Some(&0),
        Rt::Slice(s) => {
            s.starts.first().is_some_and(|&start| start != 0)
                || s.steps.first().is_some_and(|&step| step != 1)
        }
        Rt::MatMul => inputs
            .get(1)
            .is_some_and(|&b| graph.constant_of(b).is_none()),
        _ => false,
    };
    on_batch.then_some("works across the batch axis")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::eval;
    use crate::prune::test_graphs::B;
    use candle_core::{Device, Tensor};
    use lopper_runtime::graph::Activation;

    #[test]
    fn rebatched_graph_computes_each_sample_like_batch_one() {
        let (mut b, x) = B::new(&[1, 3, 6, 6]);
        let c = b.conv(x, 4, 3, 1, Activation::Relu);
        let y = b.head(c, 3);
        let g = b.finish(y);
        let batched = rebatch(&g, 4).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (4, 3, 6, 6), &Device::Cpu).unwrap();
        let all = eval(&batched, std::slice::from_ref(&xs)).unwrap().remove(0);
        assert_eq!(all.dims(), &[4, 3]);
        for i in 0..4 {
            let one = eval(&g, &[xs.narrow(0, i, 1).unwrap()]).unwrap().remove(0);
            let diff = (one - all.narrow(0, i, 1).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "sample {i}: {diff}");
        }
        assert_eq!(batch_of(&rebatch(&batched, 1).unwrap()).unwrap(), 1);
    }

    #[test]
    fn ops_across_the_batch_are_refused_by_name() {
        let (mut b, x) = B::new(&[2, 3]);
        let t = b.node(
            Op::Runtime(Rt::Transpose { perm: vec![1, 0] }),
            vec![x],
            vec![3, 2],
            Activation::None,
        );
        let g = b.finish(t);
        let err = rebatch(&g, 8).unwrap_err().to_string();
        assert!(
            err.contains("Transpose") && err.contains("batch axis"),
            "{err}"
        );
        assert!(rebatch(&g, 0).is_err());
    }
}
