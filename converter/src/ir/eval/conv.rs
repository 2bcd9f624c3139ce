//! Convolution and transposed convolution over NCHW tensors.
//!
//! candle's `conv2d` takes one symmetric padding and one stride and dilation for both
//! axes, so asymmetric padding is applied explicitly, a dilation that differs between the
//! axes is built into the kernel (zeros spread between its taps), and a stride that differs
//! is a stride-1 convolution followed by subsampling. Transposed convolution is the
//! convolution of the input spread by the stride with the flipped, transposed kernel.

use candle_core::Tensor;
use lopper_runtime::graph::{Conv2d, ConvTranspose2d};

use super::{add_channel_bias, expect_rank, index_tensor, with_optional_bias, Fail, OpResult};

/// `Op::Conv2d`: inputs `x [N, C, H, W], weight [O, C / groups, kh, kw][, bias [O]]`.
pub(super) fn conv2d(p: &Conv2d, args: &[Tensor]) -> OpResult {
    let (x, w, bias) = with_optional_bias(args)?;
    expect_rank(x, 4, "input")?;
    expect_rank(w, 4, "weight")?;
    let (channels, outputs) = (x.dims()[1], w.dims()[0]);
    let g = p.groups;
    if g == 0 || channels % g != 0 || outputs % g != 0 || w.dims()[1] * g != channels {
        return Err(Fail::Invalid(format!(
            "{g} groups do not fit input {:?} and weight {:?}",
            x.dims(),
            w.dims()
        )));
    }
    let [top, left, bottom, right] = p.pads;
    let x = x
        .pad_with_zeros(2, top, bottom)?
        .pad_with_zeros(3, left, right)?;
    let y = convolve(&x, w, p.stride, p.dilation, g)?;
    add_channel_bias(y, bias)
}

/// `Op::ConvTranspose2d`: inputs `x [N, C, H, W], weight [C, O / groups, kh, kw][, bias
/// [O]]`. Every input pixel scatters its kernel-weighted contribution to
/// `(iy * stride + ky * dilation - pad_top, ix * stride + kx * dilation - pad_left)`.
pub(super) fn conv_transpose2d(p: &ConvTranspose2d, args: &[Tensor]) -> OpResult {
    let (x, w, bias) = with_optional_bias(args)?;
    expect_rank(x, 4, "input")?;
    expect_rank(w, 4, "weight")?;
    let (n, channels, height, width) = x.dims4()?;
    let (w_channels, group_outputs, kh, kw) = w.dims4()?;
    let g = p.groups;
    if g == 0 || channels % g != 0 || w_channels != channels {
        return Err(Fail::Invalid(format!(
            "weight {:?} with {g} groups does not fit input {:?}",
            w.dims(),
            x.dims()
        )));
    }
    if p.stride.contains(&0) || p.dilation.contains(&0) || kh == 0 || kw == 0 {
        return Err(Fail::Invalid(
            "stride, dilation and kernel must be positive".to_string(),
        ));
    }
    if n * channels * height * width == 0 {
        return Err(Fail::Invalid(format!("input {:?} is empty", x.dims())));
    }
    // The equivalent convolution kernel: per group, [C/g, O/g] becomes [O/g, C/g], the taps
    // are flipped, then dilated.
    let kernel = w
        .reshape((g, channels / g, group_outputs, kh, kw))?
        .transpose(1, 2)?
        .reshape((g * group_outputs, channels / g, kh, kw))?
        .flip(&[2, 3])?;
    let kernel = spread(
        &spread(&kernel, 2, p.dilation[0] - 1)?,
        3,
        p.dilation[1] - 1,
    )?;
    let (eh, ew) = (kernel.dims()[2], kernel.dims()[3]);
    // Input spread by the stride and padded so that every tap that touches it counts: the
    // full output has `(H - 1) * stride + eh` rows.
    let x = spread(&spread(x, 2, p.stride[0] - 1)?, 3, p.stride[1] - 1)?;
    let x = x
        .pad_with_zeros(2, eh - 1, eh - 1)?
        .pad_with_zeros(3, ew - 1, ew - 1)?;
    let full = convolve(&x, &kernel, [1, 1], [1, 1], g)?
        .pad_with_zeros(2, 0, p.output_padding[0])?
        .pad_with_zeros(3, 0, p.output_padding[1])?;
    let [top, left, bottom, right] = p.pads;
    let crop = |dim: usize, begin: usize, end: usize| -> OpResult<(usize, usize)> {
        let len = full.dims()[dim];
        match len.checked_sub(begin).and_then(|l| l.checked_sub(end)) {
            Some(kept) if kept > 0 => Ok((begin, kept)),
            _ => Err(Fail::Invalid(format!(
                "pads {:?} remove the whole output of length {len}",
                p.pads
            ))),
        }
    };
    let (row0, rows) = crop(2, top, bottom)?;
    let (col0, cols) = crop(3, left, right)?;
    let y = full.narrow(2, row0, rows)?.narrow(3, col0, cols)?;
    add_channel_bias(y, bias)
}

/// Unpadded convolution of `x` with `w` and any per-axis stride and dilation.
fn convolve(
    x: &Tensor,
    w: &Tensor,
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> OpResult {
    if stride.contains(&0) || dilation.contains(&0) {
        return Err(Fail::Invalid(
            "stride and dilation must be positive".to_string(),
        ));
    }
    let (w, dilation) = if dilation[0] == dilation[1] {
        (w.clone(), dilation[0])
    } else {
        let w = spread(&spread(w, 2, dilation[0] - 1)?, 3, dilation[1] - 1)?;
        (w, 1)
    };
    // candle computes the output size unchecked: make sure the kernel fits.
    let (height, width) = (x.dims()[2], x.dims()[3]);
    let (kh, kw) = (w.dims()[2], w.dims()[3]);
    let extent = |k: usize| k.checked_sub(1).map(|k| k * dilation + 1);
    let fits = |len: usize, k: usize| extent(k).is_some_and(|e| e <= len);
    if !fits(height, kh) || !fits(width, kw) {
        return Err(Fail::Invalid(format!(
            "kernel {:?} with dilation {dilation} does not fit the padded input {:?}",
            w.dims(),
            x.dims()
        )));
    }
    if groups == 1 {
        return im2col_convolve(x, &w, stride, dilation);
    }
    if stride[0] == stride[1] {
        // Drop trailing rows and columns no window reaches: candle's conv2d backward
        // derives the input-gradient size from the height alone and fails when the two
        // axes leave different remainders.
        let s = stride[0];
        let used = |len: usize, k: usize| {
            let e = (k - 1) * dilation + 1;
            (len - e) / s * s + e
        };
        let x = x
            .narrow(2, 0, used(height, kh))?
            .narrow(3, 0, used(width, kw))?;
        return Ok(x.conv2d(&w, 0, s, dilation, groups)?);
    }
    let y = x.conv2d(&w, 0, 1, dilation, groups)?;
    subsample(&subsample(&y, 2, stride[0])?, 3, stride[1])
}

/// Ungrouped convolution as one matrix product: one `index_select` gathers every tap of
/// every window into columns `[N, C * kh * kw, OH * OW]` (im2col), which multiply the
/// weight matrix `[O, C * kh * kw]`. Forward and backward are then a gather, a scatter-add
/// and matrix products, which candle runs far faster than its direct convolution; training
/// spends most of its time here.
fn im2col_convolve(x: &Tensor, w: &Tensor, stride: [usize; 2], dilation: usize) -> OpResult {
    let (n, c, h, wd) = x.dims4()?;
    let (o, _, kh, kw) = w.dims4()?;
    let out = |len: usize, k: usize, s: usize| (len - ((k - 1) * dilation + 1)) / s + 1;
    let (oh, ow) = (out(h, kh, stride[0]), out(wd, kw, stride[1]));
    let mut positions = Vec::with_capacity(kh * kw * oh * ow);
    for ky in 0..kh {
        for kx in 0..kw {
            for oy in 0..oh {
                let row = (oy * stride[0] + ky * dilation) * wd;
                positions.extend((0..ow).map(|ox| row + ox * stride[1] + kx * dilation));
            }
        }
    }
    let columns = x
        .reshape((n, c, h * wd))?
        .index_select(&index_tensor(&positions)?, 2)?
        .reshape((n, c * kh * kw, oh * ow))?;
    let y = w.reshape((o, c * kh * kw))?.broadcast_matmul(&columns)?;
    Ok(y.reshape((n, o, oh, ow))?)
}

/// Every `step`-th element of `t` along `dim`, starting with the first.
fn subsample(t: &Tensor, dim: usize, step: usize) -> OpResult {
    if step == 1 {
        return Ok(t.clone());
    }
    let indices: Vec<usize> = (0..t.dims()[dim]).step_by(step).collect();
    Ok(t.index_select(&index_tensor(&indices)?, dim)?)
}

/// `t` with `gap` zeros inserted between consecutive elements along `dim`: a length `n`
/// becomes `(n - 1) * (gap + 1) + 1`. Made of padding and reshapes, so it is exact and
/// differentiable.
fn spread(t: &Tensor, dim: usize, gap: usize) -> OpResult {
    let n = t.dims()[dim];
    if gap == 0 || n < 2 {
        return Ok(t.clone());
    }
    let mut dims = t.dims().to_vec();
    dims[dim] = n * (gap + 1);
    let widened = t
        .unsqueeze(dim + 1)?
        .pad_with_zeros(dim + 1, 0, gap)?
        .reshape(dims)?;
    Ok(widened.narrow(dim, 0, (n - 1) * (gap + 1) + 1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape, &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[track_caller]
    fn close(got: &Tensor, shape: &[usize], want: &[f32]) {
        assert_eq!(got.dims(), shape);
        let got = values(got);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5, "{got:?} vs {want:?}");
        }
    }

    /// x = [1 2 3; 4 5 6; 7 8 9].
    fn x3x3() -> Tensor {
        t(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3])
    }

    #[test]
    fn plain_2x2_kernel() {
        // k = [1 0; 2 -1]: y[i][j] = x[i][j] + 2 x[i+1][j] - x[i+1][j+1], plus bias 0.5.
        // y00 = 1 + 8 - 5 = 4, y01 = 2 + 10 - 6 = 6, y10 = 4 + 14 - 8 = 10,
        // y11 = 5 + 16 - 9 = 12.
        let k = t(&[1., 0., 2., -1.], &[1, 1, 2, 2]);
        let y = conv2d(&Conv2d::default(), &[x3x3(), k, t(&[0.5], &[1])]).unwrap();
        close(&y, &[1, 1, 2, 2], &[4.5, 6.5, 10.5, 12.5]);
    }

    #[test]
    fn asymmetric_pads_and_stride() {
        // Pads top 1, left 0, bottom 0, right 1 give the 4x4 padded input
        // [0 0 0 0; 1 2 3 0; 4 5 6 0; 7 8 9 0]; k = [1 1; 1 1] with stride 2 sums the
        // 2x2 blocks at rows 0 and 2, columns 0 and 2: 0+0+1+2 = 3, 0+0+3+0 = 3,
        // 4+5+7+8 = 24, 6+0+9+0 = 15.
        let p = Conv2d {
            stride: [2, 2],
            pads: [1, 0, 0, 1],
            ..Conv2d::default()
        };
        let k = t(&[1.; 4], &[1, 1, 2, 2]);
        let y = conv2d(&p, &[x3x3(), k]).unwrap();
        close(&y, &[1, 1, 2, 2], &[3., 3., 24., 15.]);
    }

    #[test]
    fn unequal_stride_and_dilation() {
        // Dilation [2, 1] makes k = [1 2; 3 4] read rows i and i+2, columns j and j+1:
        // y[0][j] = x[0][j] + 2 x[0][j+1] + 3 x[2][j] + 4 x[2][j+1]: j=0: 1+4+21+32 = 58,
        // j=1: 2+6+24+36 = 68. Stride [1, 2] keeps column 0 only.
        let p = Conv2d {
            stride: [1, 2],
            dilation: [2, 1],
            ..Conv2d::default()
        };
        let k = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
        let y = conv2d(&p, &[x3x3(), k.clone()]).unwrap();
        close(&y, &[1, 1, 1, 1], &[58.]);
        let p = Conv2d {
            dilation: [2, 1],
            ..Conv2d::default()
        };
        let y = conv2d(&p, &[x3x3(), k]).unwrap();
        close(&y, &[1, 1, 1, 2], &[58., 68.]);
    }

    #[test]
    fn groups_are_separate() {
        // Two channels (x and 10 x), two groups, 1x1 kernels 2 and -1: channel 0 doubles
        // x, channel 1 is -10 x.
        let x = Tensor::cat(&[x3x3(), (x3x3() * 10.0).unwrap()], 1).unwrap();
        let p = Conv2d {
            groups: 2,
            ..Conv2d::default()
        };
        let y = conv2d(&p, &[x, t(&[2., -1.], &[2, 1, 1, 1])]).unwrap();
        let want: Vec<f32> = (1..=9)
            .map(|v| 2.0 * v as f32)
            .chain((1..=9).map(|v| -10.0 * v as f32))
            .collect();
        close(&y, &[1, 2, 3, 3], &want);
    }

    #[test]
    fn bad_groups_and_oversized_kernel_are_errors() {
        let p = Conv2d {
            groups: 2,
            ..Conv2d::default()
        };
        let k = t(&[1.; 4], &[1, 1, 2, 2]);
        assert!(matches!(conv2d(&p, &[x3x3(), k]), Err(Fail::Invalid(_))));
        let k = t(&[1.; 16], &[1, 1, 4, 4]);
        assert!(matches!(
            conv2d(&Conv2d::default(), &[x3x3(), k]),
            Err(Fail::Invalid(_))
        ));
    }

    #[test]
    fn transposed_stride_2() {
        // x = [1 2; 3 4], k = [1 2; 3 4], stride 2: the four input pixels paste x * k into
        // disjoint 2x2 blocks of a 4x4 output:
        // [1 2 2 4; 3 4 6 8; 3 6 4 8; 9 12 12 16].
        let p = ConvTranspose2d {
            stride: [2, 2],
            ..ConvTranspose2d::default()
        };
        let x = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
        let k = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
        let y = conv_transpose2d(&p, &[x.clone(), k.clone()]).unwrap();
        let want = [
            1., 2., 2., 4., 3., 4., 6., 8., 3., 6., 4., 8., 9., 12., 12., 16.,
        ];
        close(&y, &[1, 1, 4, 4], &want);
        // Pads [1, 0, 0, 1] drop the first row and the last column; output padding [1, 0]
        // adds a zero row at the bottom before that; bias 1 is added everywhere.
        let p = ConvTranspose2d {
            stride: [2, 2],
            pads: [1, 0, 0, 1],
            output_padding: [1, 0],
            ..ConvTranspose2d::default()
        };
        let y = conv_transpose2d(&p, &[x, k, t(&[1.], &[1])]).unwrap();
        let want = [4., 5., 7., 4., 7., 5., 10., 13., 13., 1., 1., 1.];
        close(&y, &[1, 1, 4, 3], &want);
    }

    #[test]
    fn transposed_overlap_dilation_groups() {
        // Stride 1, x = [1 2], k = [1 1 1] (1x3) with dilation 2 along the width: input j
        // lands on columns j, j+2, j+4: [1 2 1 2 1 2].
        let p = ConvTranspose2d {
            dilation: [1, 2],
            ..ConvTranspose2d::default()
        };
        let y = conv_transpose2d(
            &p,
            &[t(&[1., 2.], &[1, 1, 1, 2]), t(&[1.; 3], &[1, 1, 1, 3])],
        )
        .unwrap();
        close(&y, &[1, 1, 1, 6], &[1., 2., 1., 2., 1., 2.]);
        // Overlap: x = [1 2 3] (1x3), k = [1 10] (1x2), stride 1: [1, 12, 23, 30].
        // Two groups with one output channel each: channel 1 (x * 2) uses k = [-1 0].
        let x = t(&[1., 2., 3., 2., 4., 6.], &[1, 2, 1, 3]);
        let k = t(&[1., 10., -1., 0.], &[2, 1, 1, 2]);
        let p = ConvTranspose2d {
            groups: 2,
            ..ConvTranspose2d::default()
        };
        let y = conv_transpose2d(&p, &[x, k]).unwrap();
        close(&y, &[1, 2, 1, 4], &[1., 12., 23., 30., -2., -4., -6., 0.]);
    }

    #[test]
    fn transposed_cross_channel() {
        // One group, two inputs, three outputs: weight [2, 3, 1, 1], output o at a pixel
        // is sum over c of x[c] * w[c][o]. x = (1, 2) at one pixel, w rows (1 2 3),
        // (4 5 6): outputs 1+8 = 9, 2+10 = 12, 3+12 = 15.
        let x = t(&[1., 2.], &[1, 2, 1, 1]);
        let w = t(&[1., 2., 3., 4., 5., 6.], &[2, 3, 1, 1]);
        let y = conv_transpose2d(&ConvTranspose2d::default(), &[x, w]).unwrap();
        close(&y, &[1, 3, 1, 1], &[9., 12., 15.]);
    }
}
