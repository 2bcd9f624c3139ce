//! Low-level math shared by ops.

pub mod depthwise;
pub mod parallel;
pub mod weight_matmul;
