//! Training options shared by `lopper train` and `lopper prune --data`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use lopper_converter::train::data::{self, Dataset};
use lopper_converter::train::lr::LrSchedule;
use lopper_converter::train::optim::OptimizerKind;
use lopper_converter::train::trainer::Regularization;
use lopper_converter::train::{EpochStats, TrainConfig};

/// How to train.
#[derive(clap::Args, Clone)]
pub struct TrainArgs {
    /// Training data: digits (embedded), fashion-mnist[:DIR], idx:IMAGES,LABELS,
    /// folder:DIR (one sub-folder per class), npy:INPUTS,LABELS.
    #[arg(long, value_name = "SPEC")]
    pub data: Option<String>,
    /// Passes over the training data.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step.
    #[arg(long = "batch-size", default_value_t = 32)]
    pub batch_size: usize,
    /// Base learning rate (default: 0.01 for sgd, 0.001 for adamw).
    #[arg(long)]
    pub lr: Option<f64>,
    /// sgd (momentum 0.9) or adamw.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// Weight decay (coupled for sgd, decoupled for adamw).
    #[arg(long = "weight-decay", default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Learning-rate schedule: cosine (to zero over the run), constant.
    #[arg(long = "lr-schedule", default_value = "cosine")]
    pub lr_schedule: String,
    /// Fraction of the training data held out for validation (stratified).
    #[arg(long, default_value_t = 0.1)]
    pub validation: f64,
    /// L1 penalty on layer weights (drives single weights to zero).
    #[arg(long, default_value_t = 0.0)]
    pub l1: f64,
    /// Group-lasso penalty on output channels (drives whole channels to zero).
    #[arg(long = "group-lasso", default_value_t = 0.0)]
    pub group_lasso: f64,
    /// L1 penalty on BatchNorm scales (network slimming).
    #[arg(long = "bn-l1", default_value_t = 0.0)]
    pub bn_l1: f64,
    /// Seed of the batch order and the validation split.
    #[arg(long = "train-seed", default_value_t = 0)]
    pub train_seed: u64,
    /// Save a checkpoint here after every epoch; with --resume, continue from it.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from --checkpoint if it exists.
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
}

impl TrainArgs {
    /// The run's settings, with `epochs` when --epochs was not given.
    pub fn config(&self, epochs: usize) -> Result<TrainConfig> {
        let optimizer = match self.optimizer.as_str() {
            "sgd" => OptimizerKind::sgd(self.weight_decay),
            "adamw" => OptimizerKind::adamw(self.weight_decay),
            other => bail!("unknown --optimizer {other}: use sgd or adamw"),
        };
        let lr_schedule = match self.lr_schedule.as_str() {
            "cosine" => LrSchedule::Cosine { warmup: 0 },
            "constant" => LrSchedule::Constant,
            other => bail!("unknown --lr-schedule {other}: use cosine or constant"),
        };
        let default_lr = if self.optimizer == "adamw" {
            1e-3
        } else {
            0.01
        };
        Ok(TrainConfig {
            epochs: self.epochs.unwrap_or(epochs),
            batch_size: self.batch_size,
            lr: self.lr.unwrap_or(default_lr),
            lr_schedule,
            optimizer,
            regularization: Regularization {
                l1: self.l1,
                l2: 0.0,
                group_lasso: self.group_lasso,
                bn_l1: self.bn_l1,
            },
            seed: self.train_seed,
            checkpoint: self.checkpoint.clone(),
            checkpoint_every: 0,
            resume: self.resume,
            max_steps: None,
            show_progress: true,
        })
    }

    /// Loads --data and splits off the validation set.
    pub fn load(&self) -> Result<Option<(Dataset, Dataset)>> {
        let Some(spec) = &self.data else {
            return Ok(None);
        };
        let all = data::open(spec).with_context(|| format!("cannot load --data {spec}"))?;
        let (train, validation) = data::split(&all, self.validation, self.train_seed)?;
        Ok(Some((train, validation)))
    }
}

/// Prints one line per epoch.
pub fn print_epoch(stats: &EpochStats) {
    let validation = stats
        .validation
        .as_ref()
        .map(|m| format!(", validation top-1 {:.2}%", m.top1 * 100.0))
        .unwrap_or_default();
    eprintln!(
        "epoch {:>3}: loss {:.4}, train top-1 {:.2}%{validation}, sparsity {:.1}%, lr {:.2e}, {:.1} s",
        stats.epoch,
        stats.train_loss,
        stats.train_top1 * 100.0,
        stats.weight_sparsity * 100.0,
        stats.lr,
        stats.seconds
    );
}
