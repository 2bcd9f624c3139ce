//! Importance criteria: how much each weight, or each channel, matters. Every score is
//! "higher is more important"; masks remove the lowest scores first.

use candle_core::{DType, Tensor};

use super::{to_f32_vec, PruneError, Result};

/// How importance is measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Criterion {
    /// Magnitude `|w|`: small weights matter least (Han et al. 2015; per filter, the L1
    /// norm of Li et al. 2017, "Pruning Filters for Efficient ConvNets").
    L1,
    /// Energy `w^2`, per channel the L2 norm (He et al. 2018, "Soft Filter Pruning").
    L2,
    /// Uniform random scores from `seed`: the baseline every criterion must beat (Liu et
    /// al. 2019, "Rethinking the Value of Network Pruning").
    Random {
        /// Same seed, same scores.
        seed: u64,
    },
    /// `|gamma|` of the BatchNorm after a channel (Liu et al. 2017, "Network Slimming");
    /// scores channels only, through [`bn_scale_scores`].
    BnScale,
    /// First-order Taylor estimate of the loss change when a weight is removed,
    /// `|dL/dw * w|` (Molchanov et al. 2019, "Importance Estimation for Neural Network
    /// Pruning"); needs the gradient from calibration batches.
    Taylor,
}

impl Criterion {
    /// Short name for messages and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Criterion::L1 => "l1",
            Criterion::L2 => "l2",
            Criterion::Random { .. } => "random",
            Criterion::BnScale => "bn-scale",
            Criterion::Taylor => "taylor",
        }
    }

    fn error(self, reason: impl Into<String>) -> PruneError {
        PruneError::Criterion {
            criterion: self.name(),
            reason: reason.into(),
        }
    }
}

/// `count` deterministic uniform numbers in `[0, 1)` from `seed` (SplitMix64), so that a
/// seed names one ranking on every platform.
pub(crate) fn uniform(seed: u64, count: usize) -> Vec<f32> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// The gradient for Taylor scores, checked against the weight's shape.
fn gradient<'a>(weights: &Tensor, grad: Option<&'a Tensor>) -> Result<&'a Tensor> {
    let criterion = Criterion::Taylor;
    let grad = grad.ok_or_else(|| {
        criterion.error("needs the loss gradient of the weights (from calibration batches)")
    })?;
    if grad.dims() != weights.dims() {
        return Err(criterion.error(format!(
            "gradient shape {:?} differs from weight shape {:?}",
            grad.dims(),
            weights.dims()
        )));
    }
    Ok(grad)
}

/// Per-weight importance, an f32 tensor of the weight's shape: `|w|` (L1), `w^2` (L2),
/// `|grad * w|` (Taylor, `grad` required) or uniform in `[0, 1)` (Random). BnScale scores
/// channels, not weights: use [`bn_scale_scores`]. Scores are detached from autograd.
pub fn weight_scores(
    weights: &Tensor,
    criterion: Criterion,
    grad: Option<&Tensor>,
) -> Result<Tensor> {
    let w = weights.detach().to_dtype(DType::F32)?;
    Ok(match criterion {
        Criterion::L1 => w.abs()?,
        Criterion::L2 => w.sqr()?,
        Criterion::Random { seed } => {
            Tensor::from_vec(uniform(seed, w.elem_count()), w.shape(), w.device())?
        }
        Criterion::Taylor => {
            let g = gradient(weights, grad)?.detach().to_dtype(DType::F32)?;
            g.mul(&w)?.abs()?
        }
        Criterion::BnScale => {
            return Err(criterion.error(
                "scores the BatchNorm scales after a channel, not weights: use bn_scale_scores",
            ))
        }
    })
}

/// Importance of each slice of `weights` along `axis` (output channels: axis 0 of a
/// convolution or linear weight; input channels: axis 1): L1 = `sum |w|`, L2 =
/// `sqrt(sum w^2)`, Taylor = `sum |grad * w|`, Random = one uniform draw per slice.
pub fn channel_scores(
    weights: &Tensor,
    axis: usize,
    criterion: Criterion,
    grad: Option<&Tensor>,
) -> Result<Vec<f32>> {
    let dims = weights.dims();
    let Some(&channels) = dims.get(axis) else {
        return Err(PruneError::Shape(format!(
            "channel axis {axis} is out of range for a weight of shape {dims:?}"
        )));
    };
    if let Criterion::Random { seed } = criterion {
        return Ok(uniform(seed, channels));
    }
    let inner: usize = dims[axis + 1..].iter().product();
    let per_weight = to_f32_vec(&weight_scores(weights, criterion, grad)?)?;
    let mut sums = vec![0f64; channels];
    for (i, s) in per_weight.iter().enumerate() {
        sums[(i / inner.max(1)) % channels] += f64::from(*s);
    }
    Ok(sums
        .into_iter()
        .map(|s| match criterion {
            Criterion::L2 => s.sqrt() as f32,
            _ => s as f32,
        })
        .collect())
}

/// Network slimming's channel importance: `|gamma|` of a BatchNorm scale `[C]`.
pub fn bn_scale_scores(gamma: &Tensor) -> Result<Vec<f32>> {
    if gamma.rank() != 1 {
        return Err(PruneError::Shape(format!(
            "a BatchNorm scale is one value per channel, got shape {:?}",
            gamma.dims()
        )));
    }
    Ok(to_f32_vec(gamma)?.into_iter().map(f32::abs).collect())
}

/// Importance of a group of channels that are pruned together (one entry per member
/// tensor, each with one score per channel): the sum over members, channel by channel.
pub fn aggregate(members: &[Vec<f32>]) -> Result<Vec<f32>> {
    let Some(first) = members.first() else {
        return Ok(Vec::new());
    };
    if let Some(other) = members.iter().find(|m| m.len() != first.len()) {
        return Err(PruneError::Shape(format!(
            "group members score {} and {} channels; a group shrinks all of them together",
            first.len(),
            other.len()
        )));
    }
    Ok((0..first.len())
        .map(|c| members.iter().map(|m| m[c]).sum())
        .collect())
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    /// `[[1, -2], [3, -4]]`.
    fn w() -> Tensor {
        t(&[1.0, -2.0, 3.0, -4.0], &[2, 2])
    }

    #[test]
    fn weight_scores_by_hand() {
        let l1 = weight_scores(&w(), Criterion::L1, None).unwrap();
        assert_eq!(l1.dims(), &[2, 2]);
        assert_eq!(values(&l1), [1.0, 2.0, 3.0, 4.0]);
        let l2 = weight_scores(&w(), Criterion::L2, None).unwrap();
        assert_eq!(values(&l2), [1.0, 4.0, 9.0, 16.0]);
        let g = t(&[0.5, 1.0, -1.0, 0.0], &[2, 2]);
        let taylor = weight_scores(&w(), Criterion::Taylor, Some(&g)).unwrap();
        assert_eq!(values(&taylor), [0.5, 2.0, 3.0, 0.0]);
    }

    #[test]
    fn random_scores_are_deterministic_uniform() {
        let a = values(&weight_scores(&w(), Criterion::Random { seed: 7 }, None).unwrap());
        let b = values(&weight_scores(&w(), Criterion::Random { seed: 7 }, None).unwrap());
        let c = values(&weight_scores(&w(), Criterion::Random { seed: 8 }, None).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let many = uniform(1, 10_000);
        assert!(many.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = many.iter().sum::<f32>() / many.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn criteria_without_their_context_are_errors() {
        let e = weight_scores(&w(), Criterion::Taylor, None).unwrap_err();
        assert!(
            e.to_string().contains("taylor: needs the loss gradient"),
            "{e}"
        );
        let wrong = t(&[1.0, 2.0], &[2]);
        let e = weight_scores(&w(), Criterion::Taylor, Some(&wrong)).unwrap_err();
        assert!(
            e.to_string()
                .contains("[2] differs from weight shape [2, 2]"),
            "{e}"
        );
        let e = weight_scores(&w(), Criterion::BnScale, None).unwrap_err();
        assert!(e.to_string().contains("bn_scale_scores"), "{e}");
        assert!(channel_scores(&w(), 0, Criterion::BnScale, None).is_err());
    }

    #[test]
    fn channel_scores_by_hand() {
        assert_eq!(
            channel_scores(&w(), 0, Criterion::L1, None).unwrap(),
            [3.0, 7.0]
        );
        assert_eq!(
            channel_scores(&w(), 1, Criterion::L1, None).unwrap(),
            [4.0, 6.0]
        );
        let l2 = channel_scores(&w(), 0, Criterion::L2, None).unwrap();
        assert!(close(&l2, &[5f32.sqrt(), 5.0]), "{l2:?}");
        let g = t(&[0.5, 1.0, -1.0, 0.0], &[2, 2]);
        let taylor = channel_scores(&w(), 0, Criterion::Taylor, Some(&g)).unwrap();
        assert_eq!(taylor, [2.5, 3.0]);
        // [2, 2, 2] holding 1..=8: slice 0 of axis 1 is {1, 2, 5, 6}, slice 1 is {3, 4, 7, 8}.
        let cube = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[2, 2, 2]);
        assert_eq!(
            channel_scores(&cube, 1, Criterion::L1, None).unwrap(),
            [14.0, 22.0]
        );
        assert_eq!(
            channel_scores(&cube, 2, Criterion::L1, None).unwrap(),
            [16.0, 20.0]
        );
        let random = channel_scores(&cube, 0, Criterion::Random { seed: 3 }, None).unwrap();
        assert_eq!(random, uniform(3, 2));
        let e = channel_scores(&cube, 3, Criterion::L1, None).unwrap_err();
        assert!(e.to_string().contains("axis 3 is out of range"), "{e}");
    }

    #[test]
    fn bn_scale_and_group_aggregation() {
        let gamma = t(&[0.5, -2.0, 0.0], &[3]);
        assert_eq!(bn_scale_scores(&gamma).unwrap(), [0.5, 2.0, 0.0]);
        assert!(bn_scale_scores(&w()).is_err());
        let group = aggregate(&[vec![1.0, 2.0], vec![0.5, 0.25]]).unwrap();
        assert_eq!(group, [1.5, 2.25]);
        assert!(aggregate(&[]).unwrap().is_empty());
        assert!(aggregate(&[vec![1.0], vec![1.0, 2.0]]).is_err());
    }
}
