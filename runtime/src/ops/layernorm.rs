//! Layer normalization over the trailing axes (ONNX LayerNormalization).

/// Normalizes every block of `inner` consecutive values of `x` (the trailing axes from
/// the normalized axis on): `y = (x - mean) / sqrt(var + epsilon) * scale + bias`, with the
/// mean and the (biased) variance of the block, and `scale` and `bias` of length `inner`.
/// Computed in two passes, so a large mean does not swamp the variance. Never allocates.
pub fn layer_norm(
    x: &[f32],
    inner: usize,
    epsilon: f32,
    scale: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let n = inner as f32;
    for (xb, yb) in x.chunks_exact(inner).zip(y.chunks_exact_mut(inner)) {
        let mean = xb.iter().sum::<f32>() / n;
        let var = xb.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv_std = 1.0 / libm::sqrtf(var + epsilon);
        for (i, (o, &v)) in yb.iter_mut().zip(xb).enumerate() {
            *o = (v - mean) * inv_std * scale[i] + bias.map_or(0.0, |b| b[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn one_row_by_hand() {
        // [1 2 3 4]: mean 2.5, variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, std
        // 1.1180340: normalized [-1.3416408, -0.4472136, 0.4472136, 1.3416408]. Scale
        // [1 2 1 0.5], bias [0 1 0 0].
        let mut y = [f32::NAN; 4];
        let x = [1.0, 2.0, 3.0, 4.0];
        layer_norm(
            &x,
            4,
            0.0,
            &[1.0, 2.0, 1.0, 0.5],
            Some(&[0.0, 1.0, 0.0, 0.0]),
            &mut y,
        );
        close(&y, &[-1.341_640_8, 0.105_572_8, 0.447_213_6, 0.670_820_4]);
        layer_norm(&x, 4, 0.0, &[1.0; 4], None, &mut y);
        close(&y, &[-1.341_640_8, -0.447_213_6, 0.447_213_6, 1.341_640_8]);
    }

    #[test]
    fn epsilon_and_blocks() {
        // Two blocks of two: (0, 2) and (10, 10). Block one: mean 1, variance 1, epsilon
        // 3 -> divide by 2: (-0.5, 0.5). Block two: variance 0 -> divide by sqrt(3): 0.
        let mut y = [f32::NAN; 4];
        layer_norm(
            &[0.0, 2.0, 10.0, 10.0],
            2,
            3.0,
            &[1.0, 1.0],
            Some(&[0.0, 7.0]),
            &mut y,
        );
        close(&y, &[-0.5, 7.5, 0.0, 7.0]);
    }

    #[test]
    fn large_offset_keeps_precision() {
        // 10000 + (-1, 1): mean 10000, variance 1 -> (-1, 1) exactly with two passes.
        let mut y = [f32::NAN; 2];
        layer_norm(&[9999.0, 10001.0], 2, 0.0, &[1.0, 1.0], None, &mut y);
        close(&y, &[-1.0, 1.0]);
    }
}
