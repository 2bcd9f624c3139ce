//! IR ops: everything the runtime executes, plus the ops that only exist before
//! compaction.

/// An IR op.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// An op the runtime executes as it is (`lopper_runtime::graph::Op`).
    Runtime(lopper_runtime::graph::Op),
    /// Batch normalization with constant parameters; inputs `x, scale, bias, mean, var`
    /// (each `[C]`). Compaction folds it into the preceding convolution or linear layer.
    BatchNorm {
        /// Added to the variance.
        epsilon: f32,
    },
}

impl Op {
    /// Short name for messages and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Runtime(op) => op.name(),
            Op::BatchNorm { .. } => "BatchNormalization",
        }
    }
}
