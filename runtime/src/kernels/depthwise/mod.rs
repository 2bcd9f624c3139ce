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
