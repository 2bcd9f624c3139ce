//! The `.lopper` file format: the generated FlatBuffers code, the footer with its
//! checksum, and the one writer every producer uses.

#[allow(clippy::all, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes)]
#[rustfmt::skip]
mod lopper_generated;

pub use lopper_generated::lopper::fb;

pub mod encode;
