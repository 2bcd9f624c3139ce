//! Mean, sum, max and min over a set of axes.

use alloc::vec::Vec;

use crate::graph::{Reduce, ReduceKind, MAX_RANK};

/// Output shape of reducing `shape` over `axes`, for the verifier: reduced axes become 1
/// with `keepdims` and disappear without it. `None` when an axis is out of range or
/// listed twice.
pub fn reduce_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Option<Vec<usize>> {
    let mut reduced = [false; MAX_RANK];
    for &axis in axes {
        if axis >= shape.len() || core::mem::replace(&mut reduced[axis], true) {
            return None;
        }
    }
    Some(
        shape
            .iter()
            .enumerate()
            .filter_map(|(axis, &d)| match (reduced[axis], keepdims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect(),
    )
}

/// Reduces `x` (`x_shape`, at most `MAX_RANK` axes) over `r.axes` into `y`, whose length is
/// the product of the kept axes (`keepdims` does not change the values). Max and Min skip
/// NaN unless every value is NaN. Never allocates.
pub fn reduce(r: &Reduce, x: &[f32], x_shape: &[usize], y: &mut [f32]) {
    match r.kind {
        ReduceKind::Sum | ReduceKind::Mean => {
            fold(x, x_shape, &r.axes, y, 0.0, |acc, v| acc + v);
            if r.kind == ReduceKind::Mean {
                let count: usize = r.axes.iter().map(|&a| x_shape[a]).product();
                let count = count as f32;
                for v in y.iter_mut() {
                    *v /= count;
                }
            }
        }
        ReduceKind::Max => fold(x, x_shape, &r.axes, y, f32::NAN, f32::max),
        ReduceKind::Min => fold(x, x_shape, &r.axes, y, f32::NAN, f32::min),
    }
}

/// Sets every element of `y` to `init`, then folds each element of `x` into the element
/// of `y` it reduces to.
fn fold(
    x: &[f32],
    x_shape: &[usize],
    axes: &[usize],
    y: &mut [f32],
    init: f32,
    f: impl Fn(f32, f32) -> f32,
) {
    y.fill(init);
    let rank = x_shape.len();
    if rank == 0 {
        y[0] = f(init, x[0]);
        return;
    }
    // Step in `y` for a step along each axis of `x`: 0 on reduced axes.
    let mut reduced = [false; MAX_RANK];
    for &axis in axes {
        reduced[axis] = true;
    }
    let mut y_strides = [0; MAX_RANK];
    let mut step = 1;
    for axis in (0..rank).rev() {
        if !reduced[axis] {
            y_strides[axis] = step;
            step *= x_shape[axis];
        }
    }

    // Walk `x` row by row along its last axis, keeping the matching `y` offset in step
    // with a multi-index over the outer axes.
    let last = rank - 1;
    let mut index = [0usize; MAX_RANK];
    let mut row_start = 0;
    for row in x.chunks_exact(x_shape[last]) {
        let mut o = row_start;
        for &v in row {
            y[o] = f(y[o], v);
            o += y_strides[last];
        }
        for axis in (0..last).rev() {
            index[axis] += 1;
            row_start += y_strides[axis];
            if index[axis] < x_shape[axis] {
                break;
            }
            index[axis] = 0;
            row_start -= y_strides[axis] * x_shape[axis];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn run(kind: ReduceKind, x: &[f32], shape: &[usize], axes: &[usize]) -> Vec<f32> {
        let r = Reduce {
            kind,
            axes: axes.to_vec(),
            keepdims: false,
        };
        let out = reduce_shape(shape, axes, false).unwrap();
        let mut y = vec![f32::NAN; out.iter().product()];
        reduce(&r, x, shape, &mut y);
        y
    }

    // [2, 3]: [[1, 2, 3], [4, 5, 6]].
    const X: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];

    #[test]
    fn shapes() {
        assert_eq!(reduce_shape(&[2, 3, 4], &[1], true), Some(vec![2, 1, 4]));
        assert_eq!(reduce_shape(&[2, 3, 4], &[1], false), Some(vec![2, 4]));
        assert_eq!(reduce_shape(&[2, 3, 4], &[2, 0], false), Some(vec![3]));
        assert_eq!(reduce_shape(&[2, 3, 4], &[0, 1, 2], false), Some(vec![]));
        assert_eq!(
            reduce_shape(&[2, 3, 4], &[0, 1, 2], true),
            Some(vec![1, 1, 1])
        );
        assert_eq!(reduce_shape(&[2, 3], &[], false), Some(vec![2, 3]));
        assert_eq!(reduce_shape(&[2, 3], &[2], false), None);
        assert_eq!(reduce_shape(&[2, 3], &[1, 1], false), None);
    }

    #[test]
    fn each_kind_over_rows_and_columns() {
        assert_eq!(run(ReduceKind::Sum, &X, &[2, 3], &[1]), [6.0, 15.0]);
        assert_eq!(run(ReduceKind::Sum, &X, &[2, 3], &[0]), [5.0, 7.0, 9.0]);
        assert_eq!(run(ReduceKind::Mean, &X, &[2, 3], &[1]), [2.0, 5.0]);
        assert_eq!(run(ReduceKind::Mean, &X, &[2, 3], &[0]), [2.5, 3.5, 4.5]);
        assert_eq!(run(ReduceKind::Max, &X, &[2, 3], &[1]), [3.0, 6.0]);
        assert_eq!(run(ReduceKind::Min, &X, &[2, 3], &[0]), [1.0, 2.0, 3.0]);
        assert_eq!(run(ReduceKind::Mean, &X, &[2, 3], &[0, 1]), [3.5]);
        assert_eq!(run(ReduceKind::Max, &X, &[2, 3], &[1, 0]), [6.0]);
        assert_eq!(run(ReduceKind::Sum, &X, &[2, 3], &[]), X);
    }

    #[test]
    fn spatial_mean_of_nchw_and_middle_axis() {
        // [1, 2, 2, 2] over H and W: per-channel means 2.5 and 25.
        let x = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
        assert_eq!(
            run(ReduceKind::Mean, &x, &[1, 2, 2, 2], &[2, 3]),
            [2.5, 25.0]
        );
        // The same tensor over the channel axis: x[0][0] + x[0][1] elementwise.
        assert_eq!(
            run(ReduceKind::Sum, &x, &[1, 2, 2, 2], &[1]),
            [11.0, 22.0, 33.0, 44.0]
        );
        // [2, 3, 2] over the middle axis, x[i][j][k] = 6i + 2j + k negated where j = 1:
        // i = 0 holds (0, 1), (-2, -3), (4, 5); i = 1 holds (6, 7), (-8, -9), (10, 11).
        let x: Vec<f32> = (0..12)
            .map(|v| {
                if (v / 2) % 3 % 2 == 1 {
                    -(v as f32)
                } else {
                    v as f32
                }
            })
            .collect();
        assert_eq!(
            run(ReduceKind::Max, &x, &[2, 3, 2], &[1]),
            [4.0, 5.0, 10.0, 11.0]
        );
        assert_eq!(
            run(ReduceKind::Min, &x, &[2, 3, 2], &[1]),
            [-2.0, -3.0, -8.0, -9.0]
        );
    }

    #[test]
    fn nan_is_skipped_by_max_and_min() {
        let x = [f32::NAN, 1.0, -2.0];
        assert_eq!(run(ReduceKind::Max, &x, &[3], &[0]), [1.0]);
        assert_eq!(run(ReduceKind::Min, &x, &[3], &[0]), [-2.0]);
        assert!(run(ReduceKind::Max, &[f32::NAN], &[1], &[0])[0].is_nan());
    }

    #[test]
    fn scalar_input() {
        assert_eq!(run(ReduceKind::Mean, &[4.0], &[], &[]), [4.0]);
    }
}
