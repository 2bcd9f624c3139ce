//! Low-level math shared by ops.

pub mod columns;
pub mod depthwise;
pub mod parallel;
pub mod weight_matmul;
