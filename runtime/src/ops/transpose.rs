//! Axis permutation.

use crate::graph::{strides, MAX_RANK};

/// Writes `x` with its axes permuted into `y`: output axis `i` is input axis `perm[i]`, so
/// `y`'s shape is `x_shape[perm[i]]` for each `i`. `perm` must be a permutation of
/// `0..x_shape.len()` with at most `MAX_RANK` axes.
pub fn transpose(x: &[f32], x_shape: &[usize], perm: &[usize], y: &mut [f32]) {
    let rank = perm.len();
    if y.is_empty() {
        return;
    }
    if rank == 0 {
        y.copy_from_slice(x);
        return;
    }

    let x_strides = strides(x_shape);
    // Shape of `y`, and the step in `x` for a step along each axis of `y`; axes of size 1
    // are dropped and neighbours that are also neighbours in `x` merged, so that a
    // permutation moving whole planes (a channel shuffle) copies planes.
    let mut dims = [1; MAX_RANK];
    let mut steps = [0; MAX_RANK];
    let mut axes = 0;
    for &p in perm {
        let (d, s) = (x_shape[p], x_strides[p]);
        if d == 1 {
            continue;
        }
        if axes > 0 && steps[axes - 1] == s * d {
            dims[axes - 1] *= d;
            steps[axes - 1] = s;
        } else {
            dims[axes] = d;
            steps[axes] = s;
            axes += 1;
        }
    }
    if axes == 0 {
        y.copy_from_slice(x);
        return;
    }

    // Walk `y` row by row along its last axis, keeping the offset in `x` of the row start
    // in step with a multi-index over the outer axes.
    let last = axes - 1;
    let mut index = [0usize; MAX_RANK];
    let mut row_start = 0;
    for row in y.chunks_exact_mut(dims[last]) {
        if steps[last] == 1 {
            row.copy_from_slice(&x[row_start..row_start + row.len()]);
        } else {
            let mut src = row_start;
            for v in row {
                *v = x[src];
                src += steps[last];
            }
        }
        for axis in (0..last).rev() {
            index[axis] += 1;
            row_start += steps[axis];
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
            row_start -= steps[axis] * dims[axis];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn matrix() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut y = [0.0; 6];
        transpose(&x, &[2, 3], &[1, 0], &mut y);
        assert_eq!(y, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn rank3_against_index_arithmetic() {
        // x[i][j][k] = 12i + 4j + k for shape [2, 3, 4].
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let perms: [[usize; 3]; 6] = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for perm in perms {
            let shape = [2, 3, 4];
            let y_shape = [shape[perm[0]], shape[perm[1]], shape[perm[2]]];
            let mut y = vec![f32::NAN; 24];
            transpose(&x, &shape, &perm, &mut y);
            for a in 0..y_shape[0] {
                for b in 0..y_shape[1] {
                    for c in 0..y_shape[2] {
                        // y[a][b][c] = x at index `a` on axis perm[0], `b` on perm[1], ...
                        let mut ijk = [0; 3];
                        ijk[perm[0]] = a;
                        ijk[perm[1]] = b;
                        ijk[perm[2]] = c;
                        let want = (12 * ijk[0] + 4 * ijk[1] + ijk[2]) as f32;
                        let got = y[(a * y_shape[1] + b) * y_shape[2] + c];
                        assert_eq!(got, want, "perm {perm:?} at [{a}][{b}][{c}]");
                    }
                }
            }
        }
    }

    #[test]
    fn rank3_perm_201_literal() {
        // y[a][b][c] = x[b][c][a], y shape [4, 2, 3].
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let mut y = [0.0; 24];
        transpose(&x, &[2, 3, 4], &[2, 0, 1], &mut y);
        let want = [
            0.0, 4.0, 8.0, 12.0, 16.0, 20.0, //
            1.0, 5.0, 9.0, 13.0, 17.0, 21.0, //
            2.0, 6.0, 10.0, 14.0, 18.0, 22.0, //
            3.0, 7.0, 11.0, 15.0, 19.0, 23.0,
        ];
        assert_eq!(y, want);
    }

    #[test]
    fn nchw_to_nhwc() {
        // [1, 2, 2, 2] -> [1, 2, 2, 2] with channels last: y[0][h][w][c] = x[0][c][h][w].
        let x = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
        let mut y = [0.0; 8];
        transpose(&x, &[1, 2, 2, 2], &[0, 2, 3, 1], &mut y);
        assert_eq!(y, [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]);
    }

    /// `y` by the definition: the element of `y` at multi-index `i` is the element of `x`
    /// at the multi-index with `i[k]` on axis `perm[k]`.
    fn by_definition(x: &[f32], x_shape: &[usize], perm: &[usize]) -> Vec<f32> {
        let y_shape: Vec<usize> = perm.iter().map(|&p| x_shape[p]).collect();
        let x_strides = strides(x_shape);
        (0..x.len())
            .map(|flat| {
                let mut rest = flat;
                let mut src = 0;
                for k in (0..perm.len()).rev() {
                    src += (rest % y_shape[k]) * x_strides[perm[k]];
                    rest /= y_shape[k];
                }
                x[src]
            })
            .collect()
    }

    #[test]
    fn channel_shuffle_and_unit_axes_by_definition() {
        let cases: [(&[usize], &[usize]); 5] = [
            (&[1, 3, 4, 2, 5], &[0, 2, 1, 3, 4]),
            (&[2, 3, 4, 1, 5], &[0, 2, 1, 4, 3]),
            (&[1, 1, 6, 7], &[1, 0, 3, 2]),
            (&[2, 1, 3, 4, 5], &[4, 2, 3, 1, 0]),
            (&[3, 2, 2, 3, 2], &[1, 0, 2, 3, 4]),
        ];
        for (shape, perm) in cases {
            let len = shape.iter().product();
            let x: Vec<f32> = (0..len).map(|v| v as f32).collect();
            let mut y = vec![f32::NAN; len];
            transpose(&x, shape, perm, &mut y);
            assert_eq!(y, by_definition(&x, shape, perm), "{shape:?} {perm:?}");
        }
    }

    #[test]
    fn scalar_and_empty() {
        let mut y = [0.0];
        transpose(&[7.0], &[], &[], &mut y);
        assert_eq!(y, [7.0]);
        let mut y: [f32; 0] = [];
        transpose(&[], &[2, 0], &[1, 0], &mut y);
    }
}
