//! Nearest and bilinear resize of the last two axes of an NCHW tensor, following the ONNX
//! reference implementation of Resize (opset 11-13).
//!
//! Output index `x` of an axis maps to the input coordinate given by the coordinate
//! transform, computed in f64 from the f32 scale, where the resized length is
//! `len * scale` (a float, as in the reference; it counts as 1 within f32 rounding).
//! Nearest rounds that coordinate by the nearest mode (an integral coordinate is taken as
//! it is) and clamps it into the axis; linear clamps it into `[0, len - 1]` and mixes its
//! two neighbours, along the width first and then along the height. The index choices
//! and weights depend only on shapes, so they are computed here and applied with
//! `index_select` and broadcast products.

use candle_core::{Device, Tensor};
use lopper_runtime::graph::{CoordinateTransform, NearestMode, Resize, ResizeMode};

use super::{expect_rank, index_tensor, operands, Fail, OpResult};

/// `Op::Resize` of `x [N, C, H, W]` to the declared output shape `[N, C, OH, OW]`.
pub(super) fn resize(r: &Resize, args: &[Tensor], out_shape: &[usize]) -> OpResult {
    let [x] = operands::<1>(args)?;
    expect_rank(x, 4, "input")?;
    let (n, c, h, w) = x.dims4()?;
    let &[out_n, out_c, oh, ow] = out_shape else {
        return Err(Fail::Invalid(format!(
            "output shape {out_shape:?} must have rank 4"
        )));
    };
    if (out_n, out_c) != (n, c) {
        return Err(Fail::Invalid(format!(
            "output shape {out_shape:?} does not keep the batch and channels of {:?}",
            x.dims()
        )));
    }
    if !r.scales.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(Fail::Invalid(format!(
            "scales {:?} must be finite and positive",
            r.scales
        )));
    }
    if h == 0 || w == 0 {
        return Err(Fail::Invalid(format!("input {:?} is empty", x.dims())));
    }
    let rows = Axis::new(r, 0, h);
    let cols = Axis::new(r, 1, w);
    match r.mode {
        ResizeMode::Nearest => {
            let pick = |axis: &Axis, out: usize| -> OpResult {
                let at: Vec<usize> = (0..out).map(|o| axis.nearest(o, r.nearest_mode)).collect();
                index_tensor(&at)
            };
            Ok(x.index_select(&pick(&rows, oh)?, 2)?
                .index_select(&pick(&cols, ow)?, 3)?)
        }
        ResizeMode::Linear => {
            let across = mix(x, 3, &cols, ow)?;
            mix(&across, 2, &rows, oh)
        }
    }
}

/// `t` resized along `dim` (2 or 3) to `out` by linear interpolation:
/// `(1 - f) * t[first] + f * t[second]` per output index.
fn mix(t: &Tensor, dim: usize, axis: &Axis, out: usize) -> OpResult {
    let (mut first, mut second, mut keep, mut take) = (vec![], vec![], vec![], vec![]);
    for o in 0..out {
        let (a, b, f) = axis.linear(o);
        first.push(a);
        second.push(b);
        keep.push(1.0 - f);
        take.push(f);
    }
    let mut weight_shape = vec![1; 4];
    weight_shape[dim] = out;
    let weight = |w: Vec<f32>| Tensor::from_vec(w, weight_shape.clone(), &Device::Cpu);
    let a = t
        .index_select(&index_tensor(&first)?, dim)?
        .broadcast_mul(&weight(keep)?)?;
    let b = t
        .index_select(&index_tensor(&second)?, dim)?
        .broadcast_mul(&weight(take)?)?;
    Ok(a.add(&b)?)
}

/// One resized axis: input length, scale and coordinate transform.
struct Axis {
    len: usize,
    scale: f64,
    transform: CoordinateTransform,
}

impl Axis {
    /// Axis 0 (height) or 1 (width) of `r` over an input of length `len` (not 0).
    fn new(r: &Resize, axis: usize, len: usize) -> Self {
        Axis {
            len,
            scale: f64::from(r.scales[axis]),
            transform: r.coordinate_transform,
        }
    }

    /// Input coordinate of output index `x`.
    fn coordinate(&self, x: usize) -> f64 {
        let (x, len) = (x as f64, self.len as f64);
        let resized = len * self.scale;
        // A scale stored as the f32 nearest `1 / len` still means one output.
        let resized_is_one = (resized - 1.0).abs() <= f64::from(f32::EPSILON);
        let half_pixel = (x + 0.5) / self.scale - 0.5;
        match self.transform {
            CoordinateTransform::HalfPixel => half_pixel,
            CoordinateTransform::PytorchHalfPixel if resized_is_one => -0.5,
            CoordinateTransform::PytorchHalfPixel => half_pixel,
            CoordinateTransform::AlignCorners if resized_is_one => 0.0,
            CoordinateTransform::AlignCorners => x * (len - 1.0) / (resized - 1.0),
            CoordinateTransform::Asymmetric => x / self.scale,
            CoordinateTransform::TfHalfPixelForNearest => (x + 0.5) / self.scale,
        }
    }

    /// `v` clamped into the axis as an index; NaN becomes 0.
    fn clamp(&self, v: f64) -> usize {
        if v.is_nan() {
            0
        } else {
            v.clamp(0.0, (self.len - 1) as f64) as usize
        }
    }

    /// Input index output `x` reads in nearest mode.
    fn nearest(&self, x: usize, mode: NearestMode) -> usize {
        let coord = self.coordinate(x);
        let below = coord.floor();
        let fraction = coord - below;
        let round_up = fraction > 0.0
            && match mode {
                NearestMode::RoundPreferFloor => fraction > 0.5,
                NearestMode::RoundPreferCeil => fraction >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
            };
        self.clamp(if round_up { below + 1.0 } else { below })
    }

    /// The two neighbours of output `x` in linear mode and the weight of the second.
    fn linear(&self, x: usize) -> (usize, usize, f32) {
        let coord = self.coordinate(x);
        let coord = if coord.is_nan() {
            0.0
        } else {
            coord.clamp(0.0, (self.len - 1) as f64)
        };
        let first = self.clamp(coord.floor());
        let second = (first + 1).min(self.len - 1);
        (first, second, (coord - first as f64) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CoordinateTransform::*;
    use NearestMode::*;

    /// Resizes one `h x w` plane to `out`.
    fn run(
        mode: ResizeMode,
        transform: CoordinateTransform,
        nearest_mode: NearestMode,
        x: &[f32],
        [h, w]: [usize; 2],
        [oh, ow]: [usize; 2],
        scales: [f32; 2],
    ) -> Vec<f32> {
        let r = Resize {
            mode,
            coordinate_transform: transform,
            nearest_mode,
            scales,
        };
        let x = Tensor::from_slice(x, (1, 1, h, w), &Device::Cpu).unwrap();
        let y = resize(&r, &[x], &[1, 1, oh, ow]).unwrap();
        y.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[track_caller]
    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5, "{got:?} vs {want:?}");
        }
    }

    const X2X2: [f32; 4] = [1., 2., 3., 4.];

    #[test]
    fn bilinear_half_pixel_upsample() {
        // Scale 2: (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to 0, 0.25,
        // 0.75, 1. Row [1 2] becomes [1 1.25 1.75 2], row [3 4] [3 3.25 3.75 4], and the
        // rows mix with the same weights.
        let y = run(
            ResizeMode::Linear,
            HalfPixel,
            RoundPreferFloor,
            &X2X2,
            [2, 2],
            [4, 4],
            [2., 2.],
        );
        let want = [
            1., 1.25, 1.75, 2., 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3., 3.25, 3.75, 4.,
        ];
        close(&y, &want);
    }

    #[test]
    fn bilinear_align_corners_uses_the_float_resized_length() {
        // 2 -> 3 along the width: x * 1 / 2 = 0, 0.5, 1 on [1 3]: 1, 2, 3.
        let y = run(
            ResizeMode::Linear,
            AlignCorners,
            RoundPreferFloor,
            &[1., 3.],
            [1, 2],
            [1, 3],
            [1., 1.5],
        );
        close(&y, &[1., 2., 3.]);
        // Width 4 by 0.6: resized length 2.4, so column 1 reads 1 * 3 / 1.4 = 2.142857,
        // between 3 and 4 of [1 2 3 4]: 3.142857. Height 2 by 0.6 is 1.2: row 0 at 0.
        let y = run(
            ResizeMode::Linear,
            AlignCorners,
            RoundPreferFloor,
            &[1., 2., 3., 4., 5., 6., 7., 8.],
            [2, 4],
            [1, 2],
            [0.6, 0.6],
        );
        close(&y, &[1., 3.142_857]);
    }

    #[test]
    fn pytorch_half_pixel_single_output() {
        // Width 3 with an f32 scale of 1/3 resizes to one column, at -0.5: clamped to 0.
        // Half pixel would read 0.5 * 3 - 0.5 = 1 instead.
        let x = [1., 2., 3.];
        let y = run(
            ResizeMode::Linear,
            PytorchHalfPixel,
            RoundPreferFloor,
            &x,
            [1, 3],
            [1, 1],
            [1., 1. / 3.],
        );
        close(&y, &[1.]);
        let y = run(
            ResizeMode::Linear,
            HalfPixel,
            RoundPreferFloor,
            &x,
            [1, 3],
            [1, 1],
            [1., 1. / 3.],
        );
        close(&y, &[2.]);
    }

    #[test]
    fn nearest_modes() {
        let x = [10., 11., 12., 13.];
        // Halving with half_pixel lands between inputs: (x + 0.5) * 2 - 0.5 = 0.5, 2.5.
        let halve = |m| {
            run(
                ResizeMode::Nearest,
                HalfPixel,
                m,
                &x,
                [1, 4],
                [1, 2],
                [1., 0.5],
            )
        };
        assert_eq!(halve(RoundPreferFloor), [10., 12.]);
        assert_eq!(halve(Floor), [10., 12.]);
        assert_eq!(halve(RoundPreferCeil), [11., 13.]);
        assert_eq!(halve(Ceil), [11., 13.]);
        // Asymmetric doubling: x / 2 = 0, 0.5, ..., 3.5; prefer-ceil rounds halves up (4
        // clamps to 3).
        let y = run(
            ResizeMode::Nearest,
            Asymmetric,
            RoundPreferCeil,
            &x,
            [1, 4],
            [1, 8],
            [1., 2.],
        );
        assert_eq!(y, [10., 11., 11., 12., 12., 13., 13., 13.]);
        // tf_half_pixel_for_nearest 2 -> 4: (x + 0.5) / 2 = 0.25, 0.75, 1.25, 1.75 ->
        // 0, 1, 1, 2 (clamped to 1).
        let y = run(
            ResizeMode::Nearest,
            TfHalfPixelForNearest,
            RoundPreferFloor,
            &[1., 2.],
            [1, 2],
            [1, 4],
            [1., 2.],
        );
        assert_eq!(y, [1., 2., 2., 2.]);
        // Both axes: height x2 half_pixel -0.25, 0.25, 0.75, 1.25 -> rows 0, 0, 1, 1.
        let y = run(
            ResizeMode::Nearest,
            HalfPixel,
            RoundPreferFloor,
            &X2X2,
            [2, 2],
            [4, 2],
            [2., 1.],
        );
        assert_eq!(y, [1., 2., 1., 2., 3., 4., 3., 4.]);
    }
}
