//! Softmax along one axis (ONNX opset 13 semantics).

/// Writes into `y` the softmax of `x` (shape `shape`) along `axis`: every 1-D slice along
/// that axis is mapped to `exp(v - max) / sum(exp(v - max))`. Subtracting the slice's
/// maximum keeps `exp` from overflowing, so large inputs give the same result as small
/// ones. `axis` must already be normalised (`< shape.len()`).
pub fn softmax(x: &[f32], shape: &[usize], axis: usize, y: &mut [f32]) {
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let block = n * inner;
    if block == 0 {
        return;
    }
    for (xb, yb) in x.chunks_exact(block).zip(y.chunks_exact_mut(block)) {
        // Slice `i` of the block holds elements `i, i + inner, i + 2 * inner, ...`.
        for i in 0..inner {
            let max = xb[i..]
                .iter()
                .step_by(inner)
                .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0;
            for (o, &v) in yb[i..]
                .iter_mut()
                .step_by(inner)
                .zip(xb[i..].iter().step_by(inner))
            {
                *o = libm::expf(v - max);
                sum += *o;
            }
            for o in yb[i..].iter_mut().step_by(inner) {
                *o /= sum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6, "{got:?} vs {want:?}");
        }
    }

    const SOFTMAX_123: [f32; 3] = [0.090_030_57, 0.244_728_47, 0.665_240_96];

    #[test]
    fn one_two_three() {
        let mut y = [0.0; 3];
        softmax(&[1.0, 2.0, 3.0], &[3], 0, &mut y);
        close(&y, &SOFTMAX_123);
    }

    #[test]
    fn large_inputs_do_not_overflow() {
        let mut y = [0.0; 3];
        softmax(&[1001.0, 1002.0, 1003.0], &[3], 0, &mut y);
        close(&y, &SOFTMAX_123);
        softmax(&[-1001.0, -1002.0, -1003.0], &[3], 0, &mut y);
        close(&y, &[SOFTMAX_123[2], SOFTMAX_123[1], SOFTMAX_123[0]]);
    }

    #[test]
    fn last_axis_of_matrix() {
        let mut y = [0.0; 6];
        softmax(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3], 1, &mut y);
        let third = 1.0 / 3.0;
        close(
            &y,
            &[
                SOFTMAX_123[0],
                SOFTMAX_123[1],
                SOFTMAX_123[2],
                third,
                third,
                third,
            ],
        );
    }

    #[test]
    fn first_axis_of_matrix() {
        // Columns (1, 1), (2, 4), (3, 3); softmax of (0, 2) is (0.11920292, 0.88079708).
        let mut y = [0.0; 6];
        softmax(&[1.0, 2.0, 3.0, 1.0, 4.0, 3.0], &[2, 3], 0, &mut y);
        close(&y, &[0.5, 0.119_202_92, 0.5, 0.5, 0.880_797_1, 0.5]);
    }

    #[test]
    fn middle_axis() {
        // [2, 2, 2] along axis 1: pairs (0, 1), (5, 3) in the first block and (-1, -3),
        // (-1, 0) in the second. Softmax of (0, 1) is (0.26894142, 0.73105858).
        let x = [0.0, 5.0, 1.0, 3.0, -1.0, -1.0, -3.0, 0.0];
        let mut y = [0.0; 8];
        softmax(&x, &[2, 2, 2], 1, &mut y);
        close(
            &y,
            &[
                0.268_941_43,
                0.880_797_1,
                0.731_058_6,
                0.119_202_92,
                0.880_797_1,
                0.268_941_43,
                0.119_202_92,
                0.731_058_6,
            ],
        );
    }
}
