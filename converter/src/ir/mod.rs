//! The converter's intermediate representation: a graph of typed ops over values with
//! static shapes, constants held as candle tensors. Import builds it, compaction and
//! pruning rewrite it, export writes it, and `eval` runs it in candle as the reference.

mod eval;
mod graph;
mod op;

pub use eval::{eval, EvalError};
pub use graph::{Graph, Node, Value, ValueId};
pub use op::Op;
