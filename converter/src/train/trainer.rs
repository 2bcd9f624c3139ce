//! The training loop: mini-batches of a data set through the IR, cross-entropy plus
//! regularisers, candle autograd, an optimizer step, and the pruning masks re-applied so
//! pruned weights stay exactly zero.
//!
//! A run is deterministic for a seed: epoch `e` visits the images in
//! `shuffled_indices(len, seed, e)` order, in full batches (the remainder of an epoch is
//! skipped, as with `drop_last`). Checkpoints record the step reached; resuming skips the
//! batches already done, so an interrupted run ends with the weights of an uninterrupted
//! one.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;

use super::checkpoint::{self, Meta};
use super::data::{check_input_shape, shuffled_indices, Dataset};
use super::evaluate::{evaluate_graph, Metrics};
use super::loss::{as_matrix, cross_entropy, scores_graph};
use super::lr::LrSchedule;
use super::optim::{Optimizer, OptimizerKind};
use super::params::{Params, Role};
use super::rebatch::rebatch;
use super::{Result, TrainError};
use crate::ir::{eval, Graph};
use crate::progress;
use crate::prune::regularize;

/// Penalties added to the loss to train toward sparsity (0 turns one off).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Regularization {
    /// `lambda * sum |w|` over layer weights.
    pub l1: f64,
    /// `lambda * sum w^2` over layer weights (on top of the optimizer's weight decay).
    pub l2: f64,
    /// Group lasso over output channels of layer weights.
    pub group_lasso: f64,
    /// `lambda * sum |gamma|` over BatchNorm scales (network slimming).
    pub bn_l1: f64,
}

/// Settings of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// How the rate changes over the run.
    pub lr_schedule: LrSchedule,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerKind,
    /// Sparsity-inducing penalties.
    pub regularization: Regularization,
    /// Seed of the batch order.
    pub seed: u64,
    /// Where to save checkpoints (after every epoch, every `checkpoint_every` steps, and
    /// when stopping early); `None` saves none.
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
    /// Steps between checkpoints within an epoch (0: only at epoch ends).
    #[serde(skip)]
    pub checkpoint_every: u64,
    /// Continue from `checkpoint` when it exists.
    #[serde(skip)]
    pub resume: bool,
    /// Stop after this many steps in total (a budget; the checkpoint allows continuing).
    #[serde(skip)]
    pub max_steps: Option<u64>,
    /// Draw progress bars (when stderr is a terminal).
    #[serde(skip)]
    pub show_progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 32,
            lr: 0.01,
            lr_schedule: LrSchedule::Cosine { warmup: 0 },
            optimizer: OptimizerKind::sgd(5e-4),
            regularization: Regularization::default(),
            seed: 0,
            checkpoint: None,
            checkpoint_every: 0,
            resume: false,
            max_steps: None,
            show_progress: false,
        }
    }
}

impl TrainConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(TrainError::Config(
                "the batch size must be at least 1".into(),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(TrainError::Config(format!(
                "the learning rate {} must be a positive number",
                self.lr
            )));
        }
        let r = self.regularization;
        if [r.l1, r.l2, r.group_lasso, r.bn_l1]
            .iter()
            .any(|l| !(l.is_finite() && *l >= 0.0))
        {
            return Err(TrainError::Config(format!(
                "regularisation strengths must be finite and >= 0, got {r:?}"
            )));
        }
        self.lr_schedule.validate()?;
        self.optimizer.validate()
    }
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Steps completed at its end (over the whole run).
    pub step: u64,
    /// Mean training loss over the epoch's batches (including the regularisers).
    pub train_loss: f64,
    /// Training top-1 accuracy, on the batches as they were trained.
    pub train_top1: f64,
    /// Validation metrics, when validation data was given.
    pub validation: Option<Metrics>,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Fraction of layer weights that are zero at its end.
    pub weight_sparsity: f64,
    /// Wall time of the epoch, seconds.
    pub seconds: f64,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainReport {
    /// Epochs completed in this call, in order.
    pub epochs: Vec<EpochStats>,
    /// Steps completed over the whole run, including those of a resumed checkpoint.
    pub steps: u64,
    /// Step the run resumed from (0 for a fresh run).
    pub resumed_from: u64,
    /// True when `max_steps` stopped the run before the last epoch ended.
    pub stopped_early: bool,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Called before every training step; may prune the graph (gradual pruning). Returns true
/// when it changed weights, so the trainer takes the new values and masks.
pub trait StepHook {
    /// Runs before step `step` (0-based, over the whole run).
    fn before_step(&mut self, step: u64, graph: &mut Graph) -> Result<bool>;
}

/// Trains `graph` in place on `data`, evaluating on `validation` after every epoch.
/// `on_epoch` sees each epoch's statistics as soon as it ends.
pub fn train(
    graph: &mut Graph,
    data: &Dataset,
    validation: Option<&Dataset>,
    config: &TrainConfig,
    mut hook: Option<&mut dyn StepHook>,
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> Result<TrainReport> {
    config.validate()?;
    let input = *graph
        .inputs
        .first()
        .ok_or_else(|| TrainError::Model("the model has no input".into()))?;
    check_input_shape(data, graph.shape(input))?;
    if let Some(v) = validation {
        check_input_shape(v, graph.shape(input))?;
    }
    let batch_size = config.batch_size.min(data.len());
    let steps_per_epoch = (data.len() / batch_size) as u64;
    let total = steps_per_epoch * config.epochs as u64;
    let fingerprint = fingerprint(config, data, graph)?;

    let started = Instant::now();
    let mut params = Params::attach(graph)?;
    let mut optimizer = Optimizer::new(config.optimizer)?;
    let mut step = 0;
    if let Some(path) = config
        .checkpoint
        .as_ref()
        .filter(|p| config.resume && p.exists())
    {
        step = checkpoint::load(path, &fingerprint, &mut params, &mut optimizer)?;
        params.apply_masks()?;
    }
    let resumed_from = step;
    let mut scores = rebatch(&scores_graph(graph)?, batch_size)?;
    let classes = graph.shape(super::loss::logits_value(graph)?)[1];
    if classes < data.classes() {
        return Err(TrainError::Model(format!(
            "the model scores {classes} classes, but {} has {}",
            data.name(),
            data.classes()
        )));
    }

    let save = |params: &Params, optimizer: &Optimizer, step: u64| -> Result<()> {
        match &config.checkpoint {
            Some(path) => checkpoint::save(
                path,
                &Meta {
                    step,
                    fingerprint: fingerprint.clone(),
                },
                params,
                optimizer,
            ),
            None => Ok(()),
        }
    };

    let mut report = TrainReport {
        epochs: Vec::new(),
        steps: step,
        resumed_from,
        stopped_early: false,
        seconds: 0.0,
    };
    let bar = progress::bar(total, "training", config.show_progress);
    bar.set_position(step);
    while step < total {
        let epoch = step / steps_per_epoch;
        let order = shuffled_indices(data.len(), config.seed, epoch);
        let epoch_started = Instant::now();
        let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0, 0usize, 0usize, config.lr);
        for batch in (step % steps_per_epoch)..steps_per_epoch {
            if config.max_steps.is_some_and(|max| step >= max) {
                save(&params, &optimizer, step)?;
                report.stopped_early = true;
                break;
            }
            if let Some(hook) = hook.as_deref_mut() {
                if hook.before_step(step, graph)? {
                    params.sync_from(graph)?;
                    scores = rebatch(&scores_graph(graph)?, batch_size)?;
                }
            }
            let start = batch as usize * batch_size;
            let (x, labels) = data.batch(&order[start..start + batch_size])?;
            let logits = as_matrix(&eval(&scores, &[x])?.remove(0))?;
            let loss =
                (cross_entropy(&logits, &labels)? + penalty(&params, &config.regularization)?)?;
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(TrainError::Diverged { step, loss: value });
            }
            let grads = loss.backward()?;
            lr = config.lr_schedule.at(config.lr, step, total);
            optimizer.step(&params, &grads, lr)?;
            params.apply_masks()?;
            loss_sum += f64::from(value);
            correct += count_correct(&logits, &labels)?;
            seen += labels.len();
            step += 1;
            bar.set_position(step);
            bar.set_prefix(format!("epoch {} loss {value:.4}", epoch + 1));
            if config.checkpoint_every > 0 && step % config.checkpoint_every == 0 {
                save(&params, &optimizer, step)?;
            }
        }
        if report.stopped_early {
            break;
        }
        let validation = match validation {
            Some(v) => Some(evaluate_graph(graph, v, 256, false)?),
            None => None,
        };
        let batches = seen / batch_size;
        let stats = EpochStats {
            epoch: epoch as usize + 1,
            step,
            train_loss: loss_sum / batches.max(1) as f64,
            train_top1: correct as f64 / seen.max(1) as f64,
            validation,
            lr,
            weight_sparsity: weight_sparsity(&params)?,
            seconds: epoch_started.elapsed().as_secs_f64(),
        };
        save(&params, &optimizer, step)?;
        bar.suspend(|| on_epoch(&stats));
        report.epochs.push(stats);
    }
    bar.finish_and_clear();
    params.detach(graph)?;
    report.steps = step;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The configured penalties on the current parameters.
fn penalty(params: &Params, r: &Regularization) -> Result<Tensor> {
    let with_role = |role: Role| -> Vec<Tensor> {
        params
            .iter()
            .filter(|p| p.role == role)
            .map(|p| p.var.as_tensor().clone())
            .collect()
    };
    let weights = with_role(Role::Weight);
    let mut total = Tensor::new(0f32, &candle_core::Device::Cpu)?;
    if r.l1 > 0.0 {
        total = (total + regularize::l1(&weights, r.l1)?)?;
    }
    if r.l2 > 0.0 {
        total = (total + regularize::l2(&weights, r.l2)?)?;
    }
    if r.group_lasso > 0.0 {
        total = (total + regularize::group_lasso(&weights, 0, r.group_lasso)?)?;
    }
    if r.bn_l1 > 0.0 {
        total = (total + regularize::bn_l1(&with_role(Role::BnScale), r.bn_l1)?)?;
    }
    Ok(total)
}

/// Rows of `logits` whose highest score is the label.
fn count_correct(logits: &Tensor, labels: &[u32]) -> Result<usize> {
    let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
    Ok(predicted.iter().zip(labels).filter(|(p, l)| p == l).count())
}

/// Fraction of zero entries over all layer weights.
pub fn weight_sparsity(params: &Params) -> Result<f64> {
    let (mut zeros, mut total) = (0usize, 0usize);
    for p in params.iter().filter(|p| p.role == Role::Weight) {
        let w = p.var.as_tensor();
        zeros += w
            .eq(0f32)?
            .to_dtype(candle_core::DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()? as usize;
        total += w.elem_count();
    }
    Ok(zeros as f64 / total.max(1) as f64)
}

/// What a checkpoint must agree on: the settings that shape the run, the data and the
/// parameter shapes.
fn fingerprint(config: &TrainConfig, data: &Dataset, graph: &Graph) -> Result<String> {
    let settings = serde_json::to_string(config).map_err(|e| TrainError::Config(e.to_string()))?;
    let shapes: Vec<&[usize]> = graph
        .values
        .iter()
        .filter(|v| v.constant.is_some())
        .map(|v| v.shape.as_slice())
        .collect();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(settings.as_bytes());
    hasher.update(format!("{shapes:?}").as_bytes());
    Ok(format!(
        "{} images of '{}', settings {:08x}",
        data.len(),
        data.name(),
        hasher.finalize()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::criteria::Criterion;
    use crate::prune::mask::Granularity;
    use crate::prune::request::{prune, Method, PruneRequest};
    use crate::prune::schedule::PolynomialDecay;
    use crate::train::data::{digits, split};
    use crate::train::gradual::GradualPruning;
    use crate::train::seed_model::seed_model;

    /// 600 training and 200 validation digits.
    fn small_digits() -> (Dataset, Dataset) {
        let all = digits().unwrap();
        let (train, rest) = split(&all, 0.55, 1).unwrap();
        let (val, _) = split(&rest, 0.8, 2).unwrap();
        (train, val)
    }

    fn config(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 32,
            lr: 0.05,
            ..TrainConfig::default()
        }
    }

    fn magnitude(amount: f32) -> PruneRequest {
        PruneRequest {
            method: Method::Weights(Granularity::Unstructured),
            criterion: Criterion::L1,
            amount,
            global: false,
            round_to: 1,
            exclude: Vec::new(),
            overrides: Default::default(),
            protect_defaults: false,
        }
    }

    /// Every constant read by a node, in node order.
    fn constants(graph: &Graph) -> Vec<Vec<f32>> {
        layer_inputs(graph, |_| true)
    }

    /// The layer weights (operand 1 of every convolution and linear layer).
    fn layer_weights(graph: &Graph) -> Vec<Vec<f32>> {
        layer_inputs(graph, |slot| slot == 1)
    }

    fn layer_inputs(graph: &Graph, keep: impl Fn(usize) -> bool) -> Vec<Vec<f32>> {
        graph
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().enumerate())
            .filter(|&(slot, _)| keep(slot))
            .filter_map(|(_, &v)| graph.values[v].constant.as_ref())
            .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn the_seed_network_learns_the_digits() {
        let (train_set, val) = small_digits();
        let mut g = seed_model([1, 8, 8], 10, 0).unwrap();
        let before = evaluate_graph(&g, &val, 64, false).unwrap();
        let mut seen = Vec::new();
        let report = train(&mut g, &train_set, Some(&val), &config(4), None, &mut |s| {
            seen.push(s.epoch)
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 3, 4]);
        let after = evaluate_graph(&g, &val, 64, false).unwrap();
        assert!(before.top1 < 0.3, "untrained: {}", before.top1);
        assert!(after.top1 > 0.85, "trained: {}", after.top1);
        assert!(report.epochs[3].train_loss < report.epochs[0].train_loss);
        assert_eq!(
            report.epochs[3].validation.as_ref().unwrap().top1,
            after.top1
        );
        assert_eq!(report.steps, 4 * (train_set.len() / 32) as u64);
    }

    #[test]
    fn pruned_weights_stay_zero_while_training() {
        let (train_set, _) = small_digits();
        let mut g = seed_model([1, 8, 8], 10, 1).unwrap();
        prune(&mut g, &magnitude(0.7)).unwrap();
        let zeros_before: Vec<Vec<bool>> = layer_weights(&g)
            .iter()
            .map(|w| w.iter().map(|&x| x == 0.0).collect())
            .collect();
        let report = train(&mut g, &train_set, None, &config(1), None, &mut |_| {}).unwrap();
        let after = layer_weights(&g);
        let mut changed = 0;
        for (w, zeros) in after.iter().zip(&zeros_before) {
            for (&x, &was_zero) in w.iter().zip(zeros) {
                if was_zero {
                    assert_eq!(x, 0.0);
                } else {
                    changed += usize::from(x != 0.0);
                }
            }
        }
        assert!(changed > 1000, "training must still move the kept weights");
        let sparsity = report.epochs[0].weight_sparsity;
        assert!((sparsity - 0.7).abs() < 0.01, "{sparsity}");
    }

    #[test]
    fn an_interrupted_run_resumes_to_the_same_weights() {
        let (train_set, _) = small_digits();
        let dir = std::env::temp_dir().join(format!("lopper-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ckpt = dir.join("run.ckpt");
        let mut whole = seed_model([1, 8, 8], 10, 2).unwrap();
        let mut cfg = config(2);
        cfg.optimizer = OptimizerKind::adamw(0.01);
        cfg.lr = 0.002;
        train(&mut whole, &train_set, None, &cfg, None, &mut |_| {}).unwrap();

        let mut first = seed_model([1, 8, 8], 10, 2).unwrap();
        let interrupted = TrainConfig {
            checkpoint: Some(ckpt.clone()),
            resume: true,
            max_steps: Some(25),
            ..cfg.clone()
        };
        let report = train(
            &mut first,
            &train_set,
            None,
            &interrupted,
            None,
            &mut |_| {},
        )
        .unwrap();
        assert!(report.stopped_early && report.steps == 25);
        // A new process: the model as it was loaded, then resumed from the checkpoint.
        let mut resumed = seed_model([1, 8, 8], 10, 2).unwrap();
        let finish = TrainConfig {
            max_steps: None,
            ..interrupted
        };
        let report = train(&mut resumed, &train_set, None, &finish, None, &mut |_| {}).unwrap();
        assert_eq!(report.resumed_from, 25);
        assert_eq!(constants(&resumed), constants(&whole));

        let other = TrainConfig { lr: 0.1, ..finish };
        let err = train(&mut resumed, &train_set, None, &other, None, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("other settings"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gradual_pruning_reaches_the_final_sparsity() {
        let (train_set, _) = small_digits();
        let mut g = seed_model([1, 8, 8], 10, 3).unwrap();
        let steps = 2 * (train_set.len() / 32) as i64;
        let mut schedule = PolynomialDecay::new(0.5, 0.9, 0, steps / 2).unwrap();
        schedule.frequency = 5;
        let mut hook = GradualPruning::new(schedule, magnitude(0.0)).unwrap();
        let report = train(
            &mut g,
            &train_set,
            None,
            &config(2),
            Some(&mut hook),
            &mut |_| {},
        )
        .unwrap();
        assert!(hook.prunings() >= 3);
        let sparsity = report.epochs[1].weight_sparsity;
        assert!((sparsity - 0.9).abs() < 0.01, "{sparsity}");
    }

    #[test]
    fn data_that_does_not_fit_is_refused_before_training() {
        let (train_set, _) = small_digits();
        let mut g = seed_model([1, 28, 28], 10, 0).unwrap();
        let err = train(&mut g, &train_set, None, &config(1), None, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("1x8x8"), "{err}");
        let mut g = seed_model([1, 8, 8], 4, 0).unwrap();
        let err = train(&mut g, &train_set, None, &config(1), None, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("4 classes"), "{err}");
        let bad = TrainConfig {
            lr: -1.0,
            ..config(1)
        };
        assert!(train(&mut g, &train_set, None, &bad, None, &mut |_| {}).is_err());
    }
}
