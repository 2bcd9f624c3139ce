//! Portable implementation, also compiled with AVX2 + FMA by `x86.rs`: the loops over
//! output rows are written so that the compiler vectorises them. Rows that fit
//! [`MAX_LINE`] once padded are copied into a zero-padded line, so that every output column
//! takes every tap of a kernel row in one pass, specialised for the common 3- and 5-wide
//! kernels; wider rows take the taps one by one over the columns they reach.

use super::{Depthwise, MAX_DEPTHWISE_TAPS};
use crate::kernels::columns::{self, Run};
use crate::ops::activation;

/// Longest padded input row the line path buffers on the stack.
const MAX_LINE: usize = 1024;

/// Largest padded input plane the plane path buffers on the stack.
const MAX_PLANE: usize = 4096;

/// See [`super::depthwise`].
#[inline(always)]
pub(super) fn depthwise(conv: &Depthwise, y: &mut [f32]) {
    let [_, _, height, width] = conv.x_shape;
    let [pad_top, pad_left, pad_bottom, pad_right] = conv.attrs.pads;
    let padded = (pad_top + height + pad_bottom) * (pad_left + width + pad_right);
    if conv.attrs.stride == [1, 1] && padded <= MAX_PLANE {
        by_padded_planes(conv, y);
    } else if pad_left + width + pad_right <= MAX_LINE {
        by_padded_lines(conv, y);
    } else {
        by_column_runs(conv, y);
    }
}

/// Stride 1 over planes that fit [`MAX_PLANE`] once padded: in the zero-padded plane with
/// row pitch `P`, output `(oy, ox)` is the sum over taps of `tap * padded[q + offset]` with
/// `q = oy * P + ox` and `offset = ki * dh * P + kj * dw`. So every tap is one multiply-add
/// over one contiguous run of `q` (the columns past `OW` in each row are computed and
/// dropped): long vectorised loops even for 7x7 planes, where row by row the loop
/// overheads would dominate.
#[inline(always)]
fn by_padded_planes(conv: &Depthwise, y: &mut [f32]) {
    let Depthwise {
        attrs,
        x,
        x_shape: [batch, channels, height, width],
        w,
        kernel: [kernel_h, kernel_w],
        bias,
        act,
        y_shape: [_, out_channels, out_height, out_width],
    } = *conv;
    let [dilation_h, dilation_w] = attrs.dilation;
    let [pad_top, pad_left, pad_bottom, pad_right] = attrs.pads;
    let multiplier = out_channels / channels;
    let pitch = pad_left + width + pad_right;
    let mut padded = [0.0f32; MAX_PLANE];
    let padded = &mut padded[..(pad_top + height + pad_bottom) * pitch];
    let mut wide = [0.0f32; MAX_PLANE];
    let wide = match out_height {
        0 => &mut wide[..0],
        _ => &mut wide[..(out_height - 1) * pitch + out_width],
    };
    let mut offsets = [0usize; MAX_DEPTHWISE_TAPS];
    for ki in 0..kernel_h {
        for kj in 0..kernel_w {
            offsets[ki * kernel_w + kj] = ki * dilation_h * pitch + kj * dilation_w;
        }
    }
    let mut taps = [0.0f32; MAX_DEPTHWISE_TAPS];
    for image in 0..batch {
        for o in 0..out_channels {
            taps.fill(0.0);
            w.for_each_in_row(o, |col, v| taps[col] = v);
            let c = image * channels + o / multiplier;
            if o % multiplier == 0 {
                let plane = &x[c * height * width..(c + 1) * height * width];
                for (iy, row) in plane.chunks_exact(width).enumerate() {
                    let start = (pad_top + iy) * pitch + pad_left;
                    padded[start..start + width].copy_from_slice(row);
                }
            }
            wide.fill(bias.map_or(0.0, |b| b[o]));
            let len = wide.len();
            for (&tap, &offset) in taps.iter().zip(&offsets).take(kernel_h * kernel_w) {
                if tap == 0.0 {
                    continue;
                }
                for (out, &v) in wide.iter_mut().zip(&padded[offset..offset + len]) {
                    *out += tap * v;
                }
            }
            let out_start = (image * out_channels + o) * out_height * out_width;
            let out_plane = &mut y[out_start..out_start + out_height * out_width];
            for (oy, out_row) in out_plane.chunks_exact_mut(out_width).enumerate() {
                out_row.copy_from_slice(&wide[oy * pitch..oy * pitch + out_width]);
            }
            activation::apply(act, out_plane);
        }
    }
}

/// Output channel `o` reads input channel `o / (O / C)` only. For each output row and
/// kernel row, the input row (zero-padded to both sides when the convolution pads) gives
/// every output column all the kernel row's taps in one pass.
#[inline(always)]
fn by_padded_lines(conv: &Depthwise, y: &mut [f32]) {
    let Depthwise {
        attrs,
        x,
        x_shape: [batch, channels, height, width],
        w,
        kernel: [kernel_h, kernel_w],
        bias,
        act,
        y_shape: [_, out_channels, out_height, out_width],
    } = *conv;
    let [stride_h, stride_w] = attrs.stride;
    let [dilation_h, dilation_w] = attrs.dilation;
    let [pad_top, pad_left, _, pad_right] = attrs.pads;
    let multiplier = out_channels / channels;
    let mut line = [0.0f32; MAX_LINE];
    let line = &mut line[..pad_left + width + pad_right];
    let padded = pad_left + pad_right > 0;
    let mut taps = [0.0f32; MAX_DEPTHWISE_TAPS];
    for image in 0..batch {
        for o in 0..out_channels {
            taps.fill(0.0);
            w.for_each_in_row(o, |col, v| taps[col] = v);
            let c = image * channels + o / multiplier;
            let plane = &x[c * height * width..(c + 1) * height * width];
            let out_start = (image * out_channels + o) * out_height * out_width;
            let out_plane = &mut y[out_start..out_start + out_height * out_width];
            out_plane.fill(bias.map_or(0.0, |b| b[o]));
            for (oy, out_row) in out_plane.chunks_exact_mut(out_width).enumerate() {
                for ki in 0..kernel_h {
                    let row_taps = &taps[ki * kernel_w..(ki + 1) * kernel_w];
                    let Some(iy) = (oy * stride_h + ki * dilation_h)
                        .checked_sub(pad_top)
                        .filter(|&iy| iy < height)
                    else {
                        continue;
                    };
                    if row_taps.iter().all(|&t| t == 0.0) {
                        continue;
                    }
                    let input = &plane[iy * width..(iy + 1) * width];
                    let src: &[f32] = if padded {
                        line[pad_left..pad_left + width].copy_from_slice(input);
                        line
                    } else {
                        input
                    };
                    accumulate_row(out_row, src, row_taps, stride_w, dilation_w);
                }
            }
            activation::apply(act, out_plane);
        }
    }
}

/// `out[ox] += sum over k of taps[k] * line[ox * stride + k * dilation]`, for a `line` that
/// holds every tap of every output (padding included).
#[inline(always)]
fn accumulate_row(out: &mut [f32], line: &[f32], taps: &[f32], stride: usize, dilation: usize) {
    match (taps.len(), stride, dilation) {
        (3, 1, 1) => fixed_row::<3, 1>(out, line, taps),
        (3, 2, 1) => fixed_row::<3, 2>(out, line, taps),
        (5, 1, 1) => fixed_row::<5, 1>(out, line, taps),
        (5, 2, 1) => fixed_row::<5, 2>(out, line, taps),
        _ => {
            for (ox, o) in out.iter_mut().enumerate() {
                let start = ox * stride;
                let window = line[start..].iter().step_by(dilation);
                *o += taps.iter().zip(window).map(|(&t, &v)| t * v).sum::<f32>();
            }
        }
    }
}

/// [`accumulate_row`] for `K` taps, stride `S` and dilation 1, with the bounds checked
/// once so that the compiler vectorises over the output columns.
#[inline(always)]
fn fixed_row<const K: usize, const S: usize>(out: &mut [f32], line: &[f32], taps: &[f32]) {
    let Some(last) = out.len().checked_sub(1) else {
        return;
    };
    let taps: &[f32; K] = taps.try_into().expect("K taps");
    let line = &line[..last * S + K];
    for (ox, o) in out.iter_mut().enumerate() {
        let window: &[f32; K] = line[ox * S..ox * S + K].try_into().expect("K cells");
        let mut acc = *o;
        for k in 0..K {
            acc += taps[k] * window[k];
        }
        *o = acc;
    }
}

/// Output channel `o` reads input channel `o / (O / C)` only. For
/// each output row and kernel tap, the output positions whose input lies inside the
/// image get one multiply-add; with stride 1 that is a contiguous run the compiler
/// vectorises.
#[inline(always)]
fn by_column_runs(conv: &Depthwise, y: &mut [f32]) {
    let Depthwise {
        attrs,
        x,
        x_shape: [batch, channels, height, width],
        w,
        kernel: [kernel_h, kernel_w],
        bias,
        act,
        y_shape: [_, out_channels, out_height, out_width],
    } = *conv;
    let [stride_h, stride_w] = attrs.stride;
    let [dilation_h, dilation_w] = attrs.dilation;
    let [pad_top, pad_left, _, _] = attrs.pads;
    let multiplier = out_channels / channels;
    // Which output columns each kernel column reaches depends on neither the row nor the
    // channel: work it out once.
    let mut runs = [None; MAX_DEPTHWISE_TAPS];
    for (kj, run) in runs.iter_mut().enumerate().take(kernel_w) {
        *run = columns::inside(width, out_width, pad_left, stride_w, kj * dilation_w);
    }
    let mut taps = [0.0f32; MAX_DEPTHWISE_TAPS];
    for image in 0..batch {
        for o in 0..out_channels {
            taps.fill(0.0);
            w.for_each_in_row(o, |col, v| taps[col] = v);
            let c = image * channels + o / multiplier;
            let plane = &x[c * height * width..(c + 1) * height * width];
            let out_start = (image * out_channels + o) * out_height * out_width;
            let out_plane = &mut y[out_start..out_start + out_height * out_width];
            out_plane.fill(bias.map_or(0.0, |b| b[o]));
            for (oy, out_row) in out_plane.chunks_exact_mut(out_width).enumerate() {
                for ki in 0..kernel_h {
                    let Some(iy) = (oy * stride_h + ki * dilation_h)
                        .checked_sub(pad_top)
                        .filter(|&iy| iy < height)
                    else {
                        continue;
                    };
                    let line = &plane[iy * width..(iy + 1) * width];
                    for (kj, run) in runs.iter().enumerate().take(kernel_w) {
                        let tap = taps[ki * kernel_w + kj];
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
            activation::apply(act, out_plane);
        }
    }
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
                act: Activation::None,
                y_shape,
            };
            let want = by_definition(&conv, &weights, &bias);
            let mut paths: Vec<(&str, Path)> =
                vec![("lines", by_padded_lines), ("runs", by_column_runs)];
            if stride == [1, 1] {
                paths.push(("planes", by_padded_planes));
            }
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
