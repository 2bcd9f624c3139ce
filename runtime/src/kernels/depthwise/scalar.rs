//! Portable implementation, also compiled with AVX2 + FMA by `x86.rs`: the loops over
//! output rows are written so that the compiler vectorises them.

use super::{Depthwise, MAX_DEPTHWISE_TAPS};
use crate::kernels::columns::{self, Run};
use crate::ops::activation;

/// See [`super::depthwise`]. Output channel `o` reads input channel `o / (O / C)` only. For
/// each output row and kernel tap, the output positions whose input lies inside the
/// image get one multiply-add; with stride 1 that is a contiguous run the compiler
/// vectorises.
#[inline(always)]
pub(super) fn depthwise(conv: &Depthwise, y: &mut [f32]) {
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
