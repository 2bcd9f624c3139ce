//! Element-wise Add, Sub, Mul, Div, Pow, Max and Min with numpy broadcasting.

use alloc::vec::Vec;

use crate::graph::{BinaryKind, MAX_RANK};

/// The broadcast shape of `a` and `b` under numpy rules (shapes right-aligned, a dimension
/// of 1 stretches to the other), for the verifier. `None` when a pair of dimensions differs
/// and neither is 1, or when the result has more than `MAX_RANK` dimensions.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    if rank > MAX_RANK {
        return None;
    }
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = dim_from_left(a, rank, i);
        let db = dim_from_left(b, rank, i);
        let dim = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
        out.push(dim);
    }
    Some(out)
}

/// `out = a <kind> b`, with `a` and `b` broadcast to `out_shape`. `Pow` follows C `powf`
/// (a negative base with a fractional exponent is NaN); `Max` and `Min` return the other
/// operand when one is NaN. Shapes must be verified:
/// `out_shape == broadcast_shape(a_shape, b_shape)` and every slice has its shape's length.
pub fn binary(
    kind: BinaryKind,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    out_shape: &[usize],
) {
    let shapes = Shapes {
        a: a_shape,
        b: b_shape,
        out: out_shape,
    };
    match kind {
        BinaryKind::Add => broadcast_with(a, b, out, shapes, |x, y| x + y),
        BinaryKind::Sub => broadcast_with(a, b, out, shapes, |x, y| x - y),
        BinaryKind::Mul => broadcast_with(a, b, out, shapes, |x, y| x * y),
        BinaryKind::Div => broadcast_with(a, b, out, shapes, |x, y| x / y),
        BinaryKind::Pow => broadcast_with(a, b, out, shapes, libm::powf),
        BinaryKind::Max => broadcast_with(a, b, out, shapes, f32::max),
        BinaryKind::Min => broadcast_with(a, b, out, shapes, f32::min),
    }
}

/// The three shapes of one call, bundled to keep argument lists short.
#[derive(Clone, Copy)]
struct Shapes<'a> {
    a: &'a [usize],
    b: &'a [usize],
    out: &'a [usize],
}

/// Dimension `i` of `shape` right-aligned to `rank` axes; missing leading axes are 1.
fn dim_from_left(shape: &[usize], rank: usize, i: usize) -> usize {
    let missing = rank - shape.len();
    if i < missing {
        1
    } else {
        shape[i - missing]
    }
}

/// Element strides of `shape` right-aligned to `out_shape`, with stride 0 on every axis that
/// is broadcast (missing or of size 1).
fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> [usize; MAX_RANK] {
    let rank = out_shape.len();
    let mut strides = [0; MAX_RANK];
    let mut step = 1;
    for i in (0..rank).rev() {
        let dim = dim_from_left(shape, rank, i);
        if dim != 1 {
            strides[i] = step;
        }
        step *= dim;
    }
    strides
}

/// `out[i] = f(a[i], b[i])`.
fn row_with(out: &mut [f32], a: &[f32], b: &[f32], f: &impl Fn(f32, f32) -> f32) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

/// Runs `f` over every output element. Because `out_shape` is the broadcast of both input
/// shapes, an input with as many elements as the output has the output's shape, and an
/// input with one element is a scalar; those cases skip the index arithmetic.
fn broadcast_with(a: &[f32], b: &[f32], out: &mut [f32], s: Shapes, f: impl Fn(f32, f32) -> f32) {
    let n = out.len();
    if n == 0 {
        return;
    }
    if a.len() == n && b.len() == n {
        row_with(out, a, b, &f);
        return;
    }
    if a.len() == n && b.len() == 1 {
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x, b[0]);
        }
        return;
    }
    if a.len() == 1 && b.len() == n {
        for (o, &y) in out.iter_mut().zip(b) {
            *o = f(a[0], y);
        }
        return;
    }

    // General case: walk the output row by row (rows along the last axis), keeping the
    // offsets of both inputs in step with a multi-index over the outer axes.
    let rank = s.out.len();
    let sa = broadcast_strides(s.a, s.out);
    let sb = broadcast_strides(s.b, s.out);
    let last = rank - 1;
    let (step_a, step_b) = (sa[last], sb[last]);
    let mut index = [0usize; MAX_RANK];
    let (mut row_a, mut row_b) = (0, 0);
    let len = s.out[last];
    for row in out.chunks_exact_mut(len) {
        // Rows read whole or as one broadcast value take loops that vectorise.
        match (step_a, step_b) {
            (1, 1) => row_with(row, &a[row_a..][..len], &b[row_b..][..len], &f),
            (1, 0) => row
                .iter_mut()
                .zip(&a[row_a..][..len])
                .for_each(|(o, &x)| *o = f(x, b[row_b])),
            (0, 1) => row
                .iter_mut()
                .zip(&b[row_b..][..len])
                .for_each(|(o, &y)| *o = f(a[row_a], y)),
            _ => {
                let (mut ia, mut ib) = (row_a, row_b);
                for o in row {
                    *o = f(a[ia], b[ib]);
                    ia += step_a;
                    ib += step_b;
                }
            }
        }
        for axis in (0..last).rev() {
            index[axis] += 1;
            row_a += sa[axis];
            row_b += sb[axis];
            if index[axis] < s.out[axis] {
                break;
            }
            index[axis] = 0;
            row_a -= sa[axis] * s.out[axis];
            row_b -= sb[axis] * s.out[axis];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn run(
        kind: BinaryKind,
        a: &[f32],
        a_shape: &[usize],
        b: &[f32],
        b_shape: &[usize],
    ) -> Vec<f32> {
        let out_shape = broadcast_shape(a_shape, b_shape).unwrap();
        let mut out = vec![f32::NAN; out_shape.iter().product()];
        binary(kind, a, a_shape, b, b_shape, &mut out, &out_shape);
        out
    }

    #[test]
    fn broadcast_shapes() {
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast_shape(&[], &[5]), Some(vec![5]));
        assert_eq!(broadcast_shape(&[], &[]), Some(vec![]));
        assert_eq!(
            broadcast_shape(&[1, 3, 1, 1], &[8, 1, 4, 5]),
            Some(vec![8, 3, 4, 5])
        );
        assert_eq!(broadcast_shape(&[0, 3], &[1, 3]), Some(vec![0, 3]));
        assert_eq!(broadcast_shape(&[2, 3], &[3, 2]), None);
        assert_eq!(broadcast_shape(&[3], &[4]), None);
        assert_eq!(broadcast_shape(&[1; 9], &[1]), None);
    }

    #[test]
    fn add_2x1x3_and_4x1() {
        let a = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        let b = [100.0, 200.0, 300.0, 400.0];
        // out[i][j][k] = a[i][0][k] + b[j][0], shape [2, 4, 3].
        let want = [
            101.0, 102.0, 103.0, 201.0, 202.0, 203.0, 301.0, 302.0, 303.0, 401.0, 402.0, 403.0,
            110.0, 120.0, 130.0, 210.0, 220.0, 230.0, 310.0, 320.0, 330.0, 410.0, 420.0, 430.0,
        ];
        assert_eq!(run(BinaryKind::Add, &a, &[2, 1, 3], &b, &[4, 1]), want);
    }

    #[test]
    fn sub_lower_rank_minus_higher_rank() {
        // [3] - [2, 3]: the row vector is stretched over both rows of b.
        let a = [10.0, 20.0, 30.0];
        let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let want = [9.0, 18.0, 27.0, 6.0, 15.0, 24.0];
        assert_eq!(run(BinaryKind::Sub, &a, &[3], &b, &[2, 3]), want);
    }

    #[test]
    fn mul_per_channel() {
        // NCHW [1, 2, 2, 2] times a per-channel [2, 1, 1].
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let b = [2.0, -1.0];
        let want = [2.0, 4.0, 6.0, 8.0, -5.0, -6.0, -7.0, -8.0];
        assert_eq!(
            run(BinaryKind::Mul, &a, &[1, 2, 2, 2], &b, &[2, 1, 1]),
            want
        );
    }

    #[test]
    fn div_both_sides_broadcast() {
        // [3, 1] / [1, 2] -> [3, 2], out[i][j] = a[i] / b[j].
        let a = [2.0, 4.0, 8.0];
        let b = [1.0, 4.0];
        let want = [2.0, 0.5, 4.0, 1.0, 8.0, 2.0];
        assert_eq!(run(BinaryKind::Div, &a, &[3, 1], &b, &[1, 2]), want);
    }

    #[test]
    fn same_shape_all_kinds() {
        let a = [6.0, -3.0, 1.5, 0.0];
        let b = [2.0, 4.0, -0.5, 8.0];
        let shape = [2, 2];
        assert_eq!(
            run(BinaryKind::Add, &a, &shape, &b, &shape),
            [8.0, 1.0, 1.0, 8.0]
        );
        assert_eq!(
            run(BinaryKind::Sub, &a, &shape, &b, &shape),
            [4.0, -7.0, 2.0, -8.0]
        );
        assert_eq!(
            run(BinaryKind::Mul, &a, &shape, &b, &shape),
            [12.0, -12.0, -0.75, 0.0]
        );
        assert_eq!(
            run(BinaryKind::Div, &a, &shape, &b, &shape),
            [3.0, -0.75, -3.0, 0.0]
        );
    }

    #[test]
    fn pow_max_min_broadcast() {
        // [2, 2] against the row [2, 0.5]: a^b is 3^2, 4^0.5, (-2)^2, 9^0.5.
        let a = [3.0, 4.0, -2.0, 9.0];
        let b = [2.0, 0.5];
        assert_eq!(
            run(BinaryKind::Pow, &a, &[2, 2], &b, &[2]),
            [9.0, 2.0, 4.0, 3.0]
        );
        assert_eq!(
            run(BinaryKind::Max, &a, &[2, 2], &b, &[2]),
            [3.0, 4.0, 2.0, 9.0]
        );
        assert_eq!(
            run(BinaryKind::Min, &a, &[2, 2], &b, &[2]),
            [2.0, 0.5, -2.0, 0.5]
        );
        // Column [1, 2] against row [0, 3, -1]: max and min over an outer product grid.
        assert_eq!(
            run(
                BinaryKind::Max,
                &[1.0, 2.0],
                &[2, 1],
                &[0.0, 3.0, -1.0],
                &[1, 3]
            ),
            [1.0, 3.0, 1.0, 2.0, 3.0, 2.0]
        );
        assert_eq!(
            run(
                BinaryKind::Min,
                &[1.0, 2.0],
                &[2, 1],
                &[0.0, 3.0, -1.0],
                &[1, 3]
            ),
            [0.0, 1.0, -1.0, 0.0, 2.0, -1.0]
        );
        // 2^-1 = 0.5, 8^(1/3) = 2, x^0 = 1, and a negative base with a fractional power.
        let got = run(
            BinaryKind::Pow,
            &[2.0, 8.0, 0.0, -8.0],
            &[4],
            &[-1.0, 1.0 / 3.0, 0.0, 0.5],
            &[4],
        );
        assert_eq!(got[0], 0.5);
        assert!((got[1] - 2.0).abs() < 1e-6);
        assert_eq!(got[2], 1.0);
        assert!(got[3].is_nan());
    }

    #[test]
    fn scalar_operands() {
        let a = [1.0, 2.0, 4.0];
        assert_eq!(run(BinaryKind::Sub, &a, &[3], &[1.0], &[]), [0.0, 1.0, 3.0]);
        assert_eq!(run(BinaryKind::Div, &[8.0], &[], &a, &[3]), [8.0, 4.0, 2.0]);
        assert_eq!(
            run(BinaryKind::Mul, &a, &[1, 3], &[0.5], &[1, 1]),
            [0.5, 1.0, 2.0]
        );
        assert_eq!(run(BinaryKind::Add, &[1.5], &[], &[2.0], &[]), [3.5]);
    }

    #[test]
    fn broadcast_over_middle_axis_rank4() {
        // [2, 1, 2, 1] + [3, 1, 2] -> [2, 3, 2, 2]; out[n][c][h][w] = a[n][h] + b[c][w].
        let a = [0.0, 10.0, 100.0, 110.0];
        let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let got = run(BinaryKind::Add, &a, &[2, 1, 2, 1], &b, &[3, 1, 2]);
        let mut want = Vec::new();
        for n in 0..2 {
            for c in 0..3 {
                for h in 0..2 {
                    for w in 0..2 {
                        want.push(a[n * 2 + h] + b[c * 2 + w]);
                    }
                }
            }
        }
        assert_eq!(got, want);
        assert_eq!(&got[..6], [1.0, 2.0, 11.0, 12.0, 3.0, 4.0]);
    }

    #[test]
    fn empty_output_writes_nothing() {
        let mut out: [f32; 0] = [];
        binary(
            BinaryKind::Add,
            &[],
            &[0, 3],
            &[1.0, 2.0, 3.0],
            &[3],
            &mut out,
            &[0, 3],
        );
    }
}
