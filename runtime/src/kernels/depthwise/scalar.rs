//! Portable implementation, also compiled with AVX2 + FMA by `x86.rs`: the loops over
//! output rows are written so that the compiler vectorises them. Planes are split by
//! stride phase into a zero-padded buffer (in bands of rows when large) so that every tap
//! is one long contiguous multiply-add; rows too wide for that buffer, and planes of one or
//! two rows, take the taps one by one over the columns they reach.

use super::{Depthwise, MAX_DEPTHWISE_TAPS};
use crate::kernels::columns::{self, Run};
use crate::ops::activation;

/// Floats of each of the two stack buffers of the phase-plane path: 16 KiB each with
/// `std`, 4 KiB each on bare metal, where stacks are small (larger planes go in bands).
#[cfg(feature = "std")]
const MAX_PLANE: usize = 4096;
#[cfg(not(feature = "std"))]
const MAX_PLANE: usize = 1024;

/// See [`super::depthwise`].
#[inline(always)]
pub(super) fn depthwise(conv: &Depthwise, y: &mut [f32]) {
    match band_height(conv) {
        Some(band) if !few_rows(conv) => by_phase_planes(conv, y, band),
        _ => by_column_runs(conv, y),
    }
}

/// Planes of one or two output rows, stride 1 along the rows: the padded copy of
/// [`by_phase_planes`] would hold more padding than input (six rows for two with a 5x5
/// kernel), and copying it costs more than its long runs save. The column runs take only
/// the taps that land inside the image: 1.3-3x faster on such planes (PP-OCR's 2x96 5x5
/// layers, 1x1 and 2x2 planes at the end of a network), slower from three rows on.
fn few_rows(conv: &Depthwise) -> bool {
    conv.y_shape[2] <= 2 && conv.attrs.stride[1] == 1
}

/// Width of one phase plane: the padded row's columns `j * sw + p` for one phase `p`.
fn phase_pitch(conv: &Depthwise) -> usize {
    let [_, _, _, width] = conv.x_shape;
    let [_, pad_left, _, pad_right] = conv.attrs.pads;
    (pad_left + width + pad_right).div_ceil(conv.attrs.stride[1])
}

/// Output rows per band of [`by_phase_planes`] so that the band's phase planes fit
/// [`MAX_PLANE`]; `None` when not even one row does.
fn band_height(conv: &Depthwise) -> Option<usize> {
    let [sh, sw] = conv.attrs.stride;
    let reach = (conv.kernel[0] - 1) * conv.attrs.dilation[0] + 1;
    let phase_rows = MAX_PLANE / (sh * sw * phase_pitch(conv)).max(1);
    let band = (phase_rows + 1).checked_sub(reach.div_ceil(sh))?;
    (band >= 1).then(|| band.min(conv.y_shape[2].max(1)))
}

/// One output plane's work: its output channel, the channel's taps (zeros past the
/// kernel), the input plane it reads, and where it writes.
struct PlaneJob<'a> {
    o: usize,
    taps: &'a [f32; MAX_DEPTHWISE_TAPS],
    input: &'a [f32],
    output: &'a mut [f32],
}

/// Calls `f` for every output plane of `conv` in turn (output channel `o` reads input
/// channel `o / (O / C)`); `f` applies the fused activation.
#[inline(always)]
fn for_each_plane(conv: &Depthwise, y: &mut [f32], mut f: impl FnMut(PlaneJob<'_>)) {
    let [batch, channels, height, width] = conv.x_shape;
    let [_, out_channels, out_height, out_width] = conv.y_shape;
    let multiplier = out_channels / channels;
    let (plane_len, out_len) = (height * width, out_height * out_width);
    let mut taps = [0.0f32; MAX_DEPTHWISE_TAPS];
    for image in 0..batch {
        for o in 0..out_channels {
            taps.fill(0.0);
            conv.w.for_each_in_row(o, |col, v| taps[col] = v);
            let c = image * channels + o / multiplier;
            let out_start = (image * out_channels + o) * out_len;
            let output = &mut y[out_start..out_start + out_len];
            f(PlaneJob {
                o,
                taps: &taps,
                input: &conv.x[c * plane_len..(c + 1) * plane_len],
                output,
            });
        }
    }
}

/// The zero-padded input split by stride phase: with strides `sh x sw`, phase plane
/// `(pr, pc)` holds the padded cells `(i * sh + pr, j * sw + pc)` at `(i, j)`, row pitch
/// `P`. Output `(oy, ox)`'s tap `(ki, kj)` then reads phase plane `(ki dh % sh, kj dw % sw)`
/// at `q + offset` with `q = oy * P + ox` and `offset = (ki dh / sh) * P + kj dw / sw`: every
/// tap is one multiply-add over one contiguous run of `q`, whatever the stride (columns past
/// `OW` in each row are computed and dropped). Long vectorised loops even for 7x7 planes,
/// where row by row the loop overheads would dominate. Planes too tall for the buffer go
/// in bands of `band` output rows.
#[inline(always)]
fn by_phase_planes(conv: &Depthwise, y: &mut [f32], band: usize) {
    let [_, _, height, width] = conv.x_shape;
    let [kernel_h, kernel_w] = conv.kernel;
    let [_, _, out_height, out_width] = conv.y_shape;
    let [sh, sw] = conv.attrs.stride;
    let [dh, dw] = conv.attrs.dilation;
    let [pad_top, pad_left, _, _] = conv.attrs.pads;
    let pitch = phase_pitch(conv);
    let mut phases = [0.0f32; MAX_PLANE];
    let mut wide = [0.0f32; MAX_PLANE];
    // Per tap: which phase plane, and where in it output 0 reads.
    let mut reads = [(0usize, 0usize); MAX_DEPTHWISE_TAPS];
    for ki in 0..kernel_h {
        for kj in 0..kernel_w {
            let (r, c) = (ki * dh, kj * dw);
            reads[ki * kernel_w + kj] = ((r % sh) * sw + c % sw, (r / sh) * pitch + c / sw);
        }
    }
    // With stride 1 along the rows, which padded columns hold input is the same for every
    // row: work it out once.
    let whole_row = columns::inside(width, pitch, pad_left, 1, 0);
    for_each_plane(conv, y, |job| {
        for oy0 in (0..out_height).step_by(band) {
            let rows = band.min(out_height - oy0);
            // Padded rows the band reads, from padded row `oy0 * sh` on.
            let padded_rows = (rows - 1) * sh + (kernel_h - 1) * dh + 1;
            let phase_len = padded_rows.div_ceil(sh) * pitch;
            // Padded row `r` is row `phase_row = r / sh` of the phase planes `(r % sh, 0..sw)`.
            let (mut phase, mut phase_row) = (0, 0);
            for r in 0..padded_rows {
                let input_row = (oy0 * sh + r)
                    .checked_sub(pad_top)
                    .filter(|&iy| iy < height)
                    .map(|iy| &job.input[iy * width..(iy + 1) * width]);
                let start = phase * sw * phase_len + phase_row * pitch;
                phase += 1;
                if phase == sh {
                    (phase, phase_row) = (0, phase_row + 1);
                }
                let block = &mut phases[start..start + (sw - 1) * phase_len + pitch];
                match (input_row, sw) {
                    (Some(row), 1) => columns::gather(row, whole_row, 1, block),
                    (Some(row), 2) => {
                        let (even, odd) = block.split_at_mut(phase_len);
                        split_two(row, pad_left, &mut even[..pitch], odd);
                    }
                    (Some(row), _) => {
                        for pc in 0..sw {
                            let dst = &mut block[pc * phase_len..pc * phase_len + pitch];
                            split_phase(row, pad_left, sw, pc, dst);
                        }
                    }
                    (None, _) => {
                        for pc in 0..sw {
                            block[pc * phase_len..pc * phase_len + pitch].fill(0.0);
                        }
                    }
                }
            }
            let len = (rows - 1) * pitch + out_width;
            let mut live = [(0.0f32, 0usize); MAX_DEPTHWISE_TAPS];
            let mut count = 0;
            for (&tap, &(phase, offset)) in job.taps.iter().zip(&reads).take(kernel_h * kernel_w) {
                if tap != 0.0 {
                    live[count] = (tap, phase * phase_len + offset);
                    count += 1;
                }
            }
            let bias = conv.bias.map_or(0.0, |b| b[job.o]);
            accumulate(&mut wide[..len], &phases, &live[..count], bias);
            let band_out = &mut job.output[oy0 * out_width..(oy0 + rows) * out_width];
            for (b, out_row) in band_out.chunks_exact_mut(out_width).enumerate() {
                activation::apply_from(conv.act, &wide[b * pitch..][..out_width], out_row);
            }
        }
    });
}

/// Columns of `wide` [`accumulate`] keeps in registers at a time.
const CHUNK: usize = 32;

/// `wide[q] = bias + sum over (tap, start) of tap * phases[start + q]`, a chunk of
/// [`CHUNK`] outputs at a time so that the sums stay in registers across the taps.
#[inline(always)]
fn accumulate(wide: &mut [f32], phases: &[f32], taps: &[(f32, usize)], bias: f32) {
    let len = wide.len();
    let full = len - len % CHUNK;
    for (q, out) in (0..full).step_by(CHUNK).zip(wide.chunks_exact_mut(CHUNK)) {
        let mut acc = [bias; CHUNK];
        for &(tap, start) in taps {
            let src: &[f32; CHUNK] = phases[start + q..start + q + CHUNK]
                .try_into()
                .expect("CHUNK cells");
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += tap * v;
            }
        }
        out.copy_from_slice(&acc);
    }
    let tail = &mut wide[full..];
    tail.fill(bias);
    for &(tap, start) in taps {
        for (a, &v) in tail.iter_mut().zip(&phases[start + full..start + len]) {
            *a += tap * v;
        }
    }
}

/// [`split_phase`] for stride 2, both phases in one pass: input column `ix` sits at padded
/// column `pad_left + ix`, which is in `even` or `odd` by its parity.
#[inline(always)]
fn split_two(row: &[f32], pad_left: usize, even: &mut [f32], odd: &mut [f32]) {
    even.fill(0.0);
    odd.fill(0.0);
    // Input columns 2m and 2m + 1 land in (first, second) at (base_first + m, base_second + m).
    let (first, second, base_first, base_second) = if pad_left % 2 == 0 {
        (even, odd, pad_left / 2, pad_left / 2)
    } else {
        (odd, even, pad_left / 2, pad_left / 2 + 1)
    };
    let pairs = row.chunks_exact(2);
    let last = pairs.remainder().first();
    let n = row.len() / 2;
    let targets = first[base_first..base_first + n]
        .iter_mut()
        .zip(&mut second[base_second..base_second + n]);
    for ((a, b), pair) in targets.zip(pairs) {
        *a = pair[0];
        *b = pair[1];
    }
    if let Some(&v) = last {
        first[base_first + n] = v;
    }
}

/// Writes phase `pc` of the input `row` padded by `pad_left` zeros (and zeros past its
/// end) into `dst`: `dst[j]` is padded column `j * stride + pc`.
#[inline(always)]
fn split_phase(row: &[f32], pad_left: usize, stride: usize, pc: usize, dst: &mut [f32]) {
    let run = columns::inside(row.len(), dst.len(), pad_left, stride, pc);
    columns::gather(row, run, stride, dst);
}

/// For each output row and kernel tap, the output positions whose input lies inside the
/// image get one multiply-add; with stride 1 that is a contiguous run the compiler
/// vectorises.
#[inline(always)]
fn by_column_runs(conv: &Depthwise, y: &mut [f32]) {
    let [_, _, height, width] = conv.x_shape;
    let [kernel_h, kernel_w] = conv.kernel;
    let [_, _, _, out_width] = conv.y_shape;
    let [stride_h, stride_w] = conv.attrs.stride;
    let [dilation_h, dilation_w] = conv.attrs.dilation;
    let [pad_top, pad_left, _, _] = conv.attrs.pads;
    // Which output columns each kernel column reaches depends on neither the row nor the
    // channel: work it out once.
    let mut runs = [None; MAX_DEPTHWISE_TAPS];
    for (kj, run) in runs.iter_mut().enumerate().take(kernel_w) {
        *run = columns::inside(width, out_width, pad_left, stride_w, kj * dilation_w);
    }
    for_each_plane(conv, y, |job| {
        job.output.fill(conv.bias.map_or(0.0, |b| b[job.o]));
        for (oy, out_row) in job.output.chunks_exact_mut(out_width).enumerate() {
            for ki in 0..kernel_h {
                let Some(iy) = (oy * stride_h + ki * dilation_h)
                    .checked_sub(pad_top)
                    .filter(|&iy| iy < height)
                else {
                    continue;
                };
                let line = &job.input[iy * width..(iy + 1) * width];
                for (kj, run) in runs.iter().enumerate().take(kernel_w) {
                    let tap = job.taps[ki * kernel_w + kj];
                    let Some(Run { lo, hi, first }) = *run else {
                        continue;
                    };
                    if tap == 0.0 {
                        continue;
                    }
                    if stride_w == 1 {
                        let src = &line[first..first + (hi - lo)];
                        for (out, &v) in out_row[lo..hi].iter_mut().zip(src) {
                            *out += tap * v;
                        }
                    } else {
                        let src = line[first..].iter().step_by(stride_w);
                        for (out, &v) in out_row[lo..hi].iter_mut().zip(src) {
                            *out += tap * v;
                        }
                    }
                }
            }
        }
        activation::apply(conv.act, job.output);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode::encode;
    use crate::graph::{Activation, Conv2d, LayoutKind, Storage};
    use crate::ops::window::output_len;
    use alloc::vec;
    use alloc::vec::Vec;

    /// One of the implementations.
    type Path = fn(&Depthwise, &mut [f32]);

    /// The convolution by its definition, one output at a time.
    fn by_definition(conv: &Depthwise, weights: &[f32], bias: &[f32]) -> Vec<f32> {
        let [batch, channels, height, width] = conv.x_shape;
        let [_, outputs, oh, ow] = conv.y_shape;
        let [kh, kw] = conv.kernel;
        let a = conv.attrs;
        let mut y = Vec::new();
        for n in 0..batch {
            for o in 0..outputs {
                let c = o / (outputs / channels);
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = bias[o];
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (oy * a.stride[0] + ki * a.dilation[0]) as isize
                                    - a.pads[0] as isize;
                                let ix = (ox * a.stride[1] + kj * a.dilation[1]) as isize
                                    - a.pads[1] as isize;
                                if (0..height as isize).contains(&iy)
                                    && (0..width as isize).contains(&ix)
                                {
                                    let at = ((n * channels + c) * height + iy as usize) * width
                                        + ix as usize;
                                    acc += weights[o * kh * kw + ki * kw + kj] * conv.x[at];
                                }
                            }
                        }
                        y.push(acc);
                    }
                }
            }
        }
        y
    }

    /// Every path of the portable code against the definition, and the implementation
    /// picked for this CPU (AVX2 + FMA on x86_64) bit for bit against the portable one.
    #[test]
    fn every_path_matches_the_definition() {
        // (channels, multiplier, [h, w], kernel, stride, dilation, pads)
        let cases = [
            (3, 1, [7, 7], [3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
            (2, 2, [9, 13], [5, 5], [1, 1], [1, 1], [2, 2, 2, 2]),
            (4, 1, [8, 17], [3, 3], [2, 2], [1, 1], [0, 1, 1, 0]),
            (1, 3, [6, 11], [3, 5], [1, 2], [2, 1], [2, 0, 1, 3]),
            (2, 1, [10, 9], [3, 3], [1, 1], [2, 3], [2, 3, 2, 3]),
            (3, 1, [5, 6], [1, 1], [1, 1], [1, 1], [0, 0, 0, 0]),
            (2, 1, [12, 12], [7, 7], [1, 1], [1, 1], [3, 3, 3, 3]),
            (2, 1, [9, 9], [5, 5], [2, 2], [1, 1], [2, 2, 2, 2]),
            (1, 1, [4, 4], [3, 3], [1, 1], [1, 1], [0, 0, 0, 0]),
            (1, 1, [70, 66], [3, 3], [2, 2], [1, 1], [1, 1, 1, 1]),
            (1, 1, [80, 75], [5, 5], [1, 1], [1, 1], [2, 2, 2, 2]),
        ];
        for (channels, multiplier, [h, w], kernel, stride, dilation, pads) in cases {
            let attrs = Conv2d {
                stride,
                dilation,
                pads,
                groups: channels,
            };
            let out = |axis: usize, len: usize| {
                output_len(
                    len,
                    kernel[axis],
                    stride[axis],
                    dilation[axis],
                    pads[axis],
                    pads[axis + 2],
                    false,
                )
                .unwrap()
            };
            let outputs = channels * multiplier;
            let x_shape = [2, channels, h, w];
            let y_shape = [2, outputs, out(0, h), out(1, w)];
            let x: Vec<f32> = (0..x_shape.iter().product::<usize>())
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.09)
                .collect();
            let taps = kernel[0] * kernel[1];
            // Every third weight zero, as pruning leaves them.
            let weights: Vec<f32> = (0..outputs * taps)
                .map(|i| {
                    if i % 3 == 1 {
                        0.0
                    } else {
                        ((i * 13 % 17) as f32 - 8.0) * 0.1
                    }
                })
                .collect();
            let bias: Vec<f32> = (0..outputs).map(|o| o as f32 * 0.25 - 0.5).collect();
            let e = encode(&weights, outputs, taps, LayoutKind::Dense, Storage::F32).unwrap();
            let view = e.view();
            let conv = Depthwise {
                attrs: &attrs,
                x: &x,
                x_shape,
                w: &view,
                kernel,
                bias: Some(&bias),
                act: Activation::HardSwish,
                y_shape,
            };
            let mut want = by_definition(&conv, &weights, &bias);
            activation::apply(Activation::HardSwish, &mut want);
            // Whole planes, bands of one and two output rows, and the column runs.
            let band = band_height(&conv).unwrap();
            let paths: [(&str, Path); 4] = [
                ("planes", |c, y| {
                    by_phase_planes(c, y, band_height(c).unwrap())
                }),
                ("bands of 1", |c, y| by_phase_planes(c, y, 1)),
                ("bands of 2", |c, y| by_phase_planes(c, y, 2)),
                ("runs", by_column_runs),
            ];
            assert_eq!(band >= y_shape[2], h * w < 1000, "small planes go whole");
            let mut portable = vec![f32::NAN; want.len()];
            depthwise(&conv, &mut portable);
            let mut dispatched = vec![f32::NAN; want.len()];
            super::super::depthwise(&conv, &mut dispatched);
            assert_eq!(dispatched, portable, "{x_shape:?} {kernel:?} {attrs:?}");
            for (name, path) in paths {
                let mut got = vec![f32::NAN; want.len()];
                path(&conv, &mut got);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{name} {x_shape:?} {kernel:?} {attrs:?} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
