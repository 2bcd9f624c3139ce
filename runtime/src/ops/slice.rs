//! Strided slicing of every axis (ONNX Slice with resolved indices).

use crate::graph::{strides, Slice, MAX_RANK};

/// First index and element count of one sliced axis of length `dim`, with the clamping
/// documented on [`Slice`]: for `step > 0`, `start` and `end` clamp to `[0, dim]`; for
/// `step < 0`, `start` to `[0, dim - 1]` and `end` to `[-1, dim - 1]`. The count is
/// `max(0, ceil((end - start) / step))`; the first index is meaningful only when the
/// count is not 0. `None` when `step` is 0.
pub fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> Option<(usize, usize)> {
    let clamp = |v: i64, lo: i128, hi: i128| i128::from(v).max(lo).min(hi);
    let dim = dim as i128;
    let step = i128::from(step);
    let (first, end) = match step {
        0 => return None,
        1.. => (clamp(start, 0, dim), clamp(end, 0, dim)),
        _ => (clamp(start, 0, dim - 1), clamp(end, -1, dim - 1)),
    };
    // Both are within [-1, dim], so the span and the count fit easily.
    let span = end - first;
    let count = if span != 0 && (span > 0) == (step > 0) {
        (span.abs() + step.abs() - 1) / step.abs()
    } else {
        0
    };
    if count == 0 {
        return Some((0, 0));
    }
    Some((first as usize, count as usize))
}

/// Writes the slice `p` of `x` (`x_shape`, at most `MAX_RANK` axes) into `y` (`y_shape`,
/// the counts `slice_axis` gives per axis). Never allocates.
pub fn slice(p: &Slice, x: &[f32], x_shape: &[usize], y: &mut [f32], y_shape: &[usize]) {
    let rank = x_shape.len();
    if rank == 0 || y.is_empty() {
        y.copy_from_slice(&x[..y.len()]);
        return;
    }
    let x_strides = strides(x_shape);
    let mut first = [0i64; MAX_RANK];
    for axis in 0..rank {
        let (start, _) = slice_axis(x_shape[axis], p.starts[axis], p.ends[axis], p.steps[axis])
            .expect("verified: step is not 0");
        first[axis] = start as i64;
    }
    // Input index along `axis` of output index `i`; always inside the axis for `i` below
    // the output's size, so the products cannot overflow.
    let source = |axis: usize, i: usize| (first[axis] + i as i64 * p.steps[axis]) as usize;

    // Walk `y` row by row along its last axis; a multi-index tracks the outer axes.
    let last = rank - 1;
    let mut index = [0usize; MAX_RANK];
    for row in y.chunks_exact_mut(y_shape[last]) {
        let row_start: usize = (0..last)
            .map(|axis| source(axis, index[axis]) * x_strides[axis])
            .sum();
        for (i, v) in row.iter_mut().enumerate() {
            *v = x[row_start + source(last, i)];
        }
        for axis in (0..last).rev() {
            index[axis] += 1;
            if index[axis] < y_shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn axis_counts_follow_onnx_clamping() {
        // [start, end) with step: 1..4 of 5 by 1 -> 3 elements; by 2 -> 1, 3.
        assert_eq!(slice_axis(5, 1, 4, 1), Some((1, 3)));
        assert_eq!(slice_axis(5, 1, 4, 2), Some((1, 2)));
        assert_eq!(slice_axis(5, 0, 5, 3), Some((0, 2)));
        // End past the axis clamps to 5; i64::MAX as ONNX uses for "to the end".
        assert_eq!(slice_axis(5, 2, i64::MAX, 1), Some((2, 3)));
        // Backwards: start 4 down to (excluding) 1 -> 4, 3, 2; down to -1 -> all five.
        assert_eq!(slice_axis(5, 4, 1, -1), Some((4, 3)));
        assert_eq!(slice_axis(5, 4, -1, -1), Some((4, 5)));
        assert_eq!(slice_axis(5, 4, -1, -2), Some((4, 3)));
        // A backwards start past the end clamps to dim - 1; i64::MIN end to -1.
        assert_eq!(slice_axis(5, 5, i64::MIN, -1), Some((4, 5)));
        assert_eq!(slice_axis(5, 9, 2, -3), Some((4, 1)));
        // Empty slices.
        assert_eq!(slice_axis(5, 3, 3, 1), Some((0, 0)));
        assert_eq!(slice_axis(5, 3, 1, 1), Some((0, 0)));
        assert_eq!(slice_axis(5, 1, 3, -1), Some((0, 0)));
        assert_eq!(slice_axis(5, 5, 9, 1), Some((0, 0)));
        // Huge steps take one element.
        assert_eq!(slice_axis(5, 0, 5, i64::MAX), Some((0, 1)));
        assert_eq!(slice_axis(5, 4, -1, i64::MIN), Some((4, 1)));
        assert_eq!(slice_axis(5, 0, 5, 0), None);
    }

    fn run(x: &[f32], x_shape: &[usize], starts: &[i64], ends: &[i64], steps: &[i64]) -> Vec<f32> {
        let p = Slice {
            starts: starts.to_vec(),
            ends: ends.to_vec(),
            steps: steps.to_vec(),
        };
        let y_shape: Vec<usize> = (0..x_shape.len())
            .map(|a| {
                slice_axis(x_shape[a], starts[a], ends[a], steps[a])
                    .unwrap()
                    .1
            })
            .collect();
        let mut y = vec![f32::NAN; y_shape.iter().product()];
        slice(&p, x, x_shape, &mut y, &y_shape);
        y
    }

    #[test]
    fn two_dimensional_by_hand() {
        // x[r][c] = 10r + c on [3, 4].
        let x: Vec<f32> = (0..12).map(|v| (10 * (v / 4) + v % 4) as f32).collect();
        // Rows 1..3, columns 0..4 by 2: [[10, 12], [20, 22]].
        assert_eq!(
            run(&x, &[3, 4], &[1, 0], &[3, 4], &[1, 2]),
            [10.0, 12.0, 20.0, 22.0]
        );
        // Rows reversed (2 down to past 0), columns 3 down to (excluding) 1:
        // [[23, 22], [13, 12], [3, 2]].
        assert_eq!(
            run(&x, &[3, 4], &[2, 3], &[-1, 1], &[-1, -1]),
            [23.0, 22.0, 13.0, 12.0, 3.0, 2.0]
        );
        // Whole tensor.
        assert_eq!(run(&x, &[3, 4], &[0, 0], &[3, 4], &[1, 1]), x);
    }

    #[test]
    fn nchw_channel_and_spatial_crop() {
        // [1, 3, 2, 2] with x = 0..12: channels 2 and 0 (step -2), the bottom row.
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let y = run(
            &x,
            &[1, 3, 2, 2],
            &[0, 2, 1, 0],
            &[1, -1, 2, 2],
            &[1, -2, 1, 1],
        );
        assert_eq!(y, [10.0, 11.0, 2.0, 3.0]);
    }

    #[test]
    fn scalar_passes_through() {
        assert_eq!(run(&[7.0], &[], &[], &[], &[]), [7.0]);
    }
}
