//! Low-level math shared by ops.

pub mod parallel;
pub mod weight_matmul;
