//! The `.lopper` file format: the generated FlatBuffers code, the footer with its
//! checksum, weight encoding, and the one writer every producer uses.

#[allow(clippy::all, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes)]
#[rustfmt::skip]
mod lopper_generated;

pub mod encode;
pub mod footer;
pub mod writer;

pub use lopper_generated::lopper::fb;
pub use writer::{Encoding, ModelWriter, WriteError, FORMAT_VERSION};
