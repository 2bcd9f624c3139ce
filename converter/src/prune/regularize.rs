//! Penalty terms that train weights toward sparsity, as differentiable candle expressions:
//! add one to the loss, and candle's autograd carries its gradient to every weight that is
//! a `Var`. Each returns an f32 scalar (rank-0) tensor; an empty list gives 0.

use candle_core::{DType, Device, Tensor};

use super::{PruneError, Result};

/// Below this squared norm, a channel's norm is computed as `s / sqrt(NORM_FLOOR)` so that
/// an all-zero channel has a zero gradient instead of `0 / 0`; above it, exactly `sqrt(s)`.
const NORM_FLOOR: f64 = 1e-20;

/// `lambda * sum(term(t))` over `tensors`, each term an f32 scalar.
fn penalty(
    tensors: &[Tensor],
    lambda: f64,
    term: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for t in tensors {
        let value = term(&t.to_dtype(DType::F32)?)?;
        total = Some(match total {
            Some(acc) => acc.add(&value)?,
            None => value,
        });
    }
    match total {
        Some(total) => Ok(total.affine(lambda, 0.0)?),
        None => Ok(Tensor::zeros((), DType::F32, &Device::Cpu)?),
    }
}

/// Lasso, `lambda * sum |w|` over all weights: pushes single weights to exactly zero.
pub fn l1(weights: &[Tensor], lambda: f64) -> Result<Tensor> {
    penalty(weights, lambda, |w| Ok(w.abs()?.sum_all()?))
}

/// Weight decay, `lambda * sum w^2` over all weights: shrinks weights toward zero.
pub fn l2(weights: &[Tensor], lambda: f64) -> Result<Tensor> {
    penalty(weights, lambda, |w| Ok(w.sqr()?.sum_all()?))
}

/// Group lasso (Wen et al. 2016, "Learning Structured Sparsity"), `lambda * sum_g ||w_g||_2`
/// where `g` runs over the slices of each weight along `axis` (0: output channels): pushes
/// whole channels to zero. Its gradient is `lambda * w_g / ||w_g||` (0 for a zero channel).
pub fn group_lasso(weights: &[Tensor], axis: usize, lambda: f64) -> Result<Tensor> {
    penalty(weights, lambda, |w| {
        if axis >= w.rank() {
            return Err(PruneError::Shape(format!(
                "group axis {axis} is out of range for a weight of shape {:?}",
                w.dims()
            )));
        }
        let others: Vec<usize> = (0..w.rank()).filter(|&d| d != axis).collect();
        let squares = if others.is_empty() {
            w.sqr()?
        } else {
            w.sqr()?.sum(others)?
        };
        let norms = squares.div(&squares.maximum(NORM_FLOOR)?.sqrt()?)?;
        Ok(norms.sum_all()?)
    })
}

/// Network slimming's sparsity term (Liu et al. 2017), `lambda * sum |gamma|` over
/// BatchNorm scales `[C]`: drives whole channels' scales to zero.
pub fn bn_l1(gammas: &[Tensor], lambda: f64) -> Result<Tensor> {
    if let Some(g) = gammas.iter().find(|g| g.rank() != 1) {
        return Err(PruneError::Shape(format!(
            "a BatchNorm scale is one value per channel, got shape {:?}",
            g.dims()
        )));
    }
    l1(gammas, lambda)
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn scalar(t: Tensor) -> f32 {
        assert_eq!(t.rank(), 0);
        t.to_scalar().unwrap()
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    /// `[[1, -2], [3, -4]]` and `[0.5]`.
    fn weights() -> Vec<Tensor> {
        vec![t(&[1.0, -2.0, 3.0, -4.0], &[2, 2]), t(&[0.5], &[1])]
    }

    #[test]
    fn penalties_by_hand() {
        // 0.1 * (1 + 2 + 3 + 4 + 0.5)
        assert!(close(scalar(l1(&weights(), 0.1).unwrap()), 1.05));
        // 0.5 * (1 + 4 + 9 + 16 + 0.25)
        assert!(close(scalar(l2(&weights(), 0.5).unwrap()), 15.125));
        let w = &weights()[..1];
        // Rows: sqrt(1 + 4) + sqrt(9 + 16); columns: sqrt(1 + 9) + sqrt(4 + 16).
        let rows = 5f32.sqrt() + 5.0;
        assert!(close(scalar(group_lasso(w, 0, 1.0).unwrap()), rows));
        // A vector's groups are its single entries.
        assert!(close(
            scalar(group_lasso(&weights(), 0, 1.0).unwrap()),
            rows + 0.5
        ));
        let cols = 10f32.sqrt() + 20f32.sqrt();
        assert!(close(scalar(group_lasso(w, 1, 2.0).unwrap()), 2.0 * cols));
        // A zero channel counts 0; a 4-D weight groups along axis 0 over the other three.
        let conv = t(&[0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 4.0], &[2, 2, 1, 2]);
        assert!(close(scalar(group_lasso(&[conv], 0, 1.0).unwrap()), 5.0));
        let gammas = [t(&[0.5, -2.0, 0.0], &[3])];
        assert!(close(scalar(bn_l1(&gammas, 0.01).unwrap()), 0.025));
        assert_eq!(scalar(l1(&[], 1.0).unwrap()), 0.0);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let e = group_lasso(&weights(), 1, 1.0).unwrap_err();
        assert!(e.to_string().contains("axis 1 is out of range"), "{e}");
        assert!(bn_l1(&weights(), 1.0).is_err());
    }

    #[test]
    fn group_lasso_gradient_is_w_over_norm() {
        let w = Var::from_tensor(&t(&[1.0, -2.0, 3.0, -4.0, 0.0, 0.0], &[3, 2])).unwrap();
        let loss = group_lasso(&[w.as_tensor().clone()], 0, 2.0).unwrap();
        let grads = loss.backward().unwrap();
        let got: Vec<f32> = grads
            .get(&w)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let n0 = 5f32.sqrt();
        let want = [2.0 / n0, -4.0 / n0, 6.0 / 5.0, -8.0 / 5.0, 0.0, 0.0];
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, w), "{got:?} vs {want:?}");
        }
        // L1's gradient is lambda * sign(w).
        let loss = l1(&[w.as_tensor().clone()], 0.5).unwrap();
        let grads = loss.backward().unwrap();
        let got: Vec<f32> = grads
            .get(&w)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got[..4], [0.5, -0.5, 0.5, -0.5]);
    }
}
