//! ONNX file to `.lopper` bytes: import, compact, export, and a check that the runtime
//! accepts the result. The CLI and the tests share this one path.

use std::path::Path;

use crate::compact::{compact, CompactStats};
use crate::export::{export, ExportError, ExportOptions};
use crate::import::{import, ImportError, ImportOptions};
use crate::ir::Graph;
use crate::onnx::{load, OnnxError};

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
    /// The runtime refused the written file: a converter bug.
    #[error("the runtime refuses the converted model (please report this): {0}")]
    Verify(lopper_runtime::LoadError),
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
