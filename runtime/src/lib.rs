//! lopper's runtime: loads a `.lopper` file in place, verifies it, plans memory once and
//! runs it without allocating.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use lopper_runtime::{Model, Session};
//! let model = Model::open("model.lopper")?;
//! let mut session = Session::new(&model)?;
//! session.set_input(0, &vec![0.0; 3 * 224 * 224])?;
//! session.run();
//! let scores = session.output(0)?;
//! # let _ = scores;
//! # Ok(())
//! # }
//! ```
#![no_std]

#[cfg(target_endian = "big")]
compile_error!("lopper files are little-endian; big-endian targets are not supported");

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod format;
pub mod graph;
pub mod kernels;
pub mod model;
pub mod ops;
pub mod plan;
pub mod session;
mod verify;
pub mod weights;

pub use error::{LoadError, Location, RunError};
pub use model::{Graph, Model, TensorInfo};
pub use session::Session;
