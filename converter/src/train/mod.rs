//! Training on the IR with candle autograd: data sets, the trainer (optimizers, learning
//! rates, cross-entropy, fixed pruning masks, checkpoints), evaluation of IR graphs and
//! `.lopper` files, gradual pruning during training, and the built-in seed network.

pub mod checkpoint;
pub mod data;
pub mod evaluate;
pub mod fine_tune;
pub mod gradients;
pub mod gradual;
pub mod loss;
pub mod lr;
pub mod optim;
pub mod params;
pub mod rebatch;
pub mod seed_model;
pub mod trainer;

use std::path::PathBuf;

pub use evaluate::{evaluate_graph, evaluate_model, Metrics};
pub use trainer::{train, EpochStats, TrainConfig, TrainReport};

/// Why training or evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting that cannot be used (a zero batch size, a negative learning rate, ...).
    #[error("{0}")]
    Config(String),
    /// The model cannot run with the batch size training needs.
    #[error("{0}")]
    Batch(String),
    /// The model does not fit the task: no trainable weights, outputs that are not class
    /// scores, fewer classes than the data has.
    #[error("{0}")]
    Model(String),
    /// The loss became NaN or infinite.
    #[error("the loss became {loss} at step {step}: lower the learning rate")]
    Diverged {
        /// Step at which it happened.
        step: u64,
        /// The loss value.
        loss: f32,
    },
    /// A checkpoint that cannot be written, read, or used for this run.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data does not fit.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// Evaluating the graph failed.
    #[error(transparent)]
    Eval(Box<crate::ir::EvalError>),
    /// Pruning during training failed.
    #[error(transparent)]
    Prune(#[from] crate::prune::PruneError),
    /// The runtime refused a `.lopper` file or an input.
    #[error("runtime: {0}")]
    Runtime(String),
    /// candle refused a tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<crate::ir::EvalError> for TrainError {
    fn from(e: crate::ir::EvalError) -> Self {
        TrainError::Eval(Box::new(e))
    }
}

/// Result of training operations.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
