//! Normalizations: BatchNorm (per channel, axis 1), LayerNorm (trailing axes) and local
//! response normalization (across channels).

use candle_core::Tensor;
use lopper_runtime::graph::{LayerNorm, Lrn};

use super::{along_axis1, expect_axis, operands, Fail, OpResult};

/// `Op::BatchNorm`: `(x - mean) / sqrt(var + epsilon) * scale + bias` per channel (axis 1);
/// inputs `x, scale, bias, mean, var`, the last four `[C]`.
pub(super) fn batch_norm(args: &[Tensor], epsilon: f32) -> OpResult {
    let [x, scale, bias, mean, var] = operands::<5>(args)?;
    let [scale, bias, mean, var] = [scale, bias, mean, var].map(|p| along_axis1(p, x));
    let inv_std = var?.affine(1.0, f64::from(epsilon))?.sqrt()?.recip()?;
    Ok(x.broadcast_sub(&mean?)?
        .broadcast_mul(&inv_std.mul(&scale?)?)?
        .broadcast_add(&bias?)?)
}

/// `Op::LayerNorm`: every block of the trailing axes `axis..` normalized by its mean and
/// (biased) variance, then scaled and shifted; inputs `x, scale[, bias]`, where scale and
/// bias hold one value per element of a block.
pub(super) fn layer_norm(p: &LayerNorm, args: &[Tensor]) -> OpResult {
    let (x, scale, bias) = match args {
        [x, scale] => (x, scale, None),
        [x, scale, bias] => (x, scale, Some(bias)),
        _ => {
            return Err(Fail::Invalid(format!(
                "has {} inputs, expected 2 or 3",
                args.len()
            )))
        }
    };
    expect_axis(x, p.axis)?;
    let block = &x.dims()[p.axis..];
    let fit = |t: &Tensor, what: &str| -> OpResult {
        if t.elem_count() != block.iter().product::<usize>() {
            return Err(Fail::Invalid(format!(
                "{what} {:?} does not fit the normalized axes {block:?}",
                t.dims()
            )));
        }
        Ok(t.reshape(block)?)
    };
    let axes: Vec<usize> = (p.axis..x.rank()).collect();
    let centred = x.broadcast_sub(&x.mean_keepdim(axes.clone())?)?;
    let var = centred.sqr()?.mean_keepdim(axes)?;
    let inv_std = var.affine(1.0, f64::from(p.epsilon))?.sqrt()?.recip()?;
    let y = centred
        .broadcast_mul(&inv_std)?
        .broadcast_mul(&fit(scale, "scale")?)?;
    match bias {
        Some(b) => Ok(y.broadcast_add(&fit(b, "bias")?)?),
        None => Ok(y),
    }
}

/// `Op::Lrn`: `y = x / (bias + alpha / size * s)^beta`, `s` the sum of `x^2` over the
/// channels `c - floor((size - 1) / 2) ..= c + ceil((size - 1) / 2)` that exist.
pub(super) fn lrn(p: &Lrn, args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    if x.rank() < 2 || p.size == 0 {
        return Err(Fail::Invalid(format!(
            "needs rank >= 2 and size >= 1, got shape {:?} and size {}",
            x.dims(),
            p.size
        )));
    }
    let channels = x.dims()[1];
    let before = (p.size - 1) / 2;
    let after = p.size - 1 - before;
    // Missing channels are zeros in the padded squares.
    let squares = x.sqr()?.pad_with_zeros(1, before, after)?;
    let mut sum = squares.narrow(1, 0, channels)?;
    for k in 1..p.size {
        sum = sum.add(&squares.narrow(1, k, channels)?)?;
    }
    let alpha = p.alpha / p.size as f32;
    let denominator = sum
        .affine(f64::from(alpha), f64::from(p.bias))?
        .powf(f64::from(p.beta))?;
    Ok(x.div(&denominator)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape, &Device::Cpu).unwrap()
    }

    #[track_caller]
    fn close(got: &Tensor, shape: &[usize], want: &[f32]) {
        assert_eq!(got.dims(), shape);
        let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn batch_norm_by_hand() {
        // Two channels of two pixels: [1, 3] and [10, 20].
        // Epsilon 1. Channel 0: mean 2, var 3 -> divide by sqrt(4) = 2: (-0.5, 0.5) times
        // scale 2 plus bias 1 = (0, 2). Channel 1: mean 0, var 0.25 -> divide by
        // sqrt(1.25) = 1.118034: (8.944272, 17.888544) times -1 plus 0.5.
        let x = t(&[1., 3., 10., 20.], &[1, 2, 1, 2]);
        let scale = t(&[2., -1.], &[2]);
        let bias = t(&[1., 0.5], &[2]);
        let mean = t(&[2., 0.], &[2]);
        let var = t(&[3., 0.25], &[2]);
        let y = batch_norm(&[x, scale, bias, mean, var], 1.0).unwrap();
        close(&y, &[1, 2, 1, 2], &[0., 2., -8.444_272, -17.388_544]);
    }

    #[test]
    fn batch_norm_rejects_wrong_parameter_length() {
        let x = t(&[1., 3.], &[1, 2, 1, 1]);
        let p = t(&[1.; 3], &[3]);
        let args = [x, p.clone(), p.clone(), p.clone(), p];
        assert!(matches!(batch_norm(&args, 0.0), Err(Fail::Invalid(_))));
    }

    #[test]
    fn layer_norm_by_hand() {
        // Row [1 2 3 4]: mean 2.5, variance 1.25, std 1.118034: normalized
        // [-1.3416408 -0.4472136 0.4472136 1.3416408]; scale [1 2 1 0.5], bias [0 1 0 0].
        let x = t(&[1., 2., 3., 4.], &[1, 4]);
        let p = LayerNorm {
            axis: 1,
            epsilon: 0.0,
        };
        let scale = t(&[1., 2., 1., 0.5], &[4]);
        let y = layer_norm(&p, &[x.clone(), scale, t(&[0., 1., 0., 0.], &[1, 4])]).unwrap();
        close(
            &y,
            &[1, 4],
            &[-1.341_640_8, 0.105_572_8, 0.447_213_6, 0.670_820_4],
        );
        // Over both axes of [[0, 2], [10, 10]] ([1, 2, 2], axis 1): mean 5.5, variance
        // (30.25 + 12.25 + 20.25 * 2) / 4 = 20.75, std 4.5552168.
        let x2 = t(&[0., 2., 10., 10.], &[1, 2, 2]);
        let p = LayerNorm {
            axis: 1,
            epsilon: 0.0,
        };
        let y = layer_norm(&p, &[x2, t(&[1.; 4], &[2, 2])]).unwrap();
        let s = 4.555_217;
        close(&y, &[1, 2, 2], &[-5.5 / s, -3.5 / s, 4.5 / s, 4.5 / s]);
        assert!(layer_norm(&p, &[x, t(&[1.; 3], &[3])]).is_err());
    }

    #[test]
    fn lrn_by_hand() {
        // Channels 1, 2, 3, 4; size 3 looks one channel each way; alpha 3 (alpha / size
        // = 1), beta 1, bias 1: sums 1+4 = 5, 1+4+9 = 14, 4+9+16 = 29, 9+16 = 25, so
        // y = 1/6, 2/15, 3/30, 4/26.
        let x = t(&[1., 2., 3., 4.], &[1, 4, 1, 1]);
        let p = Lrn {
            size: 3,
            alpha: 3.0,
            beta: 1.0,
            bias: 1.0,
        };
        let y = lrn(&p, std::slice::from_ref(&x)).unwrap();
        close(&y, &[1, 4, 1, 1], &[1. / 6., 2. / 15., 0.1, 4. / 26.]);
        // Size 2 looks one channel ahead: sums 5, 13, 25, 16; alpha 2, beta 0.5, bias 2:
        // y = 1/sqrt(7), 2/sqrt(15), 3/sqrt(27), 4/sqrt(18).
        let p = Lrn {
            size: 2,
            alpha: 2.0,
            beta: 0.5,
            bias: 2.0,
        };
        let y = lrn(&p, &[x]).unwrap();
        close(
            &y,
            &[1, 4, 1, 1],
            &[0.377_964_47, 0.516_397_8, 0.577_350_26, 0.942_809_04],
        );
    }
}
