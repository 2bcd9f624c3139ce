//! NEON on aarch64, where it is part of the base instruction set. Half-precision weights
//! are widened one value at a time (the `half` crate's conversion).

use core::arch::aarch64::*;
use core::ops::Range;

use super::simd::{self, Simd};
use crate::graph::Activation;
use crate::weights::WeightMatrix;

/// NEON, always present on the targets this module is compiled for.
#[derive(Clone, Copy)]
pub(super) struct Neon;

impl Simd for Neon {
    type V = float32x4_t;
    const LANES: usize = 4;

    #[inline(always)]
    fn splat(self, v: f32) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled.
        unsafe { vdupq_n_f32(v) }
    }
    #[inline(always)]
    fn fma(self, acc: float32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled.
        unsafe { vfmaq_f32(acc, a, b) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled.
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled.
        unsafe { vmaxq_f32(a, b) }
    }
    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled.
        unsafe { vminq_f32(a, b) }
    }
    #[inline(always)]
    fn sum(self, v: float32x4_t) -> f32 {
        // SAFETY: this module is compiled only with NEON enabled.
        unsafe { vaddvq_f32(v) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled; the caller guarantees the memory (see the trait).
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: float32x4_t) {
        // SAFETY: this module is compiled only with NEON enabled; the caller guarantees the memory (see the trait).
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn load_i8(self, p: *const i8) -> float32x4_t {
        // SAFETY: this module is compiled only with NEON enabled; the caller guarantees the memory (see the trait).
        unsafe {
            let bytes = vcreate_s8(u64::from(p.cast::<u32>().read_unaligned()));
            let wide = vmovl_s16(vget_low_s16(vmovl_s8(bytes)));
            vcvtq_f32_s32(wide)
        }
    }
}

/// The NEON kernel when the shape suits it; `false` leaves the work to the scalar kernel.
/// Arguments as for [`super::weight_matmul`], already checked.
pub(super) fn weight_matmul(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> bool {
    if !simd::suits(n, Neon::LANES) {
        return false;
    }
    // 8 x 12 dense tiles: 24 of the 32 registers accumulate.
    simd::weight_matmul::<Neon, 8, 3>(Neon, w, rows, x, n, bias, act, y);
    true
}
