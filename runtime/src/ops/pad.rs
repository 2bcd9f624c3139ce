//! Padding of every axis with a constant, a mirror image or the edge value.

use crate::graph::{strides, Pad, PadMode, MAX_RANK};

/// Writes `x` padded by `p` into `y`, where `y_shape[i] = p.begin[i] + x_shape[i] +
/// p.end[i]`, with at most `MAX_RANK` axes. Reflect mirrors without repeating the edge
/// (numpy `reflect`); padding wider than `len - 1` keeps mirroring back and forth, and an
/// axis of length 1 repeats its element. Reflect and Edge on an empty axis, which have
/// nothing to copy, fall back to `p.value`.
pub fn pad(p: &Pad, x: &[f32], x_shape: &[usize], y: &mut [f32], y_shape: &[usize]) {
    let rank = y_shape.len();
    if y.is_empty() {
        return;
    }
    if rank == 0 {
        y.copy_from_slice(x);
        return;
    }

    let x_strides = strides(x_shape);

    // Walk `y` row by row along its last axis; a multi-index tracks the outer axes.
    let last = rank - 1;
    let mut index = [0usize; MAX_RANK];
    for row in y.chunks_exact_mut(y_shape[last]) {
        // Offset in `x` of the source row, `None` when an outer axis is in constant padding.
        let mut row_start = Some(0);
        for axis in 0..last {
            let src = source_index(p, axis, index[axis], x_shape[axis]);
            row_start = row_start
                .zip(src)
                .map(|(start, i)| start + i * x_strides[axis]);
        }
        for (o, v) in row.iter_mut().enumerate() {
            *v = match (row_start, source_index(p, last, o, x_shape[last])) {
                (Some(start), Some(i)) => x[start + i],
                _ => p.value,
            };
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

/// Index along `axis` of `x` (of length `len`) that output index `o` reads, or `None` when
/// it takes the constant fill value.
fn source_index(p: &Pad, axis: usize, o: usize, len: usize) -> Option<usize> {
    let begin = p.begin[axis];
    if o >= begin && o - begin < len {
        return Some(o - begin);
    }
    if len == 0 {
        return None;
    }
    match p.mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(if o < begin { 0 } else { len - 1 }),
        PadMode::Reflect if len == 1 => Some(0),
        PadMode::Reflect => {
            // Mirroring is a triangle wave of period 2 * (len - 1), symmetric about index
            // 0, so position -d reads the same as +d.
            let period = 2 * (len - 1);
            let distance = o.abs_diff(begin);
            let r = distance % period;
            Some(if r < len { r } else { period - r })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn run(
        mode: PadMode,
        x: &[f32],
        x_shape: &[usize],
        begin: &[usize],
        end: &[usize],
    ) -> Vec<f32> {
        let p = Pad {
            mode,
            begin: begin.to_vec(),
            end: end.to_vec(),
            value: -1.0,
        };
        let y_shape: Vec<usize> = (0..x_shape.len())
            .map(|i| begin[i] + x_shape[i] + end[i])
            .collect();
        let mut y = vec![f32::NAN; y_shape.iter().product()];
        pad(&p, x, x_shape, &mut y, &y_shape);
        y
    }

    const X: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];

    #[test]
    fn constant_2d() {
        // [[1, 2, 3], [4, 5, 6]] padded 1 row above and below, 2 columns left, 1 right.
        let v = -1.0;
        let want = [
            v, v, v, v, v, v, //
            v, v, 1.0, 2.0, 3.0, v, //
            v, v, 4.0, 5.0, 6.0, v, //
            v, v, v, v, v, v,
        ];
        assert_eq!(run(PadMode::Constant, &X, &[2, 3], &[1, 2], &[1, 1]), want);
    }

    #[test]
    fn reflect_2d() {
        // Rows read 1, 0, 1, 0; columns read 2, 1, 0, 1, 2, 1.
        let want = [
            6.0, 5.0, 4.0, 5.0, 6.0, 5.0, //
            3.0, 2.0, 1.0, 2.0, 3.0, 2.0, //
            6.0, 5.0, 4.0, 5.0, 6.0, 5.0, //
            3.0, 2.0, 1.0, 2.0, 3.0, 2.0,
        ];
        assert_eq!(run(PadMode::Reflect, &X, &[2, 3], &[1, 2], &[1, 1]), want);
    }

    #[test]
    fn edge_2d() {
        let want = [
            1.0, 1.0, 1.0, 2.0, 3.0, 3.0, //
            1.0, 1.0, 1.0, 2.0, 3.0, 3.0, //
            4.0, 4.0, 4.0, 5.0, 6.0, 6.0, //
            4.0, 4.0, 4.0, 5.0, 6.0, 6.0,
        ];
        assert_eq!(run(PadMode::Edge, &X, &[2, 3], &[1, 2], &[1, 1]), want);
    }

    #[test]
    fn one_dimensional_numpy_examples() {
        // np.pad([1, 2, 3, 4, 5], (2, 3), mode).
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(
            run(PadMode::Reflect, &x, &[5], &[2], &[3]),
            [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0, 2.0]
        );
        assert_eq!(
            run(PadMode::Edge, &x, &[5], &[2], &[3]),
            [1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0]
        );
        assert_eq!(
            run(PadMode::Constant, &x, &[5], &[2], &[3]),
            [-1.0, -1.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0, -1.0, -1.0]
        );
    }

    #[test]
    fn reflect_wider_than_input() {
        // np.pad([1, 2, 3], 5, 'reflect') mirrors back and forth.
        assert_eq!(
            run(PadMode::Reflect, &[1.0, 2.0, 3.0], &[3], &[5], &[5]),
            [2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0]
        );
        assert_eq!(run(PadMode::Reflect, &[7.0], &[1], &[2], &[1]), [7.0; 4]);
    }

    #[test]
    fn nchw_spatial_only() {
        // [1, 2, 1, 2] padded one row on top and one column on the right.
        let x = [1.0, 2.0, 3.0, 4.0];
        let want = [
            -1.0, -1.0, -1.0, 1.0, 2.0, -1.0, //
            -1.0, -1.0, -1.0, 3.0, 4.0, -1.0,
        ];
        let got = run(
            PadMode::Constant,
            &x,
            &[1, 2, 1, 2],
            &[0, 0, 1, 0],
            &[0, 0, 0, 1],
        );
        assert_eq!(got, want);
        let want = [
            1.0, 2.0, 2.0, 1.0, 2.0, 2.0, //
            3.0, 4.0, 4.0, 3.0, 4.0, 4.0,
        ];
        let got = run(
            PadMode::Edge,
            &x,
            &[1, 2, 1, 2],
            &[0, 0, 1, 0],
            &[0, 0, 0, 1],
        );
        assert_eq!(got, want);
    }

    #[test]
    fn empty_axis() {
        assert_eq!(run(PadMode::Edge, &[], &[0], &[1], &[1]), [-1.0, -1.0]);
        assert_eq!(
            run(PadMode::Reflect, &[], &[2, 0], &[0, 0], &[0, 0]).len(),
            0
        );
    }
}
