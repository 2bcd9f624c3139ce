//! Low-level math shared by ops.

pub mod weight_matmul;
