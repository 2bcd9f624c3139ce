//! Gradual pruning during training, as TF-MOT's `prune_low_magnitude` does it: at the
//! steps a [`Schedule`] names, the weights are pruned again to the schedule's sparsity for
//! that step, and training continues with the new masks.

use super::trainer::StepHook;
use super::{Result, TrainError};
use crate::ir::Graph;
use crate::prune::criteria::Criterion;
use crate::prune::request::{prune, Method, PruneRequest};
use crate::prune::schedule::Schedule;

/// A [`StepHook`] that prunes `request`'s weights to `schedule.sparsity_at(step)` at every
/// step where `schedule.should_prune(step)`.
pub struct GradualPruning<S> {
    schedule: S,
    request: PruneRequest,
    prunings: usize,
}

impl<S: Schedule> GradualPruning<S> {
    /// Gradual pruning of weights, blocks or N:M groups. Structural methods change shapes,
    /// which a running optimizer cannot follow: prune them between training runs instead.
    pub fn new(schedule: S, request: PruneRequest) -> Result<Self> {
        if !matches!(request.method, Method::Weights(_)) {
            return Err(TrainError::Config(
                "gradual pruning during training removes weights, blocks or N:M groups; channels, neurons and layers are pruned between fine-tuning rounds".into(),
            ));
        }
        if request.criterion == Criterion::Taylor {
            return Err(TrainError::Config(
                "gradual pruning scores weights by magnitude (l1, l2) or at random; the taylor criterion works with one-shot and iterative schedules".into(),
            ));
        }
        Ok(Self {
            schedule,
            request,
            prunings: 0,
        })
    }

    /// How many times it has pruned.
    pub fn prunings(&self) -> usize {
        self.prunings
    }
}

impl<S: Schedule> StepHook for GradualPruning<S> {
    fn before_step(&mut self, step: u64, graph: &mut Graph) -> Result<bool> {
        if !self.schedule.should_prune(step) {
            return Ok(false);
        }
        let request = PruneRequest {
            amount: self.schedule.sparsity_at(step),
            ..self.request.clone()
        };
        prune(graph, &request)?;
        self.prunings += 1;
        Ok(true)
    }
}
