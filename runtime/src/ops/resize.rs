//! Nearest and bilinear resize of the last two axes of an NCHW tensor, with the semantics
//! of the ONNX reference implementation of Resize (opset 11-13).
//!
//! Each output index `x` of an axis maps to an input coordinate by the coordinate
//! transform. Nearest rounds that coordinate by the nearest mode (an integral coordinate is
//! taken as it is) and clamps it into the axis. Linear clamps the coordinate into
//! `[0, len - 1]` and interpolates between its two neighbouring inputs, first along the
//! width and then along the height, as the reference does. Coordinates are computed in f64
//! from the f32 scales, like the reference.

use crate::graph::{CoordinateTransform, NearestMode, Resize, ResizeMode};

/// Resizes `x` (`x_shape = [N, C, H, W]`) into `y` (`y_shape = [N, C, OH, OW]`). The scales
/// must be finite and positive; any output size is accepted. Never allocates.
pub fn resize(r: &Resize, x: &[f32], x_shape: [usize; 4], y: &mut [f32], y_shape: [usize; 4]) {
    let [_, _, h, w] = x_shape;
    let [_, _, oh, ow] = y_shape;
    let rows = Axis::new(r, 0, h);
    let cols = Axis::new(r, 1, w);
    for (xp, yp) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        for (oy, y_row) in yp.chunks_exact_mut(ow).enumerate() {
            match r.mode {
                ResizeMode::Nearest => {
                    let x_row = &xp[rows.nearest(oy, r.nearest_mode) * w..][..w];
                    for (ox, v) in y_row.iter_mut().enumerate() {
                        *v = x_row[cols.nearest(ox, r.nearest_mode)];
                    }
                }
                ResizeMode::Linear => {
                    let (top, bottom, fy) = rows.linear(oy);
                    let (top, bottom) = (&xp[top * w..][..w], &xp[bottom * w..][..w]);
                    for (ox, v) in y_row.iter_mut().enumerate() {
                        let (left, right, fx) = cols.linear(ox);
                        let upper = lerp(top[left], top[right], fx);
                        let lower = lerp(bottom[left], bottom[right], fx);
                        *v = lerp(upper, lower, fy);
                    }
                }
            }
        }
    }
}

/// `(1 - t) a + t b`, the reference's weighting of two neighbours.
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    (1.0 - t) * a + t * b
}

/// One resized axis: its input length, scale and coordinate transform.
struct Axis {
    len: usize,
    scale: f64,
    transform: CoordinateTransform,
}

impl Axis {
    /// Axis 0 (height) or 1 (width) of `r`, with input length `len`.
    fn new(r: &Resize, axis: usize, len: usize) -> Self {
        Axis {
            len,
            scale: f64::from(r.scales[axis]),
            transform: r.coordinate_transform,
        }
    }

    /// The input coordinate of output index `x`. The resized length `len * scale` counts
    /// as 1 within f32 rounding, so a scale stored as the f32 nearest `1 / len` behaves as
    /// exactly `1 / len` would.
    fn coordinate(&self, x: usize) -> f64 {
        let x = x as f64;
        let len = self.len as f64;
        let resized = self.scale * len;
        let resized_is_one = (resized - 1.0).abs() <= f64::from(f32::EPSILON);
        match self.transform {
            CoordinateTransform::HalfPixel => (x + 0.5) / self.scale - 0.5,
            CoordinateTransform::PytorchHalfPixel if resized_is_one => -0.5,
            CoordinateTransform::PytorchHalfPixel => (x + 0.5) / self.scale - 0.5,
            CoordinateTransform::AlignCorners if resized_is_one => 0.0,
            CoordinateTransform::AlignCorners => x * (len - 1.0) / (resized - 1.0),
            CoordinateTransform::Asymmetric => x / self.scale,
            CoordinateTransform::TfHalfPixelForNearest => (x + 0.5) / self.scale,
        }
    }

    /// `v` clamped into the axis, as an index. NaN becomes 0.
    fn clamp(&self, v: f64) -> usize {
        v.max(0.0).min((self.len - 1) as f64) as usize
    }

    /// Input index read by output `x` in nearest mode.
    fn nearest(&self, x: usize, mode: NearestMode) -> usize {
        let coord = self.coordinate(x);
        let floor = libm::floor(coord);
        let ratio = coord - floor;
        let up = ratio != 0.0
            && match mode {
                NearestMode::RoundPreferFloor => ratio > 0.5,
                NearestMode::RoundPreferCeil => ratio >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
            };
        self.clamp(if up { floor + 1.0 } else { floor })
    }

    /// Neighbours and weight of the second one for output `x` in linear mode.
    fn linear(&self, x: usize) -> (usize, usize, f32) {
        let coord = self.coordinate(x).max(0.0).min((self.len - 1) as f64);
        let first = self.clamp(libm::floor(coord));
        let second = (first + 1).min(self.len - 1);
        (first, second, (coord - first as f64) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use CoordinateTransform::*;
    use NearestMode::*;

    /// Resizes one `h x w` plane to `out` with the given scales.
    fn run(
        mode: ResizeMode,
        transform: CoordinateTransform,
        nearest_mode: NearestMode,
        x: &[f32],
        [h, w]: [usize; 2],
        out: [usize; 2],
        scales: [f32; 2],
    ) -> Vec<f32> {
        let r = Resize {
            mode,
            coordinate_transform: transform,
            nearest_mode,
            scales,
        };
        let mut y = vec![f32::NAN; out[0] * out[1]];
        resize(&r, x, [1, 1, h, w], &mut y, [1, 1, out[0], out[1]]);
        y
    }

    fn linear(
        t: CoordinateTransform,
        x: &[f32],
        size: [usize; 2],
        out: [usize; 2],
        s: [f32; 2],
    ) -> Vec<f32> {
        run(ResizeMode::Linear, t, RoundPreferFloor, x, size, out, s)
    }

    fn nearest(
        t: CoordinateTransform,
        m: NearestMode,
        x: &[f32],
        size: [usize; 2],
        out: [usize; 2],
        s: [f32; 2],
    ) -> Vec<f32> {
        run(ResizeMode::Nearest, t, m, x, size, out, s)
    }

    #[track_caller]
    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5, "{got:?} vs {want:?}");
        }
    }

    const X2X2: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
    const X4X4: [f32; 16] = [
        1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
    ];
    const X2X4: [f32; 8] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];

    #[test]
    fn bilinear_half_pixel_upsample() {
        // Scale 2: (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to 0, 0.25, 0.75,
        // 1. Row [1 2] becomes [1 1.25 1.75 2], row [3 4] becomes [3 3.25 3.75 4], and the
        // rows mix with the same weights.
        let y = linear(HalfPixel, &X2X2, [2, 2], [4, 4], [2.0, 2.0]);
        let want = [
            1.0, 1.25, 1.75, 2.0, //
            1.5, 1.75, 2.25, 2.5, //
            2.5, 2.75, 3.25, 3.5, //
            3.0, 3.25, 3.75, 4.0,
        ];
        close(&y, &want);
    }

    #[test]
    fn bilinear_half_pixel_downsample() {
        // Scale 0.6 on [1 2 3 4; 5 6 7 8] -> 1x2. Rows: 0.5 / 0.6 - 0.5 = 1/3. Columns:
        // 1/3 and 1.5 / 0.6 - 0.5 = 2. Top row gives 1 1/3 and 3, bottom 5 1/3 and 7;
        // a third of the way down: 2 2/3 and 4 1/3.
        let y = linear(HalfPixel, &X2X4, [2, 4], [1, 2], [0.6, 0.6]);
        close(&y, &[2.666_666_7, 4.333_333]);
    }

    #[test]
    fn bilinear_align_corners() {
        // 2 -> 4 with corners aligned: x * (2 - 1) / (4 - 1) = 0, 1/3, 2/3, 1.
        let y = linear(AlignCorners, &X2X2, [2, 2], [4, 4], [2.0, 2.0]);
        let third = 1.0 / 3.0;
        let want = [
            1.0,
            1.0 + third,
            1.0 + 2.0 * third,
            2.0,
            1.0 + 2.0 * third,
            2.0,
            2.0 + third,
            2.0 + 2.0 * third,
            2.0 + third,
            2.0 + 2.0 * third,
            3.0,
            3.0 + third,
            3.0,
            3.0 + third,
            3.0 + 2.0 * third,
            4.0,
        ];
        close(&y, &want);

        // 2 -> 3 along the width: coordinates 0, 0.5, 1 on [1 3] give 1, 2, 3.
        let y = linear(AlignCorners, &[1.0, 3.0], [1, 2], [1, 3], [1.0, 1.5]);
        close(&y, &[1.0, 2.0, 3.0]);

        // Downsampling by 0.6: the resized width is 4 * 0.6 = 2.4 (not the output's 2), so
        // column 1 reads x = 1 * 3 / 1.4 = 2.142857 -> 3.142857; the resized height 1.2
        // puts row 0 at 0.
        let y = linear(AlignCorners, &X2X4, [2, 4], [1, 2], [0.6, 0.6]);
        close(&y, &[1.0, 3.142_857]);
    }

    #[test]
    fn bilinear_asymmetric_and_tf_half_pixel() {
        // x / 2 = 0, 0.5, 1, 1.5 (clamped to 1) on [1 3].
        let y = linear(Asymmetric, &[1.0, 3.0], [1, 2], [1, 4], [1.0, 2.0]);
        close(&y, &[1.0, 2.0, 3.0, 3.0]);
        // (x + 0.5) / 2 = 0.25, 0.75, 1.25, 1.75 (both clamped to 1).
        let y = linear(
            TfHalfPixelForNearest,
            &[1.0, 3.0],
            [1, 2],
            [1, 4],
            [1.0, 2.0],
        );
        close(&y, &[1.5, 2.5, 3.0, 3.0]);
    }

    #[test]
    fn bilinear_pytorch_half_pixel() {
        // 4x4 -> 3x1. Rows, scale 0.75: (x + 0.5) / 0.75 - 0.5 = 1/6, 1.5, 2 5/6 on column
        // 0 (1, 5, 9, 13): 1 2/3, 7, 12 1/3. The width resizes to 4 * 0.25 = 1, so its one
        // coordinate is -0.5, clamped to column 0.
        let y = linear(PytorchHalfPixel, &X4X4, [4, 4], [3, 1], [0.75, 0.25]);
        close(&y, &[1.666_666_7, 7.0, 12.333_333]);
        // With half_pixel the single column is at 0.5 / 0.25 - 0.5 = 1.5, between columns 1
        // and 2, where row r reads 4r + 2.5: 3 1/6, 8.5, 13 5/6.
        let y = linear(HalfPixel, &X4X4, [4, 4], [3, 1], [0.75, 0.25]);
        close(&y, &[3.166_666_7, 8.5, 13.833_333]);
        // A stored f32 scale of 1/3 still counts as a resized length of 1.
        let y = linear(
            PytorchHalfPixel,
            &[1.0, 2.0, 3.0],
            [1, 3],
            [1, 1],
            [1.0, 1.0 / 3.0],
        );
        close(&y, &[1.0]);
    }

    #[test]
    fn nearest_half_pixel_round_prefer_floor() {
        // Width x3: (x + 0.5) / 3 - 0.5 = -1/3, 0, 1/3, 2/3, 1, 4/3 -> 0, 0, 0, 1, 1, 1;
        // height x2: -0.25, 0.25, 0.75, 1.25 -> 0, 0, 1, 1.
        let y = nearest(
            HalfPixel,
            RoundPreferFloor,
            &X2X2,
            [2, 2],
            [4, 6],
            [2.0, 3.0],
        );
        let want = [
            1.0, 1.0, 1.0, 2.0, 2.0, 2.0, //
            1.0, 1.0, 1.0, 2.0, 2.0, 2.0, //
            3.0, 3.0, 3.0, 4.0, 4.0, 4.0, //
            3.0, 3.0, 3.0, 4.0, 4.0, 4.0,
        ];
        assert_eq!(y, want);
        // Downsampling by 0.6: rows at 1/3 -> 0, columns at 1/3 and 2 -> 0 and 2.
        let y = nearest(
            HalfPixel,
            RoundPreferFloor,
            &X2X4,
            [2, 4],
            [1, 2],
            [0.6, 0.6],
        );
        assert_eq!(y, [1.0, 3.0]);
    }

    #[test]
    fn nearest_modes_on_ties_and_fractions() {
        // Halving with half_pixel lands exactly between inputs: (x + 0.5) * 2 - 0.5 = 0.5,
        // 2.5. Prefer-floor and floor take 0, 2; prefer-ceil and ceil take 1, 3.
        let x = [10.0, 11.0, 12.0, 13.0];
        let halve = |m| nearest(HalfPixel, m, &x, [1, 4], [1, 2], [1.0, 0.5]);
        assert_eq!(halve(RoundPreferFloor), [10.0, 12.0]);
        assert_eq!(halve(Floor), [10.0, 12.0]);
        assert_eq!(halve(RoundPreferCeil), [11.0, 13.0]);
        assert_eq!(halve(Ceil), [11.0, 13.0]);

        // Doubling 4 -> 8 asymmetric: x / 2 = 0, 0.5, ..., 3.5. Round-prefer-ceil takes
        // 0, 1, 1, 2, 2, 3, 3, 4 -> 3 (clamped).
        let y = nearest(Asymmetric, RoundPreferCeil, &x, [1, 4], [1, 8], [1.0, 2.0]);
        assert_eq!(y, [10.0, 11.0, 11.0, 12.0, 12.0, 13.0, 13.0, 13.0]);
        let y = nearest(Asymmetric, RoundPreferFloor, &x, [1, 4], [1, 8], [1.0, 2.0]);
        assert_eq!(y, [10.0, 10.0, 11.0, 11.0, 12.0, 12.0, 13.0, 13.0]);

        // Half pixel 4 -> 8: -0.25, 0.25, 0.75, ..., 3.25; ceil takes 0 (from -0.25), 1, 1,
        // 2, 2, 3, 3, 4 -> 3.
        let y = nearest(HalfPixel, Ceil, &x, [1, 4], [1, 8], [1.0, 2.0]);
        assert_eq!(y, [10.0, 11.0, 11.0, 12.0, 12.0, 13.0, 13.0, 13.0]);

        // Align corners 4 -> 8 with floor: x * 3 / 7 = 0, 0.43, 0.86, 1.29, 1.71, 2.14,
        // 2.57, 3 -> 0, 0, 0, 1, 1, 2, 2, 3.
        let y = nearest(AlignCorners, Floor, &x, [1, 4], [1, 8], [1.0, 2.0]);
        assert_eq!(y, [10.0, 10.0, 10.0, 11.0, 11.0, 12.0, 12.0, 13.0]);

        // tf_half_pixel_for_nearest 2 -> 4: (x + 0.5) / 2 = 0.25, 0.75, 1.25, 1.75 ->
        // 0, 1, 1, 2 -> 1 (clamped).
        let y = nearest(
            TfHalfPixelForNearest,
            RoundPreferFloor,
            &[1.0, 2.0],
            [1, 2],
            [1, 4],
            [1.0, 2.0],
        );
        assert_eq!(y, [1.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn nearest_on_a_4x4_with_both_axes() {
        // 4x4 -> 8x8 with align_corners and floor picks rows and columns 0 0 0 1 1 2 2 3.
        let y = nearest(AlignCorners, Floor, &X4X4, [4, 4], [8, 8], [2.0, 2.0]);
        let pick = [0, 0, 0, 1, 1, 2, 2, 3];
        for (oy, &iy) in pick.iter().enumerate() {
            for (ox, &ix) in pick.iter().enumerate() {
                assert_eq!(y[oy * 8 + ox], X4X4[iy * 4 + ix], "({oy}, {ox})");
            }
        }
    }

    #[test]
    fn batches_and_channels_resize_independently() {
        // Two planes, nearest x2 asymmetric: each element repeats in a 2x2 block.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let r = Resize {
            mode: ResizeMode::Nearest,
            coordinate_transform: Asymmetric,
            nearest_mode: Floor,
            scales: [2.0, 2.0],
        };
        let mut y = [f32::NAN; 32];
        resize(&r, &x, [2, 1, 2, 2], &mut y, [2, 1, 4, 4]);
        assert_eq!(&y[..8], [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
        assert_eq!(&y[16..24], [5.0, 5.0, 6.0, 6.0, 5.0, 5.0, 6.0, 6.0]);
    }
}
