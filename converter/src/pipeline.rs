//! ONNX file to `.lopper` bytes: import, compact, export, and a check that the runtime
//! accepts the result. The CLI and the tests share this one path.

use std::path::Path;

use crate::compact::{compact, CompactStats};
use crate::export::{export, ExportError, ExportOptions};
use crate::import::{import, ImportError, ImportOptions};
use crate::inspect::lopper_layers;
use crate::ir::Graph;
use crate::onnx::{load, OnnxError};
use crate::prune::request::{prune, PruneRequest, PruneSummary};
use crate::prune::PruneError;
use crate::report::{self, PruneReport};

/// Choices for a conversion.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// How to read the ONNX file.
    pub import: ImportOptions,
    /// How to write weights.
    pub export: ExportOptions,
}

/// A converted model.
pub struct Converted {
    /// The compacted IR (the reference for the file).
    pub graph: Graph,
    /// The `.lopper` file.
    pub bytes: Vec<u8>,
    /// What compaction did.
    pub stats: CompactStats,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Reading the file failed.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// Import failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A compaction pass failed on a tensor operation.
    #[error("compaction failed: {0}")]
    Compact(candle_core::Error),
    /// Writing failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The pruning request cannot be carried out.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// The report could not be serialised.
    #[error("cannot write the report: {0}")]
    Report(#[from] serde_json::Error),
    /// Fine-tuning failed.
    #[error(transparent)]
    Train(Box<crate::train::TrainError>),
    /// The runtime refused the written file: a converter bug.
    #[error("the runtime refuses the converted model (please report this): {0}")]
    Verify(lopper_runtime::LoadError),
}

impl From<crate::train::TrainError> for ConvertError {
    fn from(e: crate::train::TrainError) -> Self {
        ConvertError::Train(Box::new(e))
    }
}

/// Imports, compacts and exports an ONNX file.
pub fn convert_file(path: &Path, options: &ConvertOptions) -> Result<Converted, ConvertError> {
    let model = load(path)?;
    let mut graph = import(&model, &options.import)?;
    let stats = compact(&mut graph).map_err(ConvertError::Compact)?;
    let bytes = export(&graph, &options.export)?;
    lopper_runtime::Model::from_vec(bytes.clone()).map_err(ConvertError::Verify)?;
    Ok(Converted {
        graph,
        bytes,
        stats,
    })
}

/// A pruned model.
pub struct Pruned {
    /// The pruned, compacted IR.
    pub graph: Graph,
    /// The `.lopper` file, with the report in its metadata.
    pub bytes: Vec<u8>,
    /// What pruning changed.
    pub report: PruneReport,
}

/// Imports an ONNX file, prunes it as `request` says, compacts and exports it (sparse
/// layouts where they win), and reports against the unpruned conversion.
pub fn prune_file(
    path: &Path,
    options: &ConvertOptions,
    request: &PruneRequest,
    description: String,
) -> Result<Pruned, ConvertError> {
    let model = load(path)?;
    let graph = import(&model, &options.import)?;
    prune_graph(graph, &options.export, description, |g| {
        Ok(prune(g, request)?)
    })
}

/// Prunes an uncompacted graph with `transform` (pruning, and fine-tuning when wanted),
/// compacts and exports it (sparse layouts where they win), and reports against the
/// unpruned graph. `transform` returns what pruning changed.
pub fn prune_graph(
    mut graph: Graph,
    export_options: &ExportOptions,
    description: String,
    transform: impl FnOnce(&mut Graph) -> Result<PruneSummary, ConvertError>,
) -> Result<Pruned, ConvertError> {
    let mut baseline = graph.clone();
    compact(&mut baseline).map_err(ConvertError::Compact)?;
    let dense = ExportOptions {
        sparse: false,
        ..export_options.clone()
    };
    let before = verified(export(&baseline, &dense)?)?;

    let summary = transform(&mut graph)?;
    compact(&mut graph).map_err(ConvertError::Compact)?;
    let after = verified(export(&graph, export_options)?)?;
    let report = report::build(
        description,
        &lopper_layers(&before),
        &lopper_layers(&after),
        summary.groups,
        [before.bytes().len(), after.bytes().len()],
    );
    let mut with_report = export_options.clone();
    with_report.metadata.push((
        report::METADATA_KEY.to_string(),
        serde_json::to_string(&report)?,
    ));
    let bytes = export(&graph, &with_report)?;
    verified(bytes.clone())?;
    Ok(Pruned {
        graph,
        bytes,
        report,
    })
}

fn verified(bytes: Vec<u8>) -> Result<lopper_runtime::Model<'static>, ConvertError> {
    lopper_runtime::Model::from_vec(bytes).map_err(ConvertError::Verify)
}

/// The smallest channel fraction (to 1/1000) whose pruning removes at least `target` of
/// the MACs, found by bisection on pruned copies.
pub fn ratio_for_macs(
    path: &Path,
    options: &ConvertOptions,
    request: &PruneRequest,
    target: f32,
) -> Result<f32, ConvertError> {
    if !(0.0..1.0).contains(&target) {
        return Err(PruneError::Sparsity(target).into());
    }
    let model = load(path)?;
    let graph = import(&model, &options.import)?;
    let macs = |ratio: f32| -> Result<usize, ConvertError> {
        let mut g = graph.clone();
        if ratio > 0.0 {
            prune(
                &mut g,
                &PruneRequest {
                    amount: ratio,
                    ..request.clone()
                },
            )?;
        }
        compact(&mut g).map_err(ConvertError::Compact)?;
        Ok(crate::inspect::totals(&crate::inspect::ir_layers(&g)).macs)
    };
    let base = macs(0.0)? as f64;
    let removed =
        |ratio: f32| -> Result<f64, ConvertError> { Ok(1.0 - macs(ratio)? as f64 / base) };
    let (mut lo, mut hi) = (0.0f32, 0.95f32);
    if removed(hi)? < f64::from(target) {
        return Err(PruneError::NotPrunable {
            layer: "(whole model)".into(),
            reason: format!(
                "even 95% of the prunable channels remove less than {:.0}% of the MACs",
                target * 100.0
            ),
        }
        .into());
    }
    while hi - lo > 1e-3 {
        let mid = (lo + hi) / 2.0;
        if removed(mid)? >= f64::from(target) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}
