//! Ops that move elements without arithmetic: Concat, Reshape, Transpose, Pad, Slice and
//! Gather. Index-driven ones use `index_select`, so gradients flow back to the source.

use candle_core::Tensor;
use lopper_runtime::graph::{Gather, Pad, PadMode, Slice};

use super::{expect_axis, index_tensor, operands, pad_constant, Fail, OpResult};

/// `Op::Concat`: the inputs joined along `axis`.
pub(super) fn concat(axis: usize, args: &[Tensor]) -> OpResult {
    let first = args
        .first()
        .ok_or_else(|| Fail::Invalid("has no inputs".to_string()))?;
    expect_axis(first, axis)?;
    Ok(Tensor::cat(args, axis)?)
}

/// `Op::Reshape`: the same elements in the declared output shape.
pub(super) fn reshape(args: &[Tensor], out_shape: &[usize]) -> OpResult {
    let [x] = operands::<1>(args)?;
    if x.elem_count() != out_shape.iter().product::<usize>() {
        return Err(Fail::Invalid(format!(
            "cannot reshape {:?} into {out_shape:?}",
            x.dims()
        )));
    }
    Ok(x.reshape(out_shape)?)
}

/// `Op::Transpose`: output axis `i` is input axis `perm[i]`.
pub(super) fn transpose(perm: &[usize], args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    let mut seen = vec![false; x.rank()];
    let valid = perm.len() == x.rank()
        && perm
            .iter()
            .all(|&p| p < x.rank() && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(Fail::Invalid(format!(
            "{perm:?} is not a permutation of the axes of {:?}",
            x.dims()
        )));
    }
    Ok(x.permute(perm)?.contiguous()?)
}

/// `Op::Pad`: constant, reflect (mirror without repeating the edge, bouncing back and
/// forth when the padding is wider than the axis) or edge padding of every axis. Reflect
/// and edge on an empty axis fall back to the constant.
pub(super) fn pad(p: &Pad, args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    if p.begin.len() != x.rank() || p.end.len() != x.rank() {
        return Err(Fail::Invalid(format!(
            "pads {:?} / {:?} do not match shape {:?}",
            p.begin,
            p.end,
            x.dims()
        )));
    }
    let mut y = x.clone();
    for (axis, (&begin, &end)) in p.begin.iter().zip(&p.end).enumerate() {
        let len = y.dims()[axis];
        if begin == 0 && end == 0 {
            continue;
        }
        y = if p.mode == PadMode::Constant || len == 0 {
            pad_constant(&y, axis, begin, end, p.value)?
        } else {
            let sources: Vec<usize> = (0..begin + len + end)
                .map(|o| pad_source(p.mode, o as i64 - begin as i64, len))
                .collect();
            y.index_select(&index_tensor(&sources)?, axis)?
        };
    }
    Ok(y)
}

/// Index of a non-empty axis of length `len` that padded position `i` (relative to the
/// first real element, so negative in the begin padding) reads, for reflect or edge.
fn pad_source(mode: PadMode, i: i64, len: usize) -> usize {
    let last = len as i64 - 1;
    let index = match mode {
        PadMode::Edge | PadMode::Constant => i.clamp(0, last),
        PadMode::Reflect if last == 0 => 0,
        PadMode::Reflect => {
            // A triangle wave of period 2 * last, symmetric about 0.
            let r = i.abs() % (2 * last);
            if r <= last {
                r
            } else {
                2 * last - r
            }
        }
    };
    index as usize
}

/// `Op::Slice`: every axis sliced by its start, end and step, clamped as ONNX does.
pub(super) fn slice(s: &Slice, args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    let rank = x.rank();
    if s.starts.len() != rank || s.ends.len() != rank || s.steps.len() != rank {
        return Err(Fail::Invalid(format!(
            "starts {:?}, ends {:?} and steps {:?} must have one entry per axis of {:?}",
            s.starts,
            s.ends,
            s.steps,
            x.dims()
        )));
    }
    let mut y = x.clone();
    for axis in 0..rank {
        let step = s.steps[axis];
        let (first, count) = slice_axis(x.dims()[axis], s.starts[axis], s.ends[axis], step)
            .ok_or_else(|| Fail::Invalid(format!("step of axis {axis} is 0")))?;
        y = if step == 1 || count == 0 {
            y.narrow(axis, if count == 0 { 0 } else { first }, count)?
        } else {
            let indices: Vec<usize> = (0..count)
                .map(|i| (first as i64 + i as i64 * step) as usize)
                .collect();
            y.index_select(&index_tensor(&indices)?, axis)?
        };
    }
    Ok(y)
}

/// First index and element count of one sliced axis of length `dim`. For `step > 0`
/// start and end clamp to `[0, dim]`; for `step < 0` start clamps to `[0, dim - 1]` and
/// end to `[-1, dim - 1]`; the count is `max(0, ceil((end - start) / step))`. `None` when
/// `step` is 0.
fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> Option<(usize, usize)> {
    let dim = dim as i128;
    let (start, end, step) = (i128::from(start), i128::from(end), i128::from(step));
    let clamp = |v: i128, lo: i128, hi: i128| v.max(lo).min(hi);
    let (first, end) = match step {
        0 => return None,
        1.. => (clamp(start, 0, dim), clamp(end, 0, dim)),
        _ => (clamp(start, 0, dim - 1), clamp(end, -1, dim - 1)),
    };
    let span = (end - first) * step.signum();
    let count = if span > 0 {
        (span + step.abs() - 1) / step.abs()
    } else {
        0
    };
    Some((first.max(0) as usize, count as usize))
}

/// `Op::Gather`: slices along `axis` picked by constant indices; the indices' shape
/// replaces the axis.
pub(super) fn gather(g: &Gather, args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    expect_axis(x, g.axis)?;
    let dim = x.dims()[g.axis];
    if g.indices_shape.iter().product::<usize>() != g.indices.len() {
        return Err(Fail::Invalid(format!(
            "{} indices do not fill the indices shape {:?}",
            g.indices.len(),
            g.indices_shape
        )));
    }
    if let Some(i) = g.indices.iter().find(|&&i| i >= dim) {
        return Err(Fail::Invalid(format!(
            "index {i} is out of range for axis {} of {:?}",
            g.axis,
            x.dims()
        )));
    }
    let mut shape = x.dims()[..g.axis].to_vec();
    shape.extend_from_slice(&g.indices_shape);
    shape.extend_from_slice(&x.dims()[g.axis + 1..]);
    let picked = x.index_select(&index_tensor(&g.indices)?, g.axis)?;
    Ok(picked.reshape(shape)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape, &Device::Cpu).unwrap()
    }

    #[track_caller]
    fn same(got: &Tensor, shape: &[usize], want: &[f32]) {
        assert_eq!(got.dims(), shape);
        let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, want);
    }

    /// [[1, 2, 3], [4, 5, 6]].
    fn x2x3() -> Tensor {
        t(&[1., 2., 3., 4., 5., 6.], &[2, 3])
    }

    #[test]
    fn concat_reshape_transpose() {
        let y = concat(1, &[x2x3(), t(&[7., 8.], &[2, 1])]).unwrap();
        same(&y, &[2, 4], &[1., 2., 3., 7., 4., 5., 6., 8.]);
        assert!(concat(2, &[x2x3()]).is_err());
        same(
            &reshape(&[x2x3()], &[3, 2]).unwrap(),
            &[3, 2],
            &[1., 2., 3., 4., 5., 6.],
        );
        assert!(reshape(&[x2x3()], &[4]).is_err());
        same(
            &transpose(&[1, 0], &[x2x3()]).unwrap(),
            &[3, 2],
            &[1., 4., 2., 5., 3., 6.],
        );
        assert!(transpose(&[0, 0], &[x2x3()]).is_err());
    }

    fn pad_row(mode: PadMode, begin: usize, end: usize) -> Vec<f32> {
        let p = Pad {
            mode,
            begin: vec![0, begin],
            end: vec![0, end],
            value: -1.0,
        };
        let y = pad(&p, &[t(&[1., 2., 3.], &[1, 3])]).unwrap();
        y.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn pad_modes() {
        assert_eq!(
            pad_row(PadMode::Constant, 2, 1),
            [-1., -1., 1., 2., 3., -1.]
        );
        // numpy reflect of [1 2 3]: ... 3 2 | 1 2 3 | 2 1 ...
        assert_eq!(
            pad_row(PadMode::Reflect, 2, 2),
            [3., 2., 1., 2., 3., 2., 1.]
        );
        // Wider than the axis keeps bouncing: distances 5 4 3 2 1 before the first
        // element read 2 1 2 3 2 from the period-4 wave 1 2 3 2.
        assert_eq!(
            pad_row(PadMode::Reflect, 5, 0),
            [2., 1., 2., 3., 2., 1., 2., 3.]
        );
        assert_eq!(pad_row(PadMode::Edge, 2, 1), [1., 1., 1., 2., 3., 3.]);
    }

    #[test]
    fn pad_two_axes() {
        // Edge padding of [[1, 2], [3, 4]] by one row on top and one column on the right.
        let p = Pad {
            mode: PadMode::Edge,
            begin: vec![1, 0],
            end: vec![0, 1],
            value: 0.0,
        };
        let y = pad(&p, &[t(&[1., 2., 3., 4.], &[2, 2])]).unwrap();
        same(&y, &[3, 3], &[1., 2., 2., 1., 2., 2., 3., 4., 4.]);
    }

    #[test]
    fn slices() {
        let s = |starts: Vec<i64>, ends: Vec<i64>, steps: Vec<i64>| Slice {
            starts,
            ends,
            steps,
        };
        // Row 1, columns 2 and 0 (backwards by 2, end clamped to -1).
        let y = slice(&s(vec![1, 5], vec![2, -10], vec![1, -2]), &[x2x3()]).unwrap();
        same(&y, &[1, 2], &[6., 4.]);
        // Columns 0..3 by 2 -> 0, 2; rows past the end give nothing.
        let y = slice(&s(vec![0, 0], vec![9, 3], vec![1, 2]), &[x2x3()]).unwrap();
        same(&y, &[2, 2], &[1., 3., 4., 6.]);
        let y = slice(&s(vec![2, 0], vec![9, 3], vec![1, 1]), &[x2x3()]).unwrap();
        assert_eq!(y.dims(), [0, 3]);
        assert!(slice(&s(vec![0, 0], vec![1, 1], vec![1, 0]), &[x2x3()]).is_err());
    }

    #[test]
    fn slice_axis_rule() {
        assert_eq!(slice_axis(5, 1, 4, 1), Some((1, 3)));
        assert_eq!(slice_axis(5, 0, 5, 2), Some((0, 3)));
        assert_eq!(slice_axis(5, 4, -1, -1), Some((4, 5)));
        assert_eq!(slice_axis(5, 9, 0, -2), Some((4, 2)));
        assert_eq!(slice_axis(5, 3, 3, 1).map(|s| s.1), Some(0));
        assert_eq!(slice_axis(5, 3, 1, 1).map(|s| s.1), Some(0));
        assert_eq!(slice_axis(0, 0, 0, -1).map(|s| s.1), Some(0));
        assert_eq!(slice_axis(5, 0, 1, 0), None);
    }

    #[test]
    fn gathers() {
        // Indices [[0, 1], [1, 0]] on axis 0 of [2, 3]: shape [2, 2, 3].
        let g = Gather {
            axis: 0,
            indices: vec![0, 1, 1, 0],
            indices_shape: vec![2, 2],
        };
        let y = gather(&g, &[x2x3()]).unwrap();
        same(
            &y,
            &[2, 2, 3],
            &[1., 2., 3., 4., 5., 6., 4., 5., 6., 1., 2., 3.],
        );
        // A scalar index on axis 1 drops the axis: column 2.
        let g = Gather {
            axis: 1,
            indices: vec![2],
            indices_shape: vec![],
        };
        same(&gather(&g, &[x2x3()]).unwrap(), &[2], &[3., 6.]);
        let g = Gather {
            axis: 1,
            indices: vec![3],
            indices_shape: vec![1],
        };
        assert!(gather(&g, &[x2x3()]).is_err());
    }
}
