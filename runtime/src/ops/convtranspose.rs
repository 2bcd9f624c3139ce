//! 2-D transposed convolution over NCHW input, computed as a scatter: every stored weight
//! entry (input channel, output channel, kernel tap) adds its multiple of one input plane
//! into one output plane, so entries a sparse layout does not store cost nothing.

use core::ops::Range;

use crate::graph::{Activation, ConvTranspose2d};
use crate::ops::activation::apply;
use crate::weights::WeightMatrix;

/// Output length of one axis of a transposed convolution (ONNX `ConvTranspose` with
/// explicit pads): `stride * (input - 1) + output_padding + (kernel - 1) * dilation + 1 -
/// pad_begin - pad_end`. `None` when `input`, `kernel`, `stride` or `dilation` is zero,
/// when the pads remove the whole output, or on overflow.
pub fn conv_transpose_output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    [pad_begin, pad_end]: [usize; 2],
    output_padding: usize,
) -> Option<usize> {
    if stride == 0 || dilation == 0 {
        return None;
    }
    let extent = kernel
        .checked_sub(1)?
        .checked_mul(dilation)?
        .checked_add(1)?;
    let full = stride
        .checked_mul(input.checked_sub(1)?)?
        .checked_add(output_padding)?
        .checked_add(extent)?;
    full.checked_sub(pad_begin)?
        .checked_sub(pad_end)
        .filter(|&len| len > 0)
}

/// Transposed convolution of `x` (`x_shape = [N, C, H, W]`) with the weight matrix `w`
/// (`[C, O / groups * kh * kw]`, from the ONNX weight `[C, O / groups, kh, kw]`) into `y`
/// (`y_shape = [N, O, OH, OW]`, as `conv_transpose_output_len` gives), adding `bias[o]`
/// and applying `act`. Input pixel `(iy, ix)` under tap `(ki, kj)` lands on output
/// `(iy * stride_h + ki * dilation_h - pad_top, ix * stride_w + kj * dilation_w - pad_left)`
/// when that lies inside the output. Works with every sparsity and storage; never
/// allocates.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    attrs: &ConvTranspose2d,
    x: &[f32],
    x_shape: [usize; 4],
    w: &WeightMatrix,
    kernel: [usize; 2],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    y_shape: [usize; 4],
) {
    let [batch, channels, height, width] = x_shape;
    let [_, out_channels, out_height, out_width] = y_shape;
    let [kernel_h, kernel_w] = kernel;
    let group_channels = channels / attrs.groups;
    let group_outputs = out_channels / attrs.groups;
    let taps = kernel_h * kernel_w;
    let plane = height * width;
    let out_plane = out_height * out_width;
    debug_assert_eq!(w.rows, channels);
    debug_assert_eq!(w.cols, group_outputs * taps);

    for image in 0..batch {
        let y_image = &mut y[image * out_channels * out_plane..][..out_channels * out_plane];
        for (o, y_plane) in y_image.chunks_exact_mut(out_plane).enumerate() {
            y_plane.fill(bias.map_or(0.0, |b| b[o]));
        }
        for c in 0..channels {
            let x_plane = &x[(image * channels + c) * plane..][..plane];
            let first_output = c / group_channels * group_outputs;
            w.for_each_in_row(c, |col, v| {
                let o = first_output + col / taps;
                let (ki, kj) = (col % taps / kernel_w, col % taps % kernel_w);
                let rows = Landing::new(attrs, 0, ki, height, out_height);
                let cols = Landing::new(attrs, 1, kj, width, out_width);
                let y_plane = &mut y_image[o * out_plane..][..out_plane];
                for iy in rows.inputs.clone() {
                    let oy = rows.output(iy);
                    let x_row = &x_plane[iy * width..][..width];
                    let y_row = &mut y_plane[oy * out_width..][..out_width];
                    for ix in cols.inputs.clone() {
                        y_row[cols.output(ix)] += v * x_row[ix];
                    }
                }
            });
        }
    }
    apply(act, y);
}

/// Where one kernel tap sends the inputs of one axis: input `i` lands on output
/// `i * stride + offset - pad_begin`, for the inputs in `inputs` (those landing inside the
/// output).
struct Landing {
    inputs: Range<usize>,
    stride: usize,
    offset: usize,
    pad_begin: usize,
}

impl Landing {
    /// Axis 0 (height) or 1 (width), tap `k`, `input` and `output` lengths of the axis.
    fn new(attrs: &ConvTranspose2d, axis: usize, k: usize, input: usize, output: usize) -> Self {
        let stride = attrs.stride[axis];
        let offset = k * attrs.dilation[axis];
        let pad_begin = attrs.pads[axis];
        // Smallest i with i * stride + offset >= pad_begin, and one past the largest with
        // i * stride + offset < pad_begin + output.
        let first = pad_begin.saturating_sub(offset).div_ceil(stride);
        let end = (pad_begin + output)
            .checked_sub(offset)
            .map_or(0, |room| room.div_ceil(stride))
            .min(input);
        Landing {
            inputs: first..end.max(first),
            stride,
            offset,
            pad_begin,
        }
    }

    /// Output index of input `i` (one of `inputs`).
    fn output(&self, i: usize) -> usize {
        i * self.stride + self.offset - self.pad_begin
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

    /// Output shape for `attrs`, from the length rule.
    fn out_shape(
        attrs: &ConvTranspose2d,
        [n, _, h, w]: [usize; 4],
        outputs: usize,
        kernel: [usize; 2],
    ) -> [usize; 4] {
        let len = |axis: usize, input: usize| {
            conv_transpose_output_len(
                input,
                kernel[axis],
                attrs.stride[axis],
                attrs.dilation[axis],
                [attrs.pads[axis], attrs.pads[axis + 2]],
                attrs.output_padding[axis],
            )
            .unwrap()
        };
        [n, outputs, len(0, h), len(1, w)]
    }

    /// Runs the kernel with a dense f32 weight `[C, O / groups, kh, kw]`.
    fn run_f32(
        attrs: &ConvTranspose2d,
        x: &[f32],
        x_shape: [usize; 4],
        weight: &[f32],
        [outputs, kernel_h, kernel_w]: [usize; 3],
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        let kernel = [kernel_h, kernel_w];
        let y_shape = out_shape(attrs, x_shape, outputs, kernel);
        let cols = weight.len() / x_shape[1];
        let e = encode(weight, x_shape[1], cols, LayoutKind::Dense, Storage::F32).unwrap();
        let mut y = vec![f32::NAN; y_shape.iter().product()];
        conv_transpose2d(
            attrs,
            x,
            x_shape,
            &e.view(),
            kernel,
            bias,
            Activation::None,
            &mut y,
            y_shape,
        );
        y
    }

    #[test]
    fn output_length_rule() {
        // stride * (in - 1) + output_padding + (k - 1) * d + 1 - pads.
        assert_eq!(conv_transpose_output_len(2, 2, 1, 1, [0, 0], 0), Some(3));
        assert_eq!(conv_transpose_output_len(2, 2, 2, 1, [0, 0], 0), Some(4));
        assert_eq!(conv_transpose_output_len(2, 2, 2, 1, [1, 1], 0), Some(2));
        assert_eq!(conv_transpose_output_len(2, 2, 2, 1, [0, 0], 1), Some(5));
        // 2 * 2 + 1 + 5 - 3.
        assert_eq!(conv_transpose_output_len(3, 3, 2, 2, [1, 2], 1), Some(7));
        assert_eq!(conv_transpose_output_len(1, 1, 1, 1, [0, 0], 0), Some(1));
        // The pads would remove everything, or more.
        assert_eq!(conv_transpose_output_len(1, 1, 1, 1, [1, 0], 0), None);
        assert_eq!(conv_transpose_output_len(2, 2, 1, 1, [2, 2], 0), None);
        assert_eq!(conv_transpose_output_len(0, 2, 1, 1, [0, 0], 0), None);
        assert_eq!(conv_transpose_output_len(2, 0, 1, 1, [0, 0], 0), None);
        assert_eq!(conv_transpose_output_len(2, 2, 0, 1, [0, 0], 0), None);
        assert_eq!(conv_transpose_output_len(2, 2, 1, 0, [0, 0], 0), None);
        assert_eq!(
            conv_transpose_output_len(2, 2, usize::MAX, 1, [0, 0], 0),
            None
        );
    }

    #[test]
    fn stride_one_is_the_full_convolution() {
        // x = [1 2; 3 4] with an all-ones 2x2 kernel: each output sums the inputs whose
        // 2x2 footprint covers it: [1 3 2; 4 10 6; 3 7 4]; bias 0.5.
        let y = run_f32(
            &ConvTranspose2d::default(),
            &[1.0, 2.0, 3.0, 4.0],
            [1, 1, 2, 2],
            &[1.0; 4],
            [1, 2, 2],
            Some(&[0.5]),
        );
        assert_eq!(y, [1.5, 3.5, 2.5, 4.5, 10.5, 6.5, 3.5, 7.5, 4.5]);
    }

    #[test]
    fn stride_two_places_scaled_kernels_side_by_side() {
        // x = [1 2; 3 4], k = [1 2; 3 4], stride 2: each input pixel writes x * k into its
        // own 2x2 block: [1 2 2 4; 3 4 6 8; 3 6 4 8; 9 12 12 16].
        let attrs = ConvTranspose2d {
            stride: [2, 2],
            ..ConvTranspose2d::default()
        };
        let x = [1.0, 2.0, 3.0, 4.0];
        let k = [1.0, 2.0, 3.0, 4.0];
        let full = [
            1.0, 2.0, 2.0, 4.0, 3.0, 4.0, 6.0, 8.0, 3.0, 6.0, 4.0, 8.0, 9.0, 12.0, 12.0, 16.0,
        ];
        assert_eq!(run_f32(&attrs, &x, [1, 1, 2, 2], &k, [1, 2, 2], None), full);

        // Pads 1 all round crop that to its middle: [4 6; 6 4].
        let padded = ConvTranspose2d {
            pads: [1, 1, 1, 1],
            ..attrs
        };
        let y = run_f32(&padded, &x, [1, 1, 2, 2], &k, [1, 2, 2], None);
        assert_eq!(y, [4.0, 6.0, 6.0, 4.0]);

        // Output padding adds a last row and column that no input reaches: bias only.
        let extended = ConvTranspose2d {
            output_padding: [1, 1],
            ..attrs
        };
        let y = run_f32(&extended, &x, [1, 1, 2, 2], &k, [1, 2, 2], Some(&[-1.0]));
        for (r, row) in y.chunks(5).enumerate() {
            if r < 4 {
                let want: Vec<f32> = full[r * 4..(r + 1) * 4].iter().map(|v| v - 1.0).collect();
                assert_eq!(&row[..4], want.as_slice());
                assert_eq!(row[4], -1.0);
            } else {
                assert_eq!(row, [-1.0; 5]);
            }
        }
    }

    #[test]
    fn dilation_and_groups_by_hand() {
        // One row [1, 2] (H = 1), kernel 1x2 [1, 10] with dilation 2: taps at offsets 0
        // and 2: y = [1, 2, 10, 20].
        let attrs = ConvTranspose2d {
            dilation: [1, 2],
            ..ConvTranspose2d::default()
        };
        let y = run_f32(
            &attrs,
            &[1.0, 2.0],
            [1, 1, 1, 2],
            &[1.0, 10.0],
            [1, 1, 2],
            None,
        );
        assert_eq!(y, [1.0, 2.0, 10.0, 20.0]);

        // Two groups of one input and two outputs, 1x1 kernels: channel 0 (value 1) feeds
        // outputs 0, 1 with weights 2, 3; channel 1 (value 5) feeds outputs 2, 3 with 4, 5.
        let grouped = ConvTranspose2d {
            groups: 2,
            ..ConvTranspose2d::default()
        };
        let y = run_f32(
            &grouped,
            &[1.0, 5.0],
            [1, 2, 1, 1],
            &[2.0, 3.0, 4.0, 5.0],
            [4, 1, 1],
            None,
        );
        assert_eq!(y, [2.0, 3.0, 20.0, 25.0]);
    }

    /// Gather form of the definition: output `(oy, ox)` of output channel `o` collects
    /// every input `(iy, ix)` of its group and tap `(ki, kj)` with
    /// `iy * stride + ki * dilation == oy + pad_top` (and likewise for columns).
    #[allow(clippy::too_many_arguments)]
    fn naive(
        a: &ConvTranspose2d,
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        weight: &[f32],
        [kh, kw]: [usize; 2],
        bias: &[f32],
        act: Activation,
        [_, o_total, oh, ow]: [usize; 4],
    ) -> Vec<f32> {
        let cg = c / a.groups;
        let og = o_total / a.groups;
        let mut y = Vec::new();
        for b in 0..n {
            for o in 0..o_total {
                let g = o / og;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = bias[o];
                        for ci in g * cg..(g + 1) * cg {
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    let ty = (oy + a.pads[0]) as i64 - (ki * a.dilation[0]) as i64;
                                    let tx = (ox + a.pads[1]) as i64 - (kj * a.dilation[1]) as i64;
                                    let (sy, sx) = (a.stride[0] as i64, a.stride[1] as i64);
                                    if ty < 0 || tx < 0 || ty % sy != 0 || tx % sx != 0 {
                                        continue;
                                    }
                                    let (iy, ix) = ((ty / sy) as usize, (tx / sx) as usize);
                                    if iy >= h || ix >= w {
                                        continue;
                                    }
                                    let wv = weight[((ci * og + (o - g * og)) * kh + ki) * kw + kj];
                                    sum += wv * x[((b * c + ci) * h + iy) * w + ix];
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

    #[test]
    fn matches_the_gather_definition_for_every_layout_and_storage() {
        // (channels, outputs, groups), size, kernel, stride, dilation, pads, output padding.
        type Case = (
            [usize; 3],
            [usize; 2],
            [usize; 2],
            [usize; 2],
            [usize; 2],
            [usize; 4],
            [usize; 2],
        );
        let cases: [Case; 8] = [
            ([3, 4, 1], [4, 5], [3, 3], [1, 1], [1, 1], [0; 4], [0, 0]),
            (
                [4, 6, 2],
                [3, 4],
                [3, 3],
                [2, 2],
                [1, 1],
                [1, 1, 1, 1],
                [1, 1],
            ),
            (
                [2, 3, 1],
                [5, 3],
                [4, 2],
                [2, 3],
                [1, 1],
                [1, 0, 2, 1],
                [1, 2],
            ),
            (
                [4, 4, 4],
                [4, 4],
                [3, 3],
                [2, 1],
                [2, 2],
                [2, 1, 0, 3],
                [1, 0],
            ),
            (
                [6, 4, 2],
                [3, 3],
                [2, 2],
                [3, 3],
                [2, 1],
                [0, 2, 1, 0],
                [2, 1],
            ),
            ([5, 8, 1], [4, 4], [1, 1], [1, 1], [1, 1], [0; 4], [0, 0]),
            ([3, 2, 1], [3, 3], [1, 1], [2, 2], [1, 1], [0; 4], [1, 1]),
            (
                [6, 6, 3],
                [5, 4],
                [3, 2],
                [1, 2],
                [1, 3],
                [2, 2, 2, 2],
                [0, 1],
            ),
        ];
        let mut rng = SmallRng::seed_from_u64(17);
        let act = Activation::LeakyRelu { alpha: 0.1 };
        let mut checked = 0;
        for ([channels, outputs, groups], size, kernel, stride, dilation, pads, output_padding) in
            cases
        {
            let attrs = ConvTranspose2d {
                stride,
                dilation,
                pads,
                output_padding,
                groups,
            };
            let x_shape = [2, channels, size[0], size[1]];
            let y_shape = out_shape(&attrs, x_shape, outputs, kernel);
            let cols = outputs / groups * kernel[0] * kernel[1];
            let x: Vec<f32> = (0..x_shape.iter().product())
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let weight = sparse_matrix(&mut rng, channels, cols);
            let bias: Vec<f32> = (0..outputs).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let exact = naive(&attrs, &x, x_shape, &weight, kernel, &bias, act, y_shape);
            for (layout, storage, e) in all_encodings(&weight, channels, cols) {
                let stored = decode_dense(&e.view());
                let rounded = naive(&attrs, &x, x_shape, &stored, kernel, &bias, act, y_shape);
                let mut y = vec![f32::NAN; y_shape.iter().product()];
                conv_transpose2d(
                    &attrs,
                    &x,
                    x_shape,
                    &e.view(),
                    kernel,
                    Some(&bias),
                    act,
                    &mut y,
                    y_shape,
                );
                // Each output sums at most C / groups * kh * kw products with |x| < 1.
                let max_err = weight
                    .iter()
                    .zip(&stored)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                let terms = (channels / groups * kernel[0] * kernel[1]) as f32;
                let tol = max_err * terms + 1e-5;
                for (i, ((g, r), e)) in y.iter().zip(&rounded).zip(&exact).enumerate() {
                    assert!(
                        (g - r).abs() <= 1e-5,
                        "{attrs:?} {layout:?} {storage:?} [{i}]: {g} vs {r}"
                    );
                    assert!(
                        (g - e).abs() <= tol,
                        "{attrs:?} {layout:?} {storage:?} [{i}]: {g} vs exact {e}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 8 * 20, "only {checked} encodings checked");
    }
}
