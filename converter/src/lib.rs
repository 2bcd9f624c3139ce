//! lopper's converter: imports ONNX models into an IR on candle tensors, compacts them and
//! exports `.lopper` files for the runtime.

pub mod compact;
pub mod export;
pub mod export_onnx;
pub mod files;
pub mod import;
pub mod inspect;
pub mod ir;
pub mod latency;
pub mod npy;
pub mod onnx;
pub mod pipeline;
pub mod progress;
pub mod prune;
pub mod report;
pub mod train;
