//! The pruning report: per layer and in total, parameters, MACs, sparsity and bytes before
//! and after. Printed as a table, written as JSON, and stored in the `.lopper` metadata.

use serde::Serialize;

use crate::inspect::Layer;
use crate::prune::structural::GroupChange;

/// Metadata key under which the report travels inside the `.lopper` file.
pub const METADATA_KEY: &str = "lopper.pruning_report";

/// One layer before and after.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LayerDelta {
    /// Node name.
    pub name: String,
    /// Op name.
    pub op: String,
    /// Parameters before and after (structural pruning removes them).
    pub params: [usize; 2],
    /// Nonzero parameters after.
    pub nonzero_after: usize,
    /// MACs before and after (dense kernels; sparse kernels skip the zeros).
    pub macs: [usize; 2],
    /// Fraction of zero weights after.
    pub sparsity: f32,
    /// Stored layout after ("dense f32", "csr f32", ...).
    pub layout: String,
    /// Weight bytes in the file before and after.
    pub bytes: [usize; 2],
}

/// The whole report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PruneReport {
    /// The request in words, e.g. "channel pruning, l1, 50% per layer".
    pub request: String,
    /// Every layer of the pruned model with weights or MACs.
    pub layers: Vec<LayerDelta>,
    /// Channel groups before and after (structural methods).
    pub groups: Vec<GroupChange>,
    /// Parameters before and after.
    pub params: [usize; 2],
    /// Nonzero parameters after.
    pub nonzero_after: usize,
    /// MACs before and after.
    pub macs: [usize; 2],
    /// `.lopper` file bytes before (dense, unpruned) and after.
    pub file_bytes: [usize; 2],
    /// Accuracy before and after, when pruning was given data to evaluate and fine-tune on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
}

/// Validation accuracy through pruning and fine-tuning.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Accuracy {
    /// The validation data.
    pub data: String,
    /// Top-1 of the unpruned model.
    pub dense_top1: f64,
    /// Top-1 right after pruning, before fine-tuning (one-shot pruning only).
    pub pruned_top1: Option<f64>,
    /// Top-1 of the pruned, fine-tuned model in the converter's reference executor.
    pub final_top1: f64,
    /// Top-1 of the written `.lopper` file in the runtime.
    pub runtime_top1: f64,
    /// Epochs of fine-tuning.
    pub epochs: usize,
}

/// Builds the report from the layer rows of the unpruned and the pruned model (both from
/// `inspect::lopper_layers`), matched by name.
pub fn build(
    request: String,
    before: &[Layer],
    after: &[Layer],
    groups: Vec<GroupChange>,
    file_bytes: [usize; 2],
) -> PruneReport {
    let layers: Vec<LayerDelta> = after
        .iter()
        .filter(|l| l.params > 0 || l.macs > 0)
        .map(|a| {
            let b = before.iter().find(|b| b.name == a.name);
            let nonzero = ((1.0 - a.sparsity) * a.params as f32).round() as usize;
            LayerDelta {
                name: a.name.clone(),
                op: a.op.clone(),
                params: [b.map_or(a.params, |b| b.params), a.params],
                nonzero_after: nonzero,
                macs: [b.map_or(a.macs, |b| b.macs), a.macs],
                sparsity: a.sparsity,
                layout: a.layout.clone(),
                bytes: [b.map_or(a.bytes, |b| b.bytes), a.bytes],
            }
        })
        .collect();
    let sum = |f: &dyn Fn(&Layer) -> usize, rows: &[Layer]| rows.iter().map(f).sum::<usize>();
    PruneReport {
        request,
        params: [sum(&|l| l.params, before), sum(&|l| l.params, after)],
        nonzero_after: layers.iter().map(|l| l.nonzero_after).sum(),
        macs: [sum(&|l| l.macs, before), sum(&|l| l.macs, after)],
        layers,
        groups,
        file_bytes,
        accuracy: None,
    }
}

impl PruneReport {
    /// A terminal table, one line per layer, then the totals.
    pub fn table(&self) -> String {
        let width = self
            .layers
            .iter()
            .map(|l| l.name.len())
            .max()
            .unwrap_or(5)
            .clamp(5, 36);
        let mut out = format!(
            "{:<width$} {:<14} {:>19} {:>9} {:>23} {:<11}\n",
            "layer", "op", "params before>after", "sparsity", "MACs before>after", "layout"
        );
        for l in &self.layers {
            let mut name = l.name.clone();
            if name.len() > width {
                name = format!("…{}", &name[name.len() - width + 1..]);
            }
            out += &format!(
                "{name:<width$} {:<14} {:>19} {:>8.1}% {:>23} {:<11}\n",
                l.op,
                format!("{}>{}", l.params[0], l.params[1]),
                l.sparsity * 100.0,
                format!("{}>{}", l.macs[0], l.macs[1]),
                l.layout
            );
        }
        let ratio = |a: usize, b: usize| if a == 0 { 1.0 } else { b as f64 / a as f64 };
        out += &format!(
            "total: params {} > {} ({:.1}%), nonzero {}, MACs {:.1}M > {:.1}M ({:.1}%), file {} > {} bytes ({:.1}%)\n",
            self.params[0],
            self.params[1],
            100.0 * ratio(self.params[0], self.params[1]),
            self.nonzero_after,
            self.macs[0] as f64 / 1e6,
            self.macs[1] as f64 / 1e6,
            100.0 * ratio(self.macs[0], self.macs[1]),
            self.file_bytes[0],
            self.file_bytes[1],
            100.0 * ratio(self.file_bytes[0], self.file_bytes[1]),
        );
        if let Some(a) = &self.accuracy {
            let pruned = a
                .pruned_top1
                .map(|t| format!(", {:.2}% right after pruning", t * 100.0))
                .unwrap_or_default();
            out += &format!(
                "accuracy on {}: top-1 {:.2}% dense{pruned}, {:.2}% after {} epochs of fine-tuning, {:.2}% in the runtime\n",
                a.data,
                a.dense_top1 * 100.0,
                a.final_top1 * 100.0,
                a.epochs,
                a.runtime_top1 * 100.0
            );
        }
        out
    }
}
