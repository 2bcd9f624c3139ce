//! IR to `.lopper`, through the runtime's `ModelWriter`: weights of convolutions and linear
//! layers get the requested storage and, with `sparse`, the layout
//! [`choose_layout`](crate::prune::layout::choose_layout) picks from their zeros; every
//! other constant is dense f32. Only values that a node or the caller uses are written.

use candle_core::DType;
use lopper_runtime::format::{Encoding, ModelWriter};
use lopper_runtime::graph::{matrix_dims, LayoutKind, Op as Rt, Storage};

use crate::ir::Node;
use crate::ir::{Graph, Op};
use crate::prune::layout::{choose_layout, Objective};
use crate::prune::tune::fastest_layout;

/// How to write weights.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Storage of convolution and linear weights.
    pub storage: Storage,
    /// Store convolution and linear weights sparse (CSR, BSR 4x1 or 2:4) where they have
    /// enough zeros to win; dense otherwise. Weights without zeros are always dense.
    pub sparse: bool,
    /// With `sparse`: what the cost model optimises, speed (the default) or file size.
    pub objective: Objective,
    /// With `sparse`: time every candidate layout of each convolution and linear weight
    /// on this machine and keep the fastest, instead of the cost model.
    pub tune: bool,
    /// Producer string recorded in the file.
    pub producer: String,
    /// Extra metadata entries.
    pub metadata: Vec<(String, String)>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            storage: Storage::F32,
            sparse: true,
            objective: Objective::Speed,
            tune: false,
            producer: format!("lopper {}", env!("CARGO_PKG_VERSION")),
            metadata: Vec::new(),
        }
    }
}

/// Why the graph could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An op that compaction should have removed is still there.
    #[error("node '{node}': {op} has no runtime equivalent; run compaction first")]
    NotRuntime {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
    },
    /// A value is read (or is a graph output) but is neither an input, a constant nor
    /// written by an earlier node.
    #[error("value '{name}' is used before anything writes it")]
    Unwritten {
        /// Value name.
        name: String,
    },
    /// Reading a constant failed.
    #[error("constant '{name}': {error}")]
    Constant {
        /// Value name.
        name: String,
        /// What candle reported.
        error: candle_core::Error,
    },
    /// The writer refused something.
    #[error(transparent)]
    Write(#[from] lopper_runtime::format::WriteError),
}

/// Activation columns assumed for layers whose products are not one matrix product
/// (grouped and transposed convolutions).
const DEFAULT_COLUMNS: usize = 64;

/// Columns of the activation matrix one product of this layer's weights sees (output
/// pixels of an ungrouped convolution, the batch of a linear layer); `None` where the
/// kernels do not run the weights as one product (grouped convolutions).
fn tuning_columns(graph: &Graph, node: &Node, op: &Rt) -> Option<usize> {
    let out = graph.shape(*node.outputs.first()?);
    match op {
        Rt::Conv2d(c) if c.groups == 1 && out.len() == 4 => Some(out[2] * out[3]),
        Rt::Linear => out.first().copied(),
        _ => None,
    }
}

/// Serialises `graph` into the bytes of a `.lopper` file.
pub fn export(graph: &Graph, options: &ExportOptions) -> Result<Vec<u8>, ExportError> {
    let mut w = ModelWriter::new(&options.producer);
    for (k, v) in &options.metadata {
        w.metadata(k, v);
    }
    let mut ids: Vec<Option<usize>> = vec![None; graph.values.len()];
    for &v in &graph.inputs {
        let value = &graph.values[v];
        ids[v] = Some(w.input(&value.name, &value.shape));
    }
    for node in &graph.nodes {
        let Op::Runtime(op) = &node.op else {
            return Err(ExportError::NotRuntime {
                node: node.name.clone(),
                op: node.op.name(),
            });
        };
        let weight_slot = matches!(op, Rt::Conv2d(_) | Rt::Linear).then_some(1);
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for (slot, &v) in node.inputs.iter().enumerate() {
            if ids[v].is_none() {
                let value = &graph.values[v];
                let data = value
                    .constant
                    .as_ref()
                    .ok_or_else(|| ExportError::Unwritten {
                        name: value.name.clone(),
                    })?;
                let values: Vec<f32> = data
                    .to_dtype(DType::F32)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1())
                    .map_err(|error| ExportError::Constant {
                        name: value.name.clone(),
                        error,
                    })?;
                let encoding = if Some(slot) == weight_slot {
                    let layout = match matrix_dims(&value.shape) {
                        Some((rows, cols)) if options.sparse => {
                            let n = tuning_columns(graph, node, op);
                            match n.filter(|_| options.tune) {
                                Some(n) => {
                                    fastest_layout(&values, rows, cols, n, options.storage).0
                                }
                                None => choose_layout(
                                    &values,
                                    rows,
                                    cols,
                                    n.unwrap_or(DEFAULT_COLUMNS),
                                    options.objective,
                                ),
                            }
                        }
                        _ => LayoutKind::Dense,
                    };
                    Encoding {
                        layout,
                        storage: options.storage,
                    }
                } else {
                    Encoding::DENSE_F32
                };
                ids[v] = Some(w.weight(&value.name, &value.shape, &values, encoding)?);
            }
            inputs.push(ids[v].expect("just assigned"));
        }
        let mut outputs = Vec::with_capacity(node.outputs.len());
        for &v in &node.outputs {
            let value = &graph.values[v];
            let id = w.tensor(&value.name, &value.shape);
            ids[v] = Some(id);
            outputs.push(id);
        }
        w.node(&node.name, op.clone(), &inputs, &outputs, node.activation);
    }
    for &v in &graph.outputs {
        let id = ids[v].ok_or_else(|| ExportError::Unwritten {
            name: graph.values[v].name.clone(),
        })?;
        w.output(id);
    }
    Ok(w.finish()?)
}
