//! Accuracy of a classifier on a data set: an IR graph in the candle executor, or a
//! `.lopper` file in the runtime. Both give per-image predictions, so the two can be
//! compared image by image.

use candle_core::Tensor;
use lopper_runtime::graph::Op as Rt;
use lopper_runtime::{Model, Session};

use super::data::{check_input_shape, Dataset};
use super::loss::{cross_entropy, log_softmax, logits_value, scores_graph};
use super::rebatch::rebatch;
use super::{Result, TrainError};
use crate::ir::{eval, Graph};
use crate::progress;

/// What an evaluation measured.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Images evaluated.
    pub count: usize,
    /// Fraction whose highest score is the label.
    pub top1: f64,
    /// Fraction whose label is among the five highest scores.
    pub top5: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Predicted class per image, in data set order.
    #[serde(skip)]
    pub predictions: Vec<u32>,
}

/// Running sums over batches.
#[derive(Default)]
struct Tally {
    top1: usize,
    top5: usize,
    loss_sum: f64,
    predictions: Vec<u32>,
}

impl Tally {
    /// Adds a batch of scores `[n, classes]` (log-probabilities when `log_probs`, else any
    /// scores) with their labels.
    fn add(&mut self, scores: &[f32], classes: usize, labels: &[u32], log_probs: &[f32]) {
        for (i, &label) in labels.iter().enumerate() {
            let row = &scores[i * classes..(i + 1) * classes];
            let target = row[label as usize];
            let above = row.iter().filter(|&&s| s > target).count();
            let best = row
                .iter()
                .enumerate()
                .fold(0, |best, (c, &s)| if s > row[best] { c } else { best });
            self.top1 += usize::from(above == 0);
            self.top5 += usize::from(above < 5);
            self.loss_sum -= f64::from(log_probs[i * classes + label as usize]);
            self.predictions.push(best as u32);
        }
    }

    fn finish(self) -> Metrics {
        let n = self.predictions.len().max(1) as f64;
        Metrics {
            count: self.predictions.len(),
            top1: self.top1 as f64 / n,
            top5: self.top5 as f64 / n,
            loss: self.loss_sum / n,
            predictions: self.predictions,
        }
    }
}

/// Evaluates an IR classifier on `data` in batches of `batch_size`.
pub fn evaluate_graph(
    graph: &Graph,
    data: &Dataset,
    batch_size: usize,
    show_progress: bool,
) -> Result<Metrics> {
    let scores_only = scores_graph(graph)?;
    let input = *graph
        .inputs
        .first()
        .ok_or_else(|| TrainError::Model("the model has no input".into()))?;
    check_input_shape(data, graph.shape(input))?;
    let classes = class_count(graph.shape(logits_value(graph)?), data)?;
    let batch_size = batch_size.clamp(1, data.len());
    let full = rebatch(&scores_only, batch_size)?;
    let bar = progress::bar(data.len() as u64, "evaluating", show_progress);
    let mut tally = Tally::default();
    for start in (0..data.len()).step_by(batch_size) {
        let indices: Vec<usize> = (start..(start + batch_size).min(data.len())).collect();
        let (x, labels) = data.batch(&indices)?;
        let graph = if indices.len() == batch_size {
            &full
        } else {
            &rebatch(&scores_only, indices.len())?
        };
        let scores = super::loss::as_matrix(&eval(graph, &[x])?.remove(0))?;
        let log_probs = log_softmax(&scores)?;
        tally.add(
            &scores.flatten_all()?.to_vec1::<f32>()?,
            classes,
            &labels,
            &log_probs.flatten_all()?.to_vec1::<f32>()?,
        );
        bar.inc(indices.len() as u64);
    }
    bar.finish_and_clear();
    Ok(tally.finish())
}

/// Evaluates a `.lopper` classifier on `data` in the runtime, batch by batch at the file's
/// batch size (a last, partial batch is padded with zeros whose outputs are ignored).
pub fn evaluate_model(model: &Model<'_>, data: &Dataset, show_progress: bool) -> Result<Metrics> {
    let runtime = |e: &dyn std::fmt::Display| TrainError::Runtime(e.to_string());
    let (inputs, outputs) = (model.inputs(), model.outputs());
    let ([input], [output]) = (inputs.as_slice(), outputs.as_slice()) else {
        return Err(TrainError::Model(format!(
            "the model has {} inputs and {} outputs; evaluation needs one image input and one output of class scores",
            inputs.len(),
            outputs.len()
        )));
    };
    check_input_shape(data, input.shape)?;
    let batch = input.shape[0].max(1);
    let classes = class_count(output.shape, data)?;
    let probabilities = ends_in_softmax(model);
    let mut session = Session::new(model).map_err(|e| runtime(&e))?;
    let bar = progress::bar(data.len() as u64, "evaluating", show_progress);
    let mut tally = Tally::default();
    for start in (0..data.len()).step_by(batch) {
        let indices: Vec<usize> = (start..(start + batch).min(data.len())).collect();
        let (x, labels) = data.batch(&indices)?;
        let pixels = x.flatten_all()?.to_vec1::<f32>()?;
        let slot = session.input_mut(0).map_err(|e| runtime(&e))?;
        slot.fill(0.0);
        slot[..pixels.len()].copy_from_slice(&pixels);
        session.run();
        let out = session.output(0).map_err(|e| runtime(&e))?;
        let scores = &out[..indices.len() * classes];
        let log_probs: Vec<f32> = if probabilities {
            scores
                .iter()
                .map(|p| p.max(f32::MIN_POSITIVE).ln())
                .collect()
        } else {
            let t =
                Tensor::from_slice(scores, (indices.len(), classes), &candle_core::Device::Cpu)?;
            log_softmax(&t)?.flatten_all()?.to_vec1()?
        };
        tally.add(scores, classes, &labels, &log_probs);
        bar.inc(indices.len() as u64);
    }
    bar.finish_and_clear();
    Ok(tally.finish())
}

/// Classes of a score shape `[batch, classes, 1, ...]`, checked against the data's labels.
fn class_count(shape: &[usize], data: &Dataset) -> Result<usize> {
    let classes = shape.get(1).copied().unwrap_or(0);
    if classes < data.classes() {
        return Err(TrainError::Model(format!(
            "the model scores {classes} classes, but {} has {}",
            data.name(),
            data.classes()
        )));
    }
    Ok(classes)
}

/// Whether the model's output is computed by a Softmax (so it holds probabilities).
fn ends_in_softmax(model: &Model<'_>) -> bool {
    let graph = model.graph();
    let Some(&out) = graph.outputs.first() else {
        return false;
    };
    graph
        .nodes
        .iter()
        .any(|n| n.outputs.contains(&out) && matches!(n.op, Rt::Softmax { .. }))
}

/// Mean cross-entropy of a graph on one batch, for callers that only need the loss.
pub fn batch_loss(graph: &Graph, x: Tensor, labels: &[u32]) -> Result<Tensor> {
    let scores = super::loss::as_matrix(&eval(graph, &[x])?.remove(0))?;
    cross_entropy(&scores, labels)
}
