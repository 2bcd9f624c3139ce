//! Loss gradients of layer weights on calibration batches, for the Taylor criterion.

use candle_core::Tensor;

use super::data::{check_input_shape, shuffled_indices, Dataset};
use super::loss::{as_matrix, cross_entropy, scores_graph};
use super::params::{Params, Role};
use super::rebatch::rebatch;
use super::{Result, TrainError};
use crate::ir::{eval, Graph};
use crate::prune::request::Gradients;

/// The root-mean-square over `batches` batches of `batch_size` images of each layer
/// weight's loss gradient, keyed by the weight's value in `graph`. Pruning with the
/// Taylor criterion then scores a weight `|w| * rms(dL/dw)`, the square root of Molchanov
/// et al.'s (2019) mean squared first-order loss change `(dL/dw * w)^2`.
pub fn rms_gradients(
    graph: &Graph,
    data: &Dataset,
    batches: usize,
    batch_size: usize,
) -> Result<Gradients> {
    let input = *graph
        .inputs
        .first()
        .ok_or_else(|| TrainError::Model("the model has no input".into()))?;
    check_input_shape(data, graph.shape(input))?;
    let batch_size = batch_size.clamp(1, data.len());
    let batches = batches.clamp(1, data.len() / batch_size);
    let mut g = graph.clone();
    let params = Params::attach(&mut g)?;
    let scores = rebatch(&scores_graph(&g)?, batch_size)?;
    let order = shuffled_indices(data.len(), 0, 0);
    let weights: Vec<_> = params.iter().filter(|p| p.role == Role::Weight).collect();
    let mut squares: Vec<Option<Tensor>> = vec![None; weights.len()];
    for b in 0..batches {
        let (x, labels) = data.batch(&order[b * batch_size..(b + 1) * batch_size])?;
        let loss = cross_entropy(&as_matrix(&eval(&scores, &[x])?.remove(0))?, &labels)?;
        let grads = loss.backward()?;
        for (p, sum) in weights.iter().zip(&mut squares) {
            if let Some(grad) = grads.get(p.var.as_tensor()) {
                let sq = grad.detach().sqr()?;
                *sum = Some(match sum.take() {
                    Some(s) => (s + sq)?,
                    None => sq,
                });
            }
        }
    }
    let mut out = Gradients::new();
    for (p, sum) in weights.iter().zip(squares) {
        if let Some(sum) = sum {
            out.insert(p.value, (sum / batches as f64)?.sqrt()?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::digits;
    use crate::train::seed_model::seed_model;

    #[test]
    fn one_batch_gives_the_absolute_gradient() {
        let data = digits().unwrap();
        let g = seed_model([1, 8, 8], 10, 0).unwrap();
        let rms = rms_gradients(&g, &data, 1, 16).unwrap();
        // The same batch through candle autograd directly.
        let mut copy = g.clone();
        let params = Params::attach(&mut copy).unwrap();
        let scores = rebatch(&scores_graph(&copy).unwrap(), 16).unwrap();
        let order = shuffled_indices(data.len(), 0, 0);
        let (x, labels) = data.batch(&order[..16]).unwrap();
        let loss = cross_entropy(
            &as_matrix(&eval(&scores, &[x]).unwrap().remove(0)).unwrap(),
            &labels,
        )
        .unwrap();
        let grads = loss.backward().unwrap();
        let weights: Vec<_> = params.iter().filter(|p| p.role == Role::Weight).collect();
        assert_eq!(rms.len(), weights.len());
        for p in weights {
            let want = grads.get(p.var.as_tensor()).unwrap().abs().unwrap();
            let diff = (&rms[&p.value] - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-6, "{}: {diff}", p.name);
        }
        assert!(rms_gradients(&seed_model([1, 28, 28], 10, 0).unwrap(), &data, 1, 16).is_err());
    }
}
