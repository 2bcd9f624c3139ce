//! Max and average pooling over NCHW tensors, with ONNX / PyTorch padding, dilation and
//! `ceil_mode` semantics.

use core::ops::Range;

use crate::graph::{Pool2d, PoolKind};

/// Pools `x` (`x_shape` = `[N, C, H, W]`) into `y` (`y_shape` = `[N, C, OH, OW]`, as given
/// by `window::output_len`). Max ignores padded cells; a window with no real cell (possible
/// when wide padding or a large dilation makes every tap miss the input) yields
/// `f32::MIN`, as onnxruntime does.
/// Average divides by the real cells, or with `count_include_pad` by the cells inside the
/// padded input (cells past the end padding, reached through `ceil_mode`, never count);
/// a window with nothing to divide by yields 0.
pub fn pool2d(p: &Pool2d, x: &[f32], x_shape: [usize; 4], y: &mut [f32], y_shape: [usize; 4]) {
    match p.kind {
        PoolKind::Max => pool_planes(p, x, x_shape, y, y_shape, Max),
        PoolKind::Average => {
            let average = Average {
                count_include_pad: p.count_include_pad,
            };
            pool_planes(p, x, x_shape, y, y_shape, average);
        }
    }
}

/// [`pool2d`] with the reduction chosen: separable through a [`Line`] when the padded row
/// fits it, window by window otherwise.
fn pool_planes<R: Reduction>(
    p: &Pool2d,
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    y: &mut [f32],
    [_, _, oh, ow]: [usize; 4],
    reduction: R,
) {
    let (rows, cols) = axes(p, h, w);
    let (plane_in, plane_out) = (h * w, oh * ow);
    if plane_out == 0 {
        return;
    }
    let planes = y.chunks_exact_mut(plane_out).take(n * c).enumerate();
    if plane_in == 0 || separable_line(&cols, ow) > MAX_LINE {
        for (plane, yp) in planes {
            let xp = &x[plane * plane_in..(plane + 1) * plane_in];
            direct_plane(xp, &rows, &cols, yp, ow, reduction);
        }
        return;
    }
    let mut line = Line::new(&cols, ow);
    for (plane, yp) in planes {
        let xp = &x[plane * plane_in..(plane + 1) * plane_in];
        line.pool(xp, &rows, &cols, yp, reduction);
    }
}

/// The geometry of the row and column axes of an `h x w` plane.
fn axes(p: &Pool2d, h: usize, w: usize) -> (Axis, Axis) {
    let axis = |i: usize, len: usize| Axis {
        kernel: p.kernel[i],
        stride: p.stride[i],
        dilation: p.dilation[i],
        pad_begin: p.pads[i],
        len,
        pad_end: p.pads[i + 2],
    };
    (axis(0, h), axis(1, w))
}

/// Pools one plane window by window: the fallback for rows longer than [`MAX_LINE`] (and
/// empty inputs, where every window lies in the padding).
fn direct_plane<R: Reduction>(
    xp: &[f32],
    rows: &Axis,
    cols: &Axis,
    yp: &mut [f32],
    ow: usize,
    reduction: R,
) {
    for (oy, out_row) in yp.chunks_exact_mut(ow).enumerate() {
        let (row_taps, rows_padded) = rows.taps(oy);
        for (ox, out) in out_row.iter_mut().enumerate() {
            let (col_taps, cols_padded) = cols.taps(ox);
            let taps = [row_taps.len(), col_taps.len()];
            let window = Window {
                x: xp,
                width: cols.len,
                rows: (rows, oy, row_taps.clone()),
                cols: (cols, ox, col_taps),
            };
            let acc = window.fold(R::INIT, R::combine);
            *out = reduction.finish(acc, taps, [rows_padded, cols_padded]);
        }
    }
}

/// Longest padded row the separable pools buffer on the stack.
const MAX_LINE: usize = 1280;

/// How a separable pool combines cells and finishes a window.
trait Reduction: Copy {
    /// Value of an empty fold.
    const INIT: f32;
    /// Folds one more cell in.
    fn combine(acc: f32, v: f32) -> f32;
    /// The output of a window folded to `acc`, whose real taps per axis are `taps` and
    /// whose taps inside the padded input are `padded`.
    fn finish(self, acc: f32, taps: [usize; 2], padded: [usize; 2]) -> f32;
    /// [`finish`](Self::finish) for a whole output row folded into `out`, in one loop that
    /// vectorises: the row's window has `row = (taps, padded)`, output `ox`'s columns
    /// `cols.taps[ox]` and `cols.padded[ox]`.
    fn finish_row(self, out: &mut [f32], row: [usize; 2], cols: &ColumnCounts);
}

#[derive(Clone, Copy)]
struct Max;

impl Reduction for Max {
    const INIT: f32 = f32::MIN;
    /// `acc.max(v)` for every `v` but NaN, which it skips as `max` does, in one vector
    /// instruction (`f32::max` needs extra NaN handling per lane).
    #[inline(always)]
    fn combine(acc: f32, v: f32) -> f32 {
        if v > acc {
            v
        } else {
            acc
        }
    }
    fn finish(self, acc: f32, _: [usize; 2], _: [usize; 2]) -> f32 {
        acc
    }
    fn finish_row(self, _: &mut [f32], _: [usize; 2], _: &ColumnCounts) {}
}

#[derive(Clone, Copy)]
struct Average {
    count_include_pad: bool,
}

impl Reduction for Average {
    const INIT: f32 = 0.0;
    fn combine(acc: f32, v: f32) -> f32 {
        acc + v
    }
    fn finish(self, acc: f32, taps: [usize; 2], padded: [usize; 2]) -> f32 {
        let count = if self.count_include_pad {
            padded[0] * padded[1]
        } else {
            taps[0] * taps[1]
        };
        if count == 0 {
            0.0
        } else {
            acc / count as f32
        }
    }
    fn finish_row(self, out: &mut [f32], [row_taps, row_padded]: [usize; 2], cols: &ColumnCounts) {
        // Counts are small integers, exact in f32 (as are their products): the same
        // divisor, and so the same result, as `finish`.
        let (row, cols) = if self.count_include_pad {
            (row_padded as f32, &cols.padded)
        } else {
            (row_taps as f32, &cols.taps)
        };
        for (o, &c) in out.iter_mut().zip(cols) {
            let count = row * c;
            *o = if count > 0.0 { *o / count } else { 0.0 };
        }
    }
}

/// Per output column of a [`Line`]: its window's real taps and its taps inside the padded
/// input, as floats for [`Reduction::finish_row`].
struct ColumnCounts {
    taps: [f32; MAX_LINE],
    padded: [f32; MAX_LINE],
}

/// Separable pooling: each output row folds the window's rows for every input column
/// (contiguous, vectorised) into a line that holds the padding as neutral cells, then
/// reads the window's columns straight from that line. Same cells as the direct fold; for
/// the average the sum is taken in a different order. Kept on the stack, set up once per
/// call: the line, and per output column its real taps and taps inside the padding.
struct Line {
    cells: [f32; MAX_LINE],
    /// The line split by stride phase, when the stride is above 1.
    phases: [f32; MAX_LINE],
    len: usize,
    col_counts: ColumnCounts,
    ow: usize,
}

impl Line {
    /// The line for `ow` outputs along `cols`; [`separable_line`] must fit in [`MAX_LINE`].
    fn new(cols: &Axis, ow: usize) -> Self {
        let mut col_counts = ColumnCounts {
            taps: [0.0; MAX_LINE],
            padded: [0.0; MAX_LINE],
        };
        for ox in 0..ow {
            let (taps, padded) = cols.taps(ox);
            col_counts.taps[ox] = taps.len() as f32;
            col_counts.padded[ox] = padded as f32;
        }
        Line {
            cells: [0.0; MAX_LINE],
            phases: [0.0; MAX_LINE],
            len: separable_line(cols, ow),
            col_counts,
            ow,
        }
    }

    /// Pools one plane `xp` into `yp`.
    fn pool<R: Reduction>(
        &mut self,
        xp: &[f32],
        rows: &Axis,
        cols: &Axis,
        yp: &mut [f32],
        reduction: R,
    ) {
        let w = cols.len;
        let line = &mut self.cells[..self.len];
        line.fill(R::INIT);
        for (oy, out_row) in yp.chunks_exact_mut(self.ow).enumerate() {
            let (row_taps, rows_padded) = rows.taps(oy);
            let real = &mut line[cols.pad_begin..cols.pad_begin + w];
            real.fill(R::INIT);
            for ky in row_taps.clone() {
                let input = &xp[rows.input_index(oy, ky) * w..][..w];
                for (m, &v) in real.iter_mut().zip(input) {
                    *m = R::combine(*m, v);
                }
            }
            // Output `ox`'s tap `k` reads cell `ox * stride + k * dilation`: in the line
            // split by stride phase, that is phase `(k * dilation) % stride` at `ox` plus
            // `(k * dilation) / stride`, so each tap is one contiguous run over the row.
            let stride = cols.stride;
            let pitch = self.len / stride;
            let phases: &[f32] = if stride == 1 {
                line
            } else {
                split_by_phase(line, stride, &mut self.phases);
                &self.phases
            };
            out_row.fill(R::INIT);
            for k in 0..cols.kernel {
                let shift = k * cols.dilation;
                let start = (shift % stride) * pitch + shift / stride;
                for (out, &v) in out_row.iter_mut().zip(&phases[start..start + self.ow]) {
                    *out = R::combine(*out, v);
                }
            }
            reduction.finish_row(out_row, [row_taps.len(), rows_padded], &self.col_counts);
        }
    }
}

/// Writes phase `p` of `line` (cells `p, p + stride, ...`) to `phases[p * pitch..]`, with
/// `pitch = line.len() / stride`; `line.len()` is a multiple of `stride`.
fn split_by_phase(line: &[f32], stride: usize, phases: &mut [f32]) {
    let pitch = line.len() / stride;
    if stride == 2 {
        let (even, odd) = phases[..2 * pitch].split_at_mut(pitch);
        for ((e, o), pair) in even.iter_mut().zip(odd).zip(line.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
        return;
    }
    for (p, phase) in phases.chunks_exact_mut(pitch).take(stride).enumerate() {
        for (d, &v) in phase.iter_mut().zip(line[p..].iter().step_by(stride)) {
            *d = v;
        }
    }
}

/// Length of the [`Line`] needed: every tap of the `ow` windows and every real cell, in
/// padded coordinates, rounded up to whole strides so that its phases have equal length.
fn separable_line(cols: &Axis, ow: usize) -> usize {
    let span = (ow - 1)
        .saturating_mul(cols.stride)
        .saturating_add((cols.kernel - 1).saturating_mul(cols.dilation))
        .saturating_add(1);
    span.max(cols.pad_begin + cols.len)
        .checked_next_multiple_of(cols.stride)
        .unwrap_or(usize::MAX)
}

/// Averages every `H x W` plane of `x` (`[N, C, H, W]`) into `y` (`[N, C, 1, 1]`); an empty
/// plane yields 0.
pub fn global_average_pool(x: &[f32], x_shape: [usize; 4], y: &mut [f32]) {
    let [n, c, h, w] = x_shape;
    let area = h * w;
    for (plane, out) in y.iter_mut().enumerate().take(n * c) {
        let sum = sum(&x[plane * area..(plane + 1) * area]);
        *out = if area == 0 { 0.0 } else { sum / area as f32 };
    }
}

/// Sum of `values` in eight interleaved partial sums, which the compiler keeps in one
/// vector register (a single running sum would wait on every add).
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// The real cells under one output's window: per axis the geometry, the output index and
/// the real taps.
struct Window<'a> {
    x: &'a [f32],
    width: usize,
    rows: (&'a Axis, usize, Range<usize>),
    cols: (&'a Axis, usize, Range<usize>),
}

impl Window<'_> {
    /// `f` folded over the window's cells, from `init`; plain loops, which inline `f`.
    #[inline]
    fn fold(&self, init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
        let ((rows, oy, row_taps), (cols, ox, col_taps)) = (&self.rows, &self.cols);
        let mut acc = init;
        for ky in row_taps.clone() {
            let line = &self.x[rows.input_index(*oy, ky) * self.width..][..self.width];
            for kx in col_taps.clone() {
                acc = f(acc, line[cols.input_index(*ox, kx)]);
            }
        }
        acc
    }
}

/// Geometry of one pooled axis. Positions are counted in the padded input, so the window of
/// output `o` starts at `o * stride` and real cells are `pad_begin..pad_begin + len`.
#[derive(Clone, Copy)]
struct Axis {
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    len: usize,
    pad_end: usize,
}

impl Axis {
    /// Kernel taps of output `o`: the (contiguous) range of taps on real input, and how many
    /// taps lie inside the padded input.
    fn taps(&self, o: usize) -> (Range<usize>, usize) {
        let start = o * self.stride;
        let first_real = self.taps_before(start, self.pad_begin);
        let end_real = self.taps_before(start, self.pad_begin + self.len);
        let padded = self.taps_before(start, self.pad_begin + self.len + self.pad_end);
        (first_real..end_real, padded)
    }

    /// Number of taps `k < kernel` of a window starting at `start` with
    /// `start + k * dilation < limit`.
    fn taps_before(&self, start: usize, limit: usize) -> usize {
        if start >= limit {
            0
        } else if self.dilation == 1 {
            // The common case, without a division in the innermost loop.
            (limit - start).min(self.kernel)
        } else {
            (limit - start).div_ceil(self.dilation).min(self.kernel)
        }
    }

    /// Input index under tap `k` of output `o`; `k` must be one of the real taps.
    fn input_index(&self, o: usize, k: usize) -> usize {
        o * self.stride + k * self.dilation - self.pad_begin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn pool(kind: PoolKind, count_include_pad: bool) -> Pool2d {
        Pool2d {
            kind,
            kernel: [2, 2],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            ceil_mode: false,
            count_include_pad,
        }
    }

    /// Runs `p` over one `h x w` plane, computing the output size with `window::output_len`.
    fn run(p: &Pool2d, x: &[f32], h: usize, w: usize) -> (usize, usize, Vec<f32>) {
        let oh = crate::ops::window::output_len(
            h,
            p.kernel[0],
            p.stride[0],
            p.dilation[0],
            p.pads[0],
            p.pads[2],
            p.ceil_mode,
        )
        .unwrap();
        let ow = crate::ops::window::output_len(
            w,
            p.kernel[1],
            p.stride[1],
            p.dilation[1],
            p.pads[1],
            p.pads[3],
            p.ceil_mode,
        )
        .unwrap();
        let mut y = vec![f32::NAN; oh * ow];
        pool2d(p, x, [1, 1, h, w], &mut y, [1, 1, oh, ow]);
        (oh, ow, y)
    }

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    const X4: [f32; 16] = [
        -1.0, -3.0, -2.0, -4.0, //
        -5.0, 4.0, -1.0, -2.0, //
        3.0, -4.0, -6.0, 5.0, //
        -7.0, 6.0, -8.0, -9.0,
    ];

    /// 2x2 windows, stride 2, pads top 1 and right 1, ceil mode, over `X4`. Rows: the padded
    /// input has 5 rows, so ceil gives 3 outputs whose windows start at padded rows 0, 2, 4,
    /// i.e. real rows {0}, {1, 2}, {3} (padded row 5 is past the input). Columns: ceil gives
    /// 3 but the third window would start at column 4, in the end padding, so 2 remain:
    /// real columns {0, 1}, {2, 3}.
    fn asymmetric_ceil(kind: PoolKind, count_include_pad: bool) -> Pool2d {
        Pool2d {
            stride: [2, 2],
            pads: [1, 0, 0, 1],
            ceil_mode: true,
            ..pool(kind, count_include_pad)
        }
    }

    #[test]
    fn max_asymmetric_pads_ceil_mode() {
        let (oh, ow, y) = run(&asymmetric_ceil(PoolKind::Max, false), &X4, 4, 4);
        assert_eq!((oh, ow), (3, 2));
        // Padding never wins: the all-negative windows keep their negative maximum.
        assert_eq!(y, [-1.0, -2.0, 4.0, 5.0, 6.0, -8.0]);
    }

    #[test]
    fn average_asymmetric_pads_ceil_mode_excluding_pad() {
        let (_, _, y) = run(&asymmetric_ceil(PoolKind::Average, false), &X4, 4, 4);
        // (-1-3)/2, (-2-4)/2, (-5+4+3-4)/4, (-1-2-6+5)/4, (-7+6)/2, (-8-9)/2.
        assert_eq!(y, [-2.0, -3.0, -0.5, -1.0, -0.5, -8.5]);
    }

    #[test]
    fn average_asymmetric_pads_ceil_mode_including_pad() {
        let (_, _, y) = run(&asymmetric_ceil(PoolKind::Average, true), &X4, 4, 4);
        // The top row of windows includes the padded row 0: divide by 4. The bottom row
        // reaches past the padded input (padded row 5): only one row counts, divide by 2.
        assert_eq!(y, [-1.0, -1.5, -0.5, -1.0, -0.5, -8.5]);
    }

    /// 1..=16 row-major, 3x3 windows, stride 2, pads 1 all round, ceil mode: 3x3 outputs.
    /// Per axis the windows start at padded 0, 2, 4; real taps {0, 1}, {1, 2, 3}, {3};
    /// taps inside the padded input 3, 3, 2 (padded 6 is past the end padding).
    fn symmetric_ceil(kind: PoolKind, count_include_pad: bool) -> (usize, usize, Vec<f32>) {
        let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let p = Pool2d {
            kernel: [3, 3],
            stride: [2, 2],
            pads: [1, 1, 1, 1],
            ceil_mode: true,
            ..pool(kind, count_include_pad)
        };
        run(&p, &x, 4, 4)
    }

    #[test]
    fn max_symmetric_pads_ceil_mode() {
        let (oh, ow, y) = symmetric_ceil(PoolKind::Max, false);
        assert_eq!((oh, ow), (3, 3));
        assert_eq!(y, [6.0, 8.0, 8.0, 14.0, 16.0, 16.0, 14.0, 16.0, 16.0]);
    }

    #[test]
    fn average_symmetric_pads_ceil_mode() {
        // Window sums: 14, 30, 12 / 57, 99, 36 / 27, 45, 16.
        let (_, _, y) = symmetric_ceil(PoolKind::Average, false);
        // Real cells: 4, 6, 2 / 6, 9, 3 / 2, 3, 1.
        close(&y, &[3.5, 5.0, 6.0, 9.5, 11.0, 12.0, 13.5, 15.0, 16.0]);
        let (_, _, y) = symmetric_ceil(PoolKind::Average, true);
        // Cells inside the padded input: 9, 9, 6 / 9, 9, 6 / 6, 6, 4.
        close(
            &y,
            &[
                14.0 / 9.0,
                30.0 / 9.0,
                2.0,
                57.0 / 9.0,
                11.0,
                6.0,
                4.5,
                7.5,
                4.0,
            ],
        );
    }

    #[test]
    fn dilation_stride_and_padding() {
        // One row of 7, kernel 1x3, dilation 2, stride 2, pads left 1 right 1: windows
        // start at padded 0, 2, 4 with taps 2 apart, i.e. input indices {-1, 1, 3},
        // {1, 3, 5}, {3, 5, 7}, where -1 and 7 are padding.
        let x = [4.0, -1.0, 7.0, -2.0, -3.0, -5.0, 0.0];
        let p = Pool2d {
            kernel: [1, 3],
            stride: [1, 2],
            dilation: [1, 2],
            pads: [0, 1, 0, 1],
            ..pool(PoolKind::Max, false)
        };
        let (oh, ow, y) = run(&p, &x, 1, 7);
        assert_eq!((oh, ow), (1, 3));
        assert_eq!(y, [-1.0, -1.0, -2.0]);

        let avg = Pool2d {
            kind: PoolKind::Average,
            ..p
        };
        let (_, _, y) = run(&avg, &x, 1, 7);
        close(&y, &[-1.5, -8.0 / 3.0, -3.5]);
        let avg_pad = Pool2d {
            count_include_pad: true,
            ..avg
        };
        let (_, _, y) = run(&avg_pad, &x, 1, 7);
        close(&y, &[-1.0, -8.0 / 3.0, -7.0 / 3.0]);
    }

    #[test]
    fn dilation_2d() {
        // 5x5 with x[r][c] = 5r + c, kernel 2x2, dilation 2: taps (i, j), (i, j + 2),
        // (i + 2, j), (i + 2, j + 2).
        let x: Vec<f32> = (0..25).map(|v| v as f32).collect();
        let p = Pool2d {
            dilation: [2, 2],
            ..pool(PoolKind::Average, false)
        };
        let (oh, ow, y) = run(&p, &x, 5, 5);
        assert_eq!((oh, ow), (3, 3));
        // Mean of 5i+j, 5i+j+2, 5i+j+10, 5i+j+12 is 5i+j+6.
        assert_eq!(y, [6.0, 7.0, 8.0, 11.0, 12.0, 13.0, 16.0, 17.0, 18.0]);
    }

    #[test]
    fn stride_without_padding_over_planes() {
        // [1, 2, 2, 4] with 2x2 windows and stride 2: two outputs per plane.
        let x = [
            1.0, 5.0, -1.0, 0.0, //
            3.0, 2.0, -2.0, -3.0, //
            -1.0, -4.0, 8.0, 2.0, //
            -2.0, -3.0, 4.0, 6.0,
        ];
        let p = Pool2d {
            stride: [2, 2],
            ..pool(PoolKind::Max, false)
        };
        let mut y = [f32::NAN; 4];
        pool2d(&p, &x, [1, 2, 2, 4], &mut y, [1, 2, 1, 2]);
        assert_eq!(y, [5.0, 0.0, -1.0, 8.0]);

        let avg = Pool2d {
            kind: PoolKind::Average,
            ..p
        };
        pool2d(&avg, &x, [1, 2, 2, 4], &mut y, [1, 2, 1, 2]);
        assert_eq!(y, [2.75, -1.5, -2.5, 5.0]);
    }

    #[test]
    fn window_without_real_cells() {
        // One input cell, kernel 2 with dilation 3, pads 2 left and 1 right: the window
        // taps padded 0 and 3 (the end padding), while the input sits at padded 2.
        let p = Pool2d {
            kernel: [1, 2],
            dilation: [1, 3],
            pads: [0, 2, 0, 1],
            ..pool(PoolKind::Max, false)
        };
        let (_, ow, y) = run(&p, &[5.0], 1, 1);
        assert_eq!(ow, 1);
        assert_eq!(y, [f32::MIN]);
        let avg = Pool2d {
            kind: PoolKind::Average,
            ..p
        };
        assert_eq!(run(&avg, &[5.0], 1, 1).2, [0.0]);
        let avg_pad = Pool2d {
            count_include_pad: true,
            ..avg
        };
        assert_eq!(run(&avg_pad, &[5.0], 1, 1).2, [0.0]);
    }

    #[test]
    fn global_average() {
        // [2, 2, 1, 2]: planes [1, 2], [3, 5], [-1, -2], [0, 7].
        let x = [1.0, 2.0, 3.0, 5.0, -1.0, -2.0, 0.0, 7.0];
        let mut y = [f32::NAN; 4];
        global_average_pool(&x, [2, 2, 1, 2], &mut y);
        assert_eq!(y, [1.5, 4.0, -1.5, 3.5]);

        let mut y = [f32::NAN; 2];
        global_average_pool(&[], [1, 2, 0, 3], &mut y);
        assert_eq!(y, [0.0, 0.0]);
    }

    #[test]
    fn separable_and_direct_planes_agree() {
        let x: Vec<f32> = (0..7 * 9)
            .map(|v| ((v * 29 % 17) as f32 - 8.0) * 0.37)
            .collect();
        for kind in [PoolKind::Max, PoolKind::Average] {
            for (kernel, stride, dilation, pads, ceil_mode) in [
                ([3, 3], [2, 2], [1, 1], [1, 1, 1, 1], false),
                ([3, 2], [1, 2], [2, 1], [0, 1, 2, 0], true),
                ([2, 3], [2, 1], [1, 2], [1, 0, 0, 2], true),
                ([7, 9], [1, 1], [1, 1], [0; 4], false),
            ] {
                for count_include_pad in [false, true] {
                    let p = Pool2d {
                        kind,
                        kernel,
                        stride,
                        dilation,
                        pads,
                        ceil_mode,
                        count_include_pad,
                    };
                    let (oh, ow, separable) = run(&p, &x, 7, 9);
                    let (rows, cols) = axes(&p, 7, 9);
                    let mut direct = vec![f32::NAN; oh * ow];
                    match kind {
                        PoolKind::Max => direct_plane(&x, &rows, &cols, &mut direct, ow, Max),
                        PoolKind::Average => {
                            let average = Average { count_include_pad };
                            direct_plane(&x, &rows, &cols, &mut direct, ow, average);
                        }
                    }
                    close(&separable, &direct);
                }
            }
        }
    }
}
