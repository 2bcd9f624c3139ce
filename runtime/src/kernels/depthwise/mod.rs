//! Depthwise 2-D convolution (one input channel per output channel), run directly on the
//! NCHW planes instead of unfolding them. The portable loop nest in `scalar` vectorises
//! with the target's base vector unit (NEON on aarch64, SSE2 on x86_64); `x86` compiles the
//! same code for AVX2 + FMA, picked at run time.

mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::graph::{Activation, Conv2d};
use crate::weights::WeightMatrix;

/// Taps of the largest kernel the depthwise path takes; larger ones unfold.
pub const MAX_DEPTHWISE_TAPS: usize = 64;

/// The operands of one depthwise convolution, as for [`crate::ops::conv::conv2d`]: `x` is
/// `x_shape = [N, C, H, W]`, `w` is `[O, kh * kw]` with `O` a multiple of `C` (output
/// channel `o` reads input channel `o / (O / C)`), `y` is `y_shape = [N, O, OH, OW]`.
#[derive(Clone, Copy)]
pub struct Depthwise<'a> {
    /// Strides, dilations and pads (`groups == C`).
    pub attrs: &'a Conv2d,
    /// The input.
    pub x: &'a [f32],
    /// `[N, C, H, W]`.
    pub x_shape: [usize; 4],
    /// One row of `kh * kw` taps per output channel, at most [`MAX_DEPTHWISE_TAPS`].
    pub w: &'a WeightMatrix<'a>,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Per output channel.
    pub bias: Option<&'a [f32]>,
    /// Fused activation.
    pub act: Activation,
    /// `[N, O, OH, OW]`.
    pub y_shape: [usize; 4],
}

/// Writes the convolution `conv` into `y`. Never allocates.
pub fn depthwise(conv: &Depthwise, y: &mut [f32]) {
    assert!(conv.kernel[0] * conv.kernel[1] <= MAX_DEPTHWISE_TAPS);
    #[cfg(target_arch = "x86_64")]
    if x86::depthwise(conv, y) {
        return;
    }
    scalar::depthwise(conv, y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode::encode;
    use crate::graph::{LayoutKind, Storage};
    use alloc::vec;
    use alloc::vec::Vec;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn every_implementation_agrees_with_the_portable_one() {
        let mut rng = SmallRng::seed_from_u64(3);
        // (channels, multiplier, size, kernel, stride, dilation, pads)
        let cases = [
            (3, 1, [7, 19], [3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
            (2, 2, [9, 33], [5, 5], [1, 1], [1, 1], [2, 2, 2, 2]),
            (4, 1, [8, 17], [3, 3], [2, 2], [1, 1], [0, 1, 1, 0]),
            (1, 3, [6, 40], [3, 5], [1, 2], [2, 1], [2, 0, 1, 3]),
        ];
        for (channels, multiplier, [h, w], kernel, stride, dilation, pads) in cases {
            let attrs = Conv2d {
                stride,
                dilation,
                pads,
                groups: channels,
            };
            let out_len = |len: usize, axis: usize| {
                crate::ops::window::output_len(
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
            let y_shape = [2, outputs, out_len(h, 0), out_len(w, 1)];
            let x: Vec<f32> = (0..x_shape.iter().product())
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let taps = kernel[0] * kernel[1];
            let weights: Vec<f32> = (0..outputs * taps)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let bias: Vec<f32> = (0..outputs).map(|_| rng.gen_range(-1.0..1.0)).collect();
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
            let mut want = vec![f32::NAN; y_shape.iter().product()];
            scalar::depthwise(&conv, &mut want);
            let mut got = vec![f32::NAN; want.len()];
            depthwise(&conv, &mut got);
            assert_eq!(got, want, "{x_shape:?} {kernel:?} {attrs:?}");
        }
    }
}
