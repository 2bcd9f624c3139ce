//! AVX2 + FMA (+ F16C for half-precision weights) on x86_64, detected at run time with
//! `std` and at compile time without it.

use core::arch::x86_64::*;
use core::ops::Range;

use super::simd::{self, Simd};
use crate::graph::Activation;
use crate::weights::WeightMatrix;

/// Proof that the CPU has AVX2, FMA and F16C: only [`Avx2::detect`] makes one.
#[derive(Clone, Copy)]
pub(super) struct Avx2(());

impl Avx2 {
    /// `Some` when the running CPU supports AVX2, FMA and F16C.
    pub(super) fn detect() -> Option<Avx2> {
        #[cfg(feature = "std")]
        let present = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        #[cfg(not(feature = "std"))]
        let present = cfg!(all(
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ));
        present.then_some(Avx2(()))
    }
}

impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    fn fma(self, acc: __m256, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe { _mm256_fmadd_ps(a, b, acc) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn sum(self, v: __m256) -> f32 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn widen_f16(self, bits: u16) -> f32 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C.
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits)))) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C; the caller guarantees the memory (see the trait).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C; the caller guarantees the memory (see the trait).
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C; the caller guarantees the memory (see the trait).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load_partial(self, p: *const f32, len: usize) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C; the caller guarantees the memory (see the trait).
        unsafe { _mm256_maskload_ps(p, mask(self, len)) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, len: usize, v: __m256) {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C; the caller guarantees the memory (see the trait).
        unsafe { _mm256_maskstore_ps(p, mask(self, len), v) }
    }
    #[inline(always)]
    unsafe fn load_i8(self, p: *const i8) -> __m256 {
        // SAFETY: `self` exists only on a CPU with AVX2, FMA and F16C; the caller guarantees the memory (see the trait).
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))) }
    }
}

/// Lanes `0..len` set, for the masked loads and stores of a partial vector (`len < 8`).
#[inline(always)]
fn mask(_: Avx2, len: usize) -> __m256i {
    const WINDOW: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    let start = 8 - len.min(8);
    // SAFETY: `start + 8 <= 16`, inside `WINDOW`; an `Avx2` proves AVX.
    unsafe { _mm256_loadu_si256(WINDOW[start..start + 8].as_ptr().cast()) }
}

/// The AVX2 kernel, when the CPU has it and the shape suits it; `false` leaves the work
/// to the scalar kernel. Arguments as for [`super::weight_matmul`], already checked.
pub(super) fn weight_matmul(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> bool {
    let Some(isa) = Avx2::detect() else {
        return false;
    };
    if !simd::suits(n, Avx2::LANES) {
        return false;
    }
    // SAFETY: `isa` proves the features `run` is compiled for.
    unsafe { run(isa, w, rows, x, n, bias, act, y) };
    true
}

/// [`simd::weight_matmul`] compiled for AVX2: 6 x 16 dense tiles (12 of the 16 registers
/// accumulate).
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn run(
    isa: Avx2,
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    simd::weight_matmul::<Avx2, 6, 2>(isa, w, rows, x, n, bias, act, y);
}
