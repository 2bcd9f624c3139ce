//! The portable depthwise loops compiled for AVX2 + FMA, when the CPU has them.

use super::{scalar, Depthwise};

/// Runs `conv` with AVX2 when the CPU has it (detected with `std`, compile-time without);
/// `false` leaves it to the caller.
pub(super) fn depthwise(conv: &Depthwise, y: &mut [f32]) -> bool {
    #[cfg(feature = "std")]
    let present = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    #[cfg(not(feature = "std"))]
    let present = cfg!(all(target_feature = "avx2", target_feature = "fma"));
    if present {
        // SAFETY: the CPU supports the features `run` is compiled for, checked above.
        unsafe { run(conv, y) };
    }
    present
}

/// # Safety
/// The CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn run(conv: &Depthwise, y: &mut [f32]) {
    scalar::depthwise(conv, y);
}
