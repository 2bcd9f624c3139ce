//! Gather along one axis with constant indices (ONNX Gather).

/// Writes into `y` the slices of `x` (`x_shape`) along `axis` picked by `indices` (each
/// below `x_shape[axis]`): for every outer position, the inner blocks
/// `x[.., indices[k], ..]` in order. `y` has `x_shape` with `axis` replaced by the indices'
/// shape. Never allocates.
pub fn gather(axis: usize, indices: &[usize], x: &[f32], x_shape: &[usize], y: &mut [f32]) {
    let inner: usize = x_shape[axis + 1..].iter().product();
    let x_block = x_shape[axis] * inner;
    let y_block = indices.len() * inner;
    if y_block == 0 {
        return;
    }
    for (xb, yb) in x.chunks_exact(x_block).zip(y.chunks_exact_mut(y_block)) {
        for (out, &i) in yb.chunks_exact_mut(inner).zip(indices) {
            out.copy_from_slice(&xb[i * inner..(i + 1) * inner]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // [3, 2]: [[1, 2], [3, 4], [5, 6]].
    const X: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];

    #[test]
    fn rows_of_a_matrix() {
        // Indices [[0, 1], [1, 2]] on axis 0 give shape [2, 2, 2] (the ONNX example).
        let mut y = [f32::NAN; 8];
        gather(0, &[0, 1, 1, 2], &X, &[3, 2], &mut y);
        assert_eq!(y, [1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn columns_and_repeats() {
        // Axis 1 with indices [1, 1, 0]: every row becomes (x1, x1, x0).
        let mut y = [f32::NAN; 9];
        gather(1, &[1, 1, 0], &X, &[3, 2], &mut y);
        assert_eq!(y, [2.0, 2.0, 1.0, 4.0, 4.0, 3.0, 6.0, 6.0, 5.0]);
    }

    #[test]
    fn scalar_index_drops_the_axis() {
        // Index 2 on axis 0: the last row, shape [2].
        let mut y = [f32::NAN; 2];
        gather(0, &[2], &X, &[3, 2], &mut y);
        assert_eq!(y, [5.0, 6.0]);
        // Channel 1 of [1, 2, 1, 2] (as after a scalar gather on axis 1): shape [1, 1, 2].
        let mut y = [f32::NAN; 2];
        gather(1, &[1], &[1.0, 2.0, 3.0, 4.0], &[1, 2, 1, 2], &mut y);
        assert_eq!(y, [3.0, 4.0]);
    }
}
