//! Max and average pooling with asymmetric padding, dilation, `ceil_mode` and
//! `count_include_pad`, and global average pooling.
//!
//! candle's pooling has none of those options and its gradient needs the window to equal
//! the stride, so pooling is composed instead: the input is padded explicitly (with
//! `f32::MIN` for max, so padding never wins, and with zeros for average), extra cells are
//! added at the end for the windows `ceil_mode` adds, every window tap is gathered with
//! `index_select` into a trailing axis, and that axis is reduced.

use candle_core::{Device, Tensor};
use lopper_runtime::graph::{Pool2d, PoolKind};

use super::{expect_rank, index_tensor, operands, pad_constant, Fail, OpResult};

/// `Op::Pool2d` over `x [N, C, H, W]`. A max window with no real cell yields `f32::MIN`;
/// an average window divides by its real cells, or with `count_include_pad` by its cells
/// inside the padded input (never the extra `ceil_mode` cells), and yields 0 when that
/// count is 0.
pub(super) fn pool2d(p: &Pool2d, args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    expect_rank(x, 4, "input")?;
    let (_, _, height, width) = x.dims4()?;
    let rows = Axis::new(p, 0, height)?;
    let cols = Axis::new(p, 1, width)?;
    if p.kind == PoolKind::Max
        && p.kernel == p.stride
        && p.dilation == [1, 1]
        && p.pads == [0; 4]
        && rows.out * p.kernel[0] <= height
        && cols.out * p.kernel[1] <= width
    {
        // Tiling windows: candle's own max pooling (and its backward) on the rows and
        // columns the windows cover, much faster than gathering taps.
        let covered =
            x.narrow(2, 0, rows.out * p.kernel[0])?
                .narrow(3, 0, cols.out * p.kernel[1])?;
        let k = (p.kernel[0], p.kernel[1]);
        return Ok(covered.max_pool2d_with_stride(k, k)?);
    }
    let (fill, begin_h, end_h, begin_w, end_w) = (
        match p.kind {
            PoolKind::Max => f32::MIN,
            PoolKind::Average => 0.0,
        },
        rows.pad_begin,
        rows.reach().saturating_sub(rows.pad_begin + height),
        cols.pad_begin,
        cols.reach().saturating_sub(cols.pad_begin + width),
    );
    let padded = pad_constant(x, 2, begin_h, end_h, fill)?;
    let padded = pad_constant(&padded, 3, begin_w, end_w, fill)?;
    let taps = gather_taps(&padded, &rows, &cols)?;
    match p.kind {
        PoolKind::Max => Ok(taps.max(4)?),
        PoolKind::Average => {
            let counts = |axis: &Axis, dims: [usize; 4]| -> OpResult {
                let counts: Vec<f32> = (0..axis.out)
                    .map(|o| axis.counted_taps(o, p.count_include_pad) as f32)
                    .collect();
                Ok(Tensor::from_vec(counts, dims.to_vec(), &Device::Cpu)?)
            };
            let divisor = counts(&rows, [1, 1, rows.out, 1])?
                .broadcast_mul(&counts(&cols, [1, 1, 1, cols.out])?)?
                .maximum(1f32)?;
            Ok(taps.sum(4)?.broadcast_div(&divisor)?)
        }
    }
}

/// `Op::GlobalAveragePool`: `[N, C, H, W] -> [N, C, 1, 1]`; an empty plane yields 0.
pub(super) fn global_average_pool(args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    expect_rank(x, 4, "input")?;
    let (n, c, h, w) = x.dims4()?;
    if h * w == 0 {
        return Ok(Tensor::zeros((n, c, 1, 1), x.dtype(), x.device())?);
    }
    Ok(x.mean_keepdim(vec![2, 3])?)
}

/// One pooled axis. Positions count in the padded input, where the window of output `o`
/// covers `o * stride + k * dilation` for `k < kernel`, and real cells are
/// `pad_begin..pad_begin + len`.
struct Axis {
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
    len: usize,
    /// Output length.
    out: usize,
}

impl Axis {
    /// Axis 0 (height) or 1 (width) of `p` over an input of length `len`.
    fn new(p: &Pool2d, axis: usize, len: usize) -> OpResult<Self> {
        let mut a = Axis {
            kernel: p.kernel[axis],
            stride: p.stride[axis],
            dilation: p.dilation[axis],
            pad_begin: p.pads[axis],
            pad_end: p.pads[axis + 2],
            len,
            out: 0,
        };
        a.out = a.output_len(p.ceil_mode).ok_or_else(|| {
            Fail::Invalid(format!(
                "window {:?}, stride {:?}, dilation {:?} and pads {:?} do not fit the input",
                p.kernel, p.stride, p.dilation, p.pads
            ))
        })?;
        Ok(a)
    }

    /// Output length by the ONNX / PyTorch rule: `(len + pads - extent) / stride + 1`,
    /// rounded down, or up with `ceil_mode` unless the last window would then start in the
    /// end padding. `None` when the window does not fit, a parameter is 0 or the output
    /// would be empty.
    fn output_len(&self, ceil_mode: bool) -> Option<usize> {
        if self.kernel == 0 || self.stride == 0 || self.dilation == 0 {
            return None;
        }
        let padded = self
            .len
            .checked_add(self.pad_begin)?
            .checked_add(self.pad_end)?;
        let extent = (self.kernel - 1).checked_mul(self.dilation)? + 1;
        let span = padded.checked_sub(extent)?;
        let steps = if ceil_mode {
            span.div_ceil(self.stride)
        } else {
            span / self.stride
        };
        let starts_in_end_padding = steps * self.stride >= self.len + self.pad_begin;
        let out = if ceil_mode && starts_in_end_padding {
            steps
        } else {
            steps + 1
        };
        (out > 0).then_some(out)
    }

    /// Padded length the windows reach: one past the last tap of the last window.
    fn reach(&self) -> usize {
        (self.out - 1) * self.stride + (self.kernel - 1) * self.dilation + 1
    }

    /// Position of tap `k` of output `o`.
    fn position(&self, o: usize, k: usize) -> usize {
        o * self.stride + k * self.dilation
    }

    /// Taps of output `o` an average divides by: those on real cells, or with
    /// `include_pad` those inside the padded input.
    fn counted_taps(&self, o: usize, include_pad: bool) -> usize {
        let (lo, hi) = if include_pad {
            (0, self.pad_begin + self.len + self.pad_end)
        } else {
            (self.pad_begin, self.pad_begin + self.len)
        };
        (0..self.kernel)
            .filter(|&k| (lo..hi).contains(&self.position(o, k)))
            .count()
    }
}

/// Every window tap of `padded` (`[N, C, >= reach, >= reach]`): `[N, C, OH, OW, kh * kw]`.
fn gather_taps(padded: &Tensor, rows: &Axis, cols: &Axis) -> OpResult {
    let positions = |axis: &Axis, k: usize| -> OpResult {
        let at: Vec<usize> = (0..axis.out).map(|o| axis.position(o, k)).collect();
        index_tensor(&at)
    };
    let mut taps = Vec::with_capacity(rows.kernel * cols.kernel);
    for ky in 0..rows.kernel {
        let window_rows = padded.index_select(&positions(rows, ky)?, 2)?;
        for kx in 0..cols.kernel {
            taps.push(window_rows.index_select(&positions(cols, kx)?, 3)?);
        }
    }
    Ok(Tensor::stack(&taps, 4)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// x = [1 2 3 4; 5 6 7 8; 9 10 11 12; 13 14 15 16] minus 20: all negative, so a padded
    /// zero would win a max if padding counted.
    fn x4x4_negative() -> Tensor {
        let data: Vec<f32> = (1..=16).map(|v| v as f32 - 20.0).collect();
        t(&data, &[1, 1, 4, 4])
    }

    fn pool(kind: PoolKind, kernel: usize, stride: usize, pads: [usize; 4]) -> Pool2d {
        Pool2d {
            kind,
            kernel: [kernel; 2],
            stride: [stride; 2],
            dilation: [1, 1],
            pads,
            ceil_mode: false,
            count_include_pad: false,
        }
    }

    #[test]
    fn max_with_padding_never_picks_padding() {
        // 2x2 windows, stride 2, pads top/left 1: padded length 5, (5 - 2) / 2 + 1 = 2
        // outputs per axis. Windows in real coordinates: rows {-1, 0}, {1, 2}, columns
        // likewise. Maxima: x[0][0] = -19; x[0][1..=2] -> -17; x[1..=2][0] -> -11;
        // x[1..=2][1..=2] -> -9.
        let p = pool(PoolKind::Max, 2, 2, [1, 1, 0, 0]);
        let y = pool2d(&p, &[x4x4_negative()]).unwrap();
        close(&y, &[1, 1, 2, 2], &[-19., -17., -11., -9.]);
    }

    #[test]
    fn max_ceil_mode_adds_partial_windows() {
        // 2x2, stride 2, pads top/left 1, ceil mode: (5 - 2) / 2 rounds up to 2 steps, the
        // third window starts at padded 4 = real 3, inside the input: 3x3 output. Rows
        // {-1,0}, {1,2}, {3}; same for columns.
        // [x00, max x0[1..=2], x03; max x[1..=2]0, max x[1..=2][1..=2], max x[1..=2]3;
        //  x30, max x3[1..=2], x33] = [-19 -17 -16; -11 -9 -8; -7 -5 -4].
        let mut p = pool(PoolKind::Max, 2, 2, [1, 1, 0, 0]);
        p.ceil_mode = true;
        let y = pool2d(&p, &[x4x4_negative()]).unwrap();
        close(
            &y,
            &[1, 1, 3, 3],
            &[-19., -17., -16., -11., -9., -8., -7., -5., -4.],
        );
        // Ceil mode with end padding 1 instead: (5 - 2) / 2 rounds up to 2, but the third
        // window would start at 4, in the end padding: dropped, 2x2.
        let mut p = pool(PoolKind::Max, 2, 2, [0, 0, 1, 1]);
        p.ceil_mode = true;
        let y = pool2d(&p, &[x4x4_negative()]).unwrap();
        close(&y, &[1, 1, 2, 2], &[-14., -12., -6., -4.]);
    }

    #[test]
    fn overlapping_dilated_max() {
        // 1x5 row [3 1 4 1 5], window 2 with dilation 2 (taps j, j+2), stride 1:
        // max(3,4) = 4, max(1,1) = 1, max(4,5) = 5.
        let p = Pool2d {
            kind: PoolKind::Max,
            kernel: [1, 2],
            stride: [1, 1],
            dilation: [1, 2],
            pads: [0; 4],
            ceil_mode: false,
            count_include_pad: false,
        };
        let y = pool2d(&p, &[t(&[3., 1., 4., 1., 5.], &[1, 1, 1, 5])]).unwrap();
        close(&y, &[1, 1, 1, 3], &[4., 1., 5.]);
    }

    /// x = [1 2 3; 4 5 6; 7 8 9], 2x2 average, stride 2, pads 1 on every side: windows
    /// (in real coordinates) rows {-1,0}, {1,2}, columns likewise: output 2x2.
    fn avg(count_include_pad: bool, ceil_mode: bool) -> Tensor {
        let mut p = pool(PoolKind::Average, 2, 2, [1, 1, 1, 1]);
        p.count_include_pad = count_include_pad;
        p.ceil_mode = ceil_mode;
        let x = t(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]);
        pool2d(&p, &[x]).unwrap()
    }

    #[test]
    fn average_excluding_padding() {
        // Sums: {1} = 1, {2,3} = 5, {4,7} = 11, {5,6,8,9} = 28; real cells 1, 2, 2, 4:
        // 1, 2.5, 5.5, 7.
        close(&avg(false, false), &[1, 1, 2, 2], &[1., 2.5, 5.5, 7.]);
    }

    #[test]
    fn average_including_padding() {
        // Same sums, every window lies inside the padded input: divide by 4.
        close(&avg(true, false), &[1, 1, 2, 2], &[0.25, 1.25, 2.75, 7.]);
    }

    #[test]
    fn average_ceil_mode_extra_cells_never_count() {
        // Padded length 5: (5 - 2) / 2 rounds up to 2 steps; the third window starts at
        // padded 4 = the end padding: dropped. So 2x2 again, as without ceil mode.
        close(&avg(true, true), &[1, 1, 2, 2], &[0.25, 1.25, 2.75, 7.]);
        // Without padding, 3x3 input, 2x2 window, stride 2, ceil: windows rows {0,1},
        // {2, beyond}; the beyond cell is not in the padded input, so even with
        // count_include_pad it does not count: [12/4, 9/2; 15/2, 9/1].
        let mut p = pool(PoolKind::Average, 2, 2, [0; 4]);
        p.ceil_mode = true;
        p.count_include_pad = true;
        let x = t(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]);
        let y = pool2d(&p, &[x]).unwrap();
        close(&y, &[1, 1, 2, 2], &[3., 4.5, 7.5, 9.]);
    }

    #[test]
    fn global_average() {
        // Channel means: (1 + 2 + 3 + 4) / 4 = 2.5 and (-4 + 0 + 8 + 0) / 4 = 1.
        let x = t(&[1., 2., 3., 4., -4., 0., 8., 0.], &[1, 2, 2, 2]);
        close(
            &global_average_pool(&[x]).unwrap(),
            &[1, 2, 1, 1],
            &[2.5, 1.],
        );
    }

    #[test]
    fn window_larger_than_input_is_an_error() {
        let p = pool(PoolKind::Max, 5, 1, [0; 4]);
        assert!(matches!(
            pool2d(&p, &[x4x4_negative()]),
            Err(Fail::Invalid(_))
        ));
        // An empty input whose only window starts in the end padding: ceil mode drops it,
        // leaving no output.
        let mut p = pool(PoolKind::Max, 2, 2, [0, 0, 2, 0]);
        p.ceil_mode = true;
        let empty = t(&[], &[1, 1, 0, 4]);
        assert!(matches!(pool2d(&p, &[empty]), Err(Fail::Invalid(_))));
    }
}
