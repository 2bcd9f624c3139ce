//! Pruning: importance criteria, masks for every weight granularity, sparsity schedules,
//! regularisation terms that train toward sparsity, the choice of stored layout, and
//! structural (channel) pruning over a dependency graph.

pub mod criteria;
pub mod depgraph;
pub mod layers;
pub mod layout;
pub mod mask;
pub mod regularize;
pub mod request;
pub mod schedule;
pub mod sensitivity;
pub mod structural;
#[cfg(test)]
pub(crate) mod test_graphs;
pub mod tune;

/// Why a pruning request failed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A sparsity (fraction of weights removed) outside `[0, 1)`.
    #[error(
        "sparsity {0} is outside [0, 1): it is the fraction removed, so 0.9 keeps one weight in ten"
    )]
    Sparsity(f32),
    /// A tensor does not have the shape the operation needs.
    #[error("{0}")]
    Shape(String),
    /// A granularity with impossible parameters (empty blocks, `n > m`).
    #[error("granularity {0}")]
    Granularity(String),
    /// Importance scores that cannot be ranked (NaN).
    #[error("scores: {0}")]
    Scores(String),
    /// A criterion that cannot score what it was given.
    #[error("criterion {criterion}: {reason}")]
    Criterion {
        /// Criterion name.
        criterion: &'static str,
        /// What is missing or wrong.
        reason: String,
    },
    /// A schedule with parameters TF-MOT would reject.
    #[error("schedule: {0}")]
    Schedule(String),
    /// A layer name that is not in the graph.
    #[error("no layer is named '{0}'")]
    UnknownLayer(String),
    /// A layer that cannot be pruned as asked.
    #[error("layer '{layer}' cannot be pruned: {reason}")]
    NotPrunable {
        /// Layer (node) name.
        layer: String,
        /// Why.
        reason: String,
    },
    /// The fine-tuning hook failed.
    #[error("fine-tuning after round {round}: {error}")]
    FineTune {
        /// Round (1-based) that had just been pruned.
        round: usize,
        /// What the trainer reported.
        error: anyhow::Error,
    },
    /// candle refused a tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result of pruning operations.
pub type Result<T, E = PruneError> = std::result::Result<T, E>;

/// The matrix view of a weight shape: `shape[0]` rows (output channels) and the product
/// of the other dimensions as columns; a scalar is `1 x 1`.
pub(crate) fn matrix_view(shape: &[usize]) -> (usize, usize) {
    match shape.split_first() {
        Some((&rows, rest)) => (rows, rest.iter().product()),
        None => (1, 1),
    }
}

/// Reads any tensor as a flat row-major `Vec<f32>`.
pub(crate) fn to_f32_vec(t: &candle_core::Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?)
}

/// Checks that `sparsity` is a fraction in `[0, 1)`.
pub(crate) fn check_sparsity(sparsity: f32) -> Result<()> {
    if (0.0..1.0).contains(&sparsity) {
        Ok(())
    } else {
        Err(PruneError::Sparsity(sparsity))
    }
}
