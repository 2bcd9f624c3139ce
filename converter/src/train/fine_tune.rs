//! Pruning with fine-tuning: one-shot (prune, then train), gradual (TF-MOT's polynomial
//! decay while training) or iterative (rounds of prune then train), with the validation
//! accuracy measured along the way.

use super::data::Dataset;
use super::evaluate::evaluate_graph;
use super::gradients::rms_gradients;
use super::gradual::GradualPruning;
use super::trainer::{train, EpochStats, TrainConfig};
use super::{Result, TrainError};
use crate::ir::Graph;
use crate::prune::criteria::Criterion;
use crate::prune::request::{prune_with_gradients, Gradients, Method, PruneRequest, PruneSummary};
use crate::prune::schedule::{run_iterative, FineTune, Iterative, PolynomialDecay};
use crate::prune::PruneError;
use crate::report::Accuracy;

/// How pruning and training interleave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FineTuneSchedule {
    /// Prune once to the target, then fine-tune.
    OneShot,
    /// Prune every few steps of fine-tuning, from `initial_sparsity` to the target over
    /// the first two thirds of the steps (TF-MOT `PolynomialDecay`, power 3).
    Polynomial {
        /// Sparsity of the first pruning step.
        initial_sparsity: f32,
    },
    /// `rounds` rounds of prune then fine-tune (the epochs are per round).
    Iterative {
        /// Number of rounds.
        rounds: usize,
    },
}

impl FineTuneSchedule {
    /// Parses `oneshot`, `polynomial` or `iterative:N`.
    pub fn parse(s: &str, initial_sparsity: f32) -> Result<Self> {
        match s.split_once(':') {
            None if s == "oneshot" => Ok(FineTuneSchedule::OneShot),
            None if s == "polynomial" => Ok(FineTuneSchedule::Polynomial { initial_sparsity }),
            Some(("iterative", n)) => match n.parse::<usize>() {
                Ok(rounds) if rounds > 0 => Ok(FineTuneSchedule::Iterative { rounds }),
                _ => Err(TrainError::Config(format!(
                    "iterative:{n}: the number of rounds must be a positive integer"
                ))),
            },
            _ => Err(TrainError::Config(format!(
                "unknown schedule '{s}': use oneshot, polynomial or iterative:N"
            ))),
        }
    }
}

/// Everything a pruning run with fine-tuning needs.
pub struct FineTuning<'a> {
    /// Training data.
    pub train: &'a Dataset,
    /// Validation data (accuracy before, after pruning and after fine-tuning).
    pub validation: &'a Dataset,
    /// Training settings (epochs per round for iterative schedules).
    pub config: &'a TrainConfig,
    /// How pruning and training interleave.
    pub schedule: FineTuneSchedule,
    /// Sees every epoch's statistics.
    pub on_epoch: &'a dyn Fn(&EpochStats),
}

/// Calibration batches for the Taylor criterion.
const TAYLOR_BATCHES: usize = 16;

impl FineTuning<'_> {
    /// Gradients on calibration batches of the training data when `request` scores with
    /// the Taylor criterion, none otherwise.
    fn gradients(&self, graph: &Graph, request: &PruneRequest) -> Result<Gradients> {
        if request.criterion != Criterion::Taylor {
            return Ok(Gradients::new());
        }
        rms_gradients(graph, self.train, TAYLOR_BATCHES, self.config.batch_size)
    }

    /// Prunes `graph` as `request` says and fine-tunes it; returns what pruning changed and
    /// the accuracies (`runtime_top1` is left at 0 for the caller, who has the file).
    pub fn run(
        &self,
        graph: &mut Graph,
        request: &PruneRequest,
    ) -> Result<(PruneSummary, Accuracy)> {
        let top1 =
            |g: &Graph| -> Result<f64> { Ok(evaluate_graph(g, self.validation, 256, false)?.top1) };
        let dense_top1 = top1(graph)?;
        let mut pruned_top1 = None;
        let mut on_epoch = |s: &EpochStats| (self.on_epoch)(s);
        let (summary, epochs) = match self.schedule {
            FineTuneSchedule::OneShot => {
                let summary =
                    prune_with_gradients(graph, request, &self.gradients(graph, request)?)?;
                pruned_top1 = Some(top1(graph)?);
                train(
                    graph,
                    self.train,
                    Some(self.validation),
                    self.config,
                    None,
                    &mut on_epoch,
                )?;
                (summary, self.config.epochs)
            }
            FineTuneSchedule::Polynomial { initial_sparsity } => {
                let steps = self.config.epochs
                    * (self.train.len() / self.config.batch_size.clamp(1, self.train.len()));
                let end = (steps as i64 * 2 / 3).max(1);
                let mut schedule = PolynomialDecay::new(
                    initial_sparsity.min(request.amount),
                    request.amount,
                    0,
                    end,
                )?;
                schedule.frequency = (end / 20).max(1);
                let mut hook = GradualPruning::new(schedule, request.clone())?;
                train(
                    graph,
                    self.train,
                    Some(self.validation),
                    self.config,
                    Some(&mut hook),
                    &mut on_epoch,
                )?;
                (
                    PruneSummary {
                        layers: Vec::new(),
                        groups: Vec::new(),
                    },
                    self.config.epochs,
                )
            }
            FineTuneSchedule::Iterative { rounds } => {
                let schedule = Iterative::new(rounds, request.amount)?;
                // Weight pruning keeps zeros in place, so each round prunes to the
                // cumulative sparsity; structural pruning removes channels, so each round
                // removes the same share of those left.
                let per_round = 1.0 - (1.0 - f64::from(request.amount)).powf(1.0 / rounds as f64);
                let cumulative = matches!(request.method, Method::Weights(_));
                let mut last = None;
                let mut tuner = Tuner {
                    fine: self,
                    on_epoch: &mut on_epoch,
                };
                run_iterative(
                    graph,
                    &schedule,
                    |g, amount| {
                        let amount = if cumulative { amount } else { per_round as f32 };
                        let gradients =
                            self.gradients(g, request)
                                .map_err(|e| PruneError::Criterion {
                                    criterion: "taylor",
                                    reason: e.to_string(),
                                })?;
                        let round = PruneRequest {
                            amount,
                            ..request.clone()
                        };
                        last = Some(prune_with_gradients(g, &round, &gradients)?);
                        Ok(())
                    },
                    &mut tuner,
                )?;
                let summary = last.unwrap_or(PruneSummary {
                    layers: Vec::new(),
                    groups: Vec::new(),
                });
                (summary, self.config.epochs * rounds)
            }
        };
        Ok((
            summary,
            Accuracy {
                data: self.validation.name().to_string(),
                dense_top1,
                pruned_top1,
                final_top1: top1(graph)?,
                runtime_top1: 0.0,
                epochs,
            },
        ))
    }
}

/// The trainer as the iterative schedule's fine-tuning hook.
struct Tuner<'a, 'b> {
    fine: &'a FineTuning<'b>,
    on_epoch: &'a mut dyn FnMut(&EpochStats),
}

impl FineTune for Tuner<'_, '_> {
    fn fine_tune(&mut self, graph: &mut Graph, _round: usize) -> anyhow::Result<()> {
        let f = self.fine;
        train(
            graph,
            f.train,
            Some(f.validation),
            f.config,
            None,
            self.on_epoch,
        )?;
        Ok(())
    }
}
