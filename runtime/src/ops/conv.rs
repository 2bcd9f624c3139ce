//! 2-D convolution over NCHW input, lowered to `weight_matmul`: each image and group is
//! unfolded (im2col) into a `[C / groups * kh * kw, OH * OW]` matrix that the weight
//! matrix `[O, C / groups * kh * kw]` multiplies, a band of output rows at a time so that
//! the unfolded band stays in cache (and the scratch small). 1x1 kernels with stride 1
//! multiply the input in place; depthwise convolutions (one input channel per group) run
//! in their own kernel family, `kernels::depthwise`.

use core::ops::Range;

use crate::graph::{Activation, Conv2d};
use crate::kernels::columns;
use crate::kernels::depthwise::{depthwise, Depthwise, MAX_DEPTHWISE_TAPS};
use crate::kernels::parallel::Parallel;
use crate::kernels::weight_matmul::weight_matmul_parallel;
use crate::weights::WeightMatrix;

/// A 1x1 kernel with stride 1 and no padding reads each group's input channels as they
/// are: `[C / groups, H * W]` is already the matrix to multiply.
fn needs_im2col(attrs: &Conv2d, kernel: [usize; 2]) -> bool {
    kernel != [1, 1] || attrs.stride != [1, 1] || attrs.pads != [0; 4]
}

/// Each output channel reads a single input channel: the depthwise kernel applies.
fn is_depthwise(attrs: &Conv2d, channels: usize) -> bool {
    channels == attrs.groups
}

/// Unfolded elements one band aims at (512 KiB, half this machine class's L2): the band
/// is written once and read by every block of weight rows, so it should stay in cache.
const BAND_ELEMENTS: usize = 1 << 17;

/// Output positions a band holds at least: every band packs the weights again, which
/// costs more than the cache saves on narrower bands.
const MIN_BAND_OUTPUTS: usize = 256;

/// Output rows per im2col band for `cols` unfolded rows: at least one, at most all.
fn band_rows(cols: usize, [out_height, out_width]: [usize; 2]) -> usize {
    let fit = BAND_ELEMENTS / cols.saturating_mul(out_width).max(1);
    let wide_enough = MIN_BAND_OUTPUTS.div_ceil(out_width.max(1));
    fit.max(wide_enough).clamp(1, out_height.max(1))
}

/// Scratch elements `conv2d` needs: one band of one group's im2col matrix, plus the band's
/// output when the image takes several bands; 0 when the input is used in place. Shapes
/// are the verified NCHW input and output; `None` on overflow.
pub fn conv2d_scratch_len(
    attrs: &Conv2d,
    x_shape: [usize; 4],
    kernel: [usize; 2],
    y_shape: [usize; 4],
) -> Option<usize> {
    if !needs_im2col(attrs, kernel) || depthwise_applies(attrs, x_shape[1], kernel) {
        return Some(0);
    }
    let groups = attrs.groups.max(1);
    let cols = (x_shape[1] / groups)
        .checked_mul(kernel[0])?
        .checked_mul(kernel[1])?;
    let rows = band_rows(cols, [y_shape[2], y_shape[3]]);
    let n = rows.checked_mul(y_shape[3])?;
    let output = if rows < y_shape[2] {
        y_shape[1] / groups
    } else {
        0
    };
    cols.checked_add(output)?.checked_mul(n)
}

/// Convolution of `x` (`x_shape = [N, C, H, W]`) with the weight matrix `w`
/// (`[O, C / groups * kh * kw]`, from `[O, C / groups, kh, kw]`) into `y` (`y_shape =
/// [N, O, OH, OW]`), adding `bias[o]` and applying `act`. `scratch` holds at least
/// `conv2d_scratch_len` elements. Output channels are split across `par`'s threads.
/// Never allocates.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    par: Parallel,
    attrs: &Conv2d,
    x: &[f32],
    x_shape: [usize; 4],
    w: &WeightMatrix,
    kernel: [usize; 2],
    bias: Option<&[f32]>,
    act: Activation,
    scratch: &mut [f32],
    y: &mut [f32],
    y_shape: [usize; 4],
) {
    let [batch, channels, height, width] = x_shape;
    let [_, out_channels, out_height, out_width] = y_shape;
    let groups = attrs.groups;
    let group_channels = channels / groups;
    let group_outputs = out_channels / groups;
    let spatial = out_height * out_width;
    let group_input_len = group_channels * height * width;
    let group_output_len = group_outputs * spatial;
    debug_assert_eq!(w.rows, out_channels);
    debug_assert_eq!(w.cols, group_channels * kernel[0] * kernel[1]);
    if depthwise_applies(attrs, channels, kernel) {
        let conv = Depthwise {
            attrs,
            x,
            x_shape,
            w,
            kernel,
            bias,
            act,
            y_shape,
        };
        depthwise(&conv, y);
        return;
    }
    if !needs_im2col(attrs, kernel) {
        for image in 0..batch {
            for g in 0..groups {
                let input_start = (image * groups + g) * group_input_len;
                let output_start = (image * groups + g) * group_output_len;
                weight_matmul_parallel(
                    par,
                    w,
                    g * group_outputs..(g + 1) * group_outputs,
                    &x[input_start..input_start + group_input_len],
                    spatial,
                    bias,
                    act,
                    &mut y[output_start..output_start + group_output_len],
                );
            }
        }
        return;
    }

    let rows_per_band = band_rows(w.cols, [out_height, out_width]);
    let (columns, band_out) = scratch.split_at_mut(w.cols * rows_per_band * out_width);
    for image in 0..batch {
        for g in 0..groups {
            let input_start = (image * groups + g) * group_input_len;
            let x_group = &x[input_start..input_start + group_input_len];
            let output_start = (image * groups + g) * group_output_len;
            let y_group = &mut y[output_start..output_start + group_output_len];
            for oy0 in (0..out_height).step_by(rows_per_band) {
                let band = oy0..(oy0 + rows_per_band).min(out_height);
                let n = band.len() * out_width;
                let columns = &mut columns[..w.cols * n];
                let shape = [group_channels, height, width];
                im2col(attrs, x_group, shape, kernel, out_width, band, columns);
                let rows = g * group_outputs..(g + 1) * group_outputs;
                if rows_per_band >= out_height {
                    weight_matmul_parallel(par, w, rows, columns, n, bias, act, y_group);
                    continue;
                }
                let band_out = &mut band_out[..group_outputs * n];
                weight_matmul_parallel(par, w, rows, columns, n, bias, act, band_out);
                for (o, out) in band_out.chunks_exact(n).enumerate() {
                    let start = o * spatial + oy0 * out_width;
                    y_group[start..start + n].copy_from_slice(out);
                }
            }
        }
    }
}

/// Whether `conv2d` runs the depthwise kernel rather than unfolding.
fn depthwise_applies(attrs: &Conv2d, channels: usize, kernel: [usize; 2]) -> bool {
    is_depthwise(attrs, channels) && kernel[0] * kernel[1] <= MAX_DEPTHWISE_TAPS
}

/// Unfolds output rows `band` of one group's input `[c, h, w]` into `columns`, row
/// `(ci * kh + ki) * kw + kj` holding, for every output position of the band, the input
/// under kernel tap `(ki, kj)` of channel `ci` (0 in the padding).
fn im2col(
    attrs: &Conv2d,
    x: &[f32],
    [channels, height, width]: [usize; 3],
    [kernel_h, kernel_w]: [usize; 2],
    out_width: usize,
    band: Range<usize>,
    columns: &mut [f32],
) {
    let [stride_h, stride_w] = attrs.stride;
    let [dilation_h, dilation_w] = attrs.dilation;
    let [pad_top, pad_left, _, _] = attrs.pads;
    let n = band.len() * out_width;
    for c in 0..channels {
        let plane = &x[c * height * width..(c + 1) * height * width];
        for ki in 0..kernel_h {
            for kj in 0..kernel_w {
                let row = (c * kernel_h + ki) * kernel_w + kj;
                let out_row = &mut columns[row * n..(row + 1) * n];
                // Output columns inside the line; the rest is padding.
                let run = columns::inside(width, out_width, pad_left, stride_w, kj * dilation_w);
                for (oy, out_line) in band.clone().zip(out_row.chunks_exact_mut(out_width)) {
                    let iy = (oy * stride_h + ki * dilation_h)
                        .checked_sub(pad_top)
                        .filter(|&iy| iy < height);
                    let line = iy.map_or(&[][..], |iy| &plane[iy * width..(iy + 1) * width]);
                    columns::gather(line, iy.and(run), stride_w, out_line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode::tests::{all_encodings, sparse_matrix};
    use crate::format::encode::{decode_dense, encode};
    use crate::graph::{LayoutKind, Storage};
    use crate::ops::activation::apply_one;
    use alloc::vec;
    use alloc::vec::Vec;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    const X_3X3: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    const K_2X2: [f32; 4] = [1.0, 2.0, 3.0, 4.0];

    /// Runs `conv2d` on one image with a dense f32 weight, allocating what it needs.
    fn conv_f32(
        attrs: &Conv2d,
        x: &[f32],
        x_shape: [usize; 4],
        weight: &[f32],
        kernel: [usize; 2],
        bias: Option<&[f32]>,
        y_shape: [usize; 4],
    ) -> Vec<f32> {
        let cols = weight.len() / y_shape[1];
        let e = encode(weight, y_shape[1], cols, LayoutKind::Dense, Storage::F32).unwrap();
        let mut scratch =
            vec![f32::NAN; conv2d_scratch_len(attrs, x_shape, kernel, y_shape).unwrap()];
        let mut y = vec![f32::NAN; y_shape.iter().product()];
        conv2d(
            Parallel::SERIAL,
            attrs,
            x,
            x_shape,
            &e.view(),
            kernel,
            bias,
            Activation::None,
            &mut scratch,
            &mut y,
            y_shape,
        );
        y
    }

    #[test]
    fn three_by_three_with_two_by_two_kernel_by_hand() {
        // x = [1 2 3; 4 5 6; 7 8 9], k = [1 2; 3 4], bias 1:
        // y00 = 1 + 4 + 12 + 20 + 1 = 38, y01 = 2 + 6 + 15 + 24 + 1 = 48,
        // y10 = 4 + 10 + 21 + 32 + 1 = 68, y11 = 5 + 12 + 24 + 36 + 1 = 78.
        let attrs = Conv2d::default();
        let y = conv_f32(
            &attrs,
            &X_3X3,
            [1, 1, 3, 3],
            &K_2X2,
            [2, 2],
            Some(&[1.0]),
            [1, 1, 2, 2],
        );
        assert_eq!(y, [38.0, 48.0, 68.0, 78.0]);
    }

    #[test]
    fn padded_and_strided_by_hand() {
        // Pads 1 all round, stride 2: windows start at (-1, -1), (-1, 1), (1, -1), (1, 1).
        // y00 = 4 * x00 = 4, y01 = 3 * x01 + 4 * x02 = 18, y10 = 2 * x10 + 4 * x20 = 36,
        // y11 = 1 * 5 + 2 * 6 + 3 * 8 + 4 * 9 = 77.
        let attrs = Conv2d {
            stride: [2, 2],
            pads: [1, 1, 1, 1],
            ..Conv2d::default()
        };
        let y = conv_f32(
            &attrs,
            &X_3X3,
            [1, 1, 3, 3],
            &K_2X2,
            [2, 2],
            None,
            [1, 1, 2, 2],
        );
        assert_eq!(y, [4.0, 18.0, 36.0, 77.0]);
    }

    #[test]
    fn dilated_by_hand() {
        // Dilation 2 spreads the 2x2 kernel over the corners of the 3x3 input:
        // 1 * 1 + 2 * 3 + 3 * 7 + 4 * 9 = 64.
        let attrs = Conv2d {
            dilation: [2, 2],
            ..Conv2d::default()
        };
        let y = conv_f32(
            &attrs,
            &X_3X3,
            [1, 1, 3, 3],
            &K_2X2,
            [2, 2],
            None,
            [1, 1, 1, 1],
        );
        assert_eq!(y, [64.0]);
    }

    #[test]
    fn scratch_is_needed_only_to_unfold() {
        let pointwise = Conv2d::default();
        let grouped = Conv2d {
            groups: 2,
            ..Conv2d::default()
        };
        let strided = Conv2d {
            stride: [2, 2],
            ..Conv2d::default()
        };
        assert_eq!(
            conv2d_scratch_len(&pointwise, [1, 8, 5, 5], [1, 1], [1, 4, 5, 5]),
            Some(0)
        );
        assert_eq!(
            conv2d_scratch_len(&grouped, [1, 8, 5, 5], [1, 1], [1, 4, 5, 5]),
            Some(0)
        );
        assert_eq!(
            conv2d_scratch_len(&strided, [1, 8, 5, 5], [1, 1], [1, 4, 3, 3]),
            Some(8 * 9)
        );
        assert_eq!(
            conv2d_scratch_len(&grouped, [1, 8, 5, 5], [3, 3], [1, 4, 3, 3]),
            Some(4 * 9 * 9)
        );
        // 576 unfolded rows of 45 outputs: bands of 6 output rows plus their outputs.
        let padded = Conv2d {
            pads: [1; 4],
            ..Conv2d::default()
        };
        assert_eq!(band_rows(576, [12, 45]), 6);
        assert_eq!(
            conv2d_scratch_len(&padded, [1, 64, 12, 45], [3, 3], [1, 4, 12, 45]),
            Some((576 + 4) * 6 * 45)
        );
        let depthwise = Conv2d {
            groups: 8,
            pads: [1; 4],
            ..Conv2d::default()
        };
        assert_eq!(
            conv2d_scratch_len(&depthwise, [1, 8, 5, 5], [3, 3], [1, 8, 5, 5]),
            Some(0)
        );
    }

    /// Direct convolution from the definition, with explicit padding checks.
    #[allow(clippy::too_many_arguments)]
    fn naive_conv(
        attrs: &Conv2d,
        x: &[f32],
        [batch, channels, height, width]: [usize; 4],
        weight: &[f32],
        [kernel_h, kernel_w]: [usize; 2],
        bias: &[f32],
        act: Activation,
        [_, out_channels, out_height, out_width]: [usize; 4],
    ) -> Vec<f32> {
        let group_channels = channels / attrs.groups;
        let group_outputs = out_channels / attrs.groups;
        let mut y = Vec::new();
        for n in 0..batch {
            for o in 0..out_channels {
                let g = o / group_outputs;
                for oh in 0..out_height {
                    for ow in 0..out_width {
                        let mut sum = bias[o];
                        for c in 0..group_channels {
                            for kh in 0..kernel_h {
                                for kw in 0..kernel_w {
                                    let ih = (oh * attrs.stride[0] + kh * attrs.dilation[0])
                                        as isize
                                        - attrs.pads[0] as isize;
                                    let iw = (ow * attrs.stride[1] + kw * attrs.dilation[1])
                                        as isize
                                        - attrs.pads[1] as isize;
                                    if ih < 0
                                        || iw < 0
                                        || ih >= height as isize
                                        || iw >= width as isize
                                    {
                                        continue;
                                    }
                                    let ic = g * group_channels + c;
                                    let xv = x[((n * channels + ic) * height + ih as usize)
                                        * width
                                        + iw as usize];
                                    let wv = weight[((o * group_channels + c) * kernel_h + kh)
                                        * kernel_w
                                        + kw];
                                    sum += xv * wv;
                                }
                            }
                        }
                        y.push(apply_one(act, sum));
                    }
                }
            }
        }
        y
    }

    struct Case {
        channels: usize,
        outputs: usize,
        size: [usize; 2],
        kernel: [usize; 2],
        attrs: Conv2d,
    }

    fn case(
        [channels, outputs, groups]: [usize; 3],
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        pads: [usize; 4],
    ) -> Case {
        Case {
            channels,
            outputs,
            size,
            kernel,
            attrs: Conv2d {
                stride,
                dilation,
                pads,
                groups,
            },
        }
    }

    #[test]
    fn matches_direct_convolution_for_every_layout_and_storage() {
        let cases = [
            case([3, 4, 1], [6, 5], [3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
            case([4, 6, 2], [7, 8], [3, 3], [2, 2], [1, 1], [1, 0, 2, 1]),
            case([4, 4, 4], [7, 7], [3, 3], [1, 2], [2, 1], [2, 1, 0, 3]),
            case([4, 4, 4], [9, 6], [5, 3], [2, 1], [1, 2], [2, 1, 2, 1]),
            case([2, 3, 1], [9, 6], [5, 3], [2, 1], [1, 2], [2, 1, 2, 1]),
            case([5, 8, 1], [4, 4], [1, 1], [1, 1], [1, 1], [0, 0, 0, 0]),
            case([4, 6, 2], [5, 3], [1, 1], [1, 1], [2, 2], [0, 0, 0, 0]),
            case([3, 2, 1], [5, 5], [1, 1], [2, 2], [1, 1], [0, 0, 0, 0]),
            case([6, 6, 3], [6, 6], [3, 3], [2, 2], [2, 2], [3, 2, 1, 0]),
            case([6, 4, 2], [5, 4], [3, 3], [1, 1], [1, 1], [0, 0, 0, 0]),
            // Depthwise with a channel multiplier of 2, and a padded 5x5 one.
            case([3, 6, 3], [7, 6], [3, 3], [2, 1], [1, 1], [1, 1, 1, 1]),
            case([2, 2, 2], [6, 9], [5, 5], [1, 1], [1, 1], [2, 2, 2, 2]),
            // Images unfolded in bands of 6 output rows (576 x 45 elements per row, at least
            // 256 outputs): 6, 6, 2.
            case([128, 4, 2], [14, 45], [3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
            case([64, 3, 1], [24, 90], [3, 3], [2, 2], [1, 1], [1, 1, 1, 1]),
        ];
        let mut rng = SmallRng::seed_from_u64(42);
        let act = Activation::LeakyRelu { alpha: 0.1 };
        let batch = 2;
        let mut checked = 0;
        for c in &cases {
            let a = &c.attrs;
            let out_h = crate::ops::window::output_len(
                c.size[0],
                c.kernel[0],
                a.stride[0],
                a.dilation[0],
                a.pads[0],
                a.pads[2],
                false,
            );
            let out_w = crate::ops::window::output_len(
                c.size[1],
                c.kernel[1],
                a.stride[1],
                a.dilation[1],
                a.pads[1],
                a.pads[3],
                false,
            );
            let x_shape = [batch, c.channels, c.size[0], c.size[1]];
            let y_shape = [batch, c.outputs, out_h.unwrap(), out_w.unwrap()];
            let cols = c.channels / a.groups * c.kernel[0] * c.kernel[1];
            let x: Vec<f32> = (0..x_shape.iter().product())
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let weight = sparse_matrix(&mut rng, c.outputs, cols);
            let bias: Vec<f32> = (0..c.outputs).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let exact = naive_conv(a, &x, x_shape, &weight, c.kernel, &bias, act, y_shape);
            let scratch_len = conv2d_scratch_len(a, x_shape, c.kernel, y_shape).unwrap();
            for (layout, storage, e) in all_encodings(&weight, c.outputs, cols) {
                let stored = decode_dense(&e.view());
                let rounded = naive_conv(a, &x, x_shape, &stored, c.kernel, &bias, act, y_shape);
                let mut scratch = vec![f32::NAN; scratch_len];
                let mut y = vec![f32::NAN; y_shape.iter().product()];
                conv2d(
                    Parallel::SERIAL,
                    a,
                    &x,
                    x_shape,
                    &e.view(),
                    c.kernel,
                    Some(&bias),
                    act,
                    &mut scratch,
                    &mut y,
                    y_shape,
                );
                // Every stored weight is within `weight_error` of the original and |x| < 1,
                // so an output moves by at most `cols * weight_error`.
                let (tol, weight_error) = match storage {
                    Storage::F32 => (1e-5, 0.0),
                    Storage::F16 => (1e-4, 1.0 / 2048.0),
                    Storage::I8 => (1e-4, 1.0 / 254.0),
                };
                let loose = 1e-5 + cols as f32 * weight_error;
                for (i, ((got, r), e)) in y.iter().zip(&rounded).zip(&exact).enumerate() {
                    let what = || alloc::format!("{layout:?} {storage:?} {:?} [{i}]", c.attrs);
                    assert!((got - r).abs() <= tol, "{}: {got} vs {r}", what());
                    assert!((got - e).abs() <= loose, "{}: {got} vs exact {e}", what());
                }
                checked += 1;
            }
        }
        // N:M refuses the depthwise cases (9 and 25 columns) and the 5-channel 1x1 case (5
        // columns): all leave a last group of one column.
        assert_eq!(checked, (cases.len() * 9 - 4) * 3);
    }
}
