//! Reference implementations of every op, one file per op family. Each works on plain
//! slices with shapes already verified, and never allocates.

pub mod activation;
pub mod binary;
pub mod concat;
pub mod conv;
pub mod convtranspose;
pub mod gather;
pub mod layernorm;
pub mod linear;
pub mod lrn;
pub mod matmul;
pub mod pad;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod slice;
pub mod softmax;
pub mod transpose;
pub mod window;
