//! lopper's runtime: loads a `.lopper` file in place, verifies it, plans memory once and
//! runs it without allocating.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod format;
pub mod graph;
pub mod kernels;
pub mod ops;
pub mod weights;
