//! ONNX to IR: resolves names, folds constant sub-graphs, converts every other node to IR
//! ops with static shapes, and reports every node it cannot convert at once.

mod convert;
mod convert_more;
mod fold;
pub mod normalize;

use std::collections::{HashMap, HashSet};
use std::fmt;

use candle_core::Tensor;

use crate::ir::{Graph, ValueId};
use crate::onnx::proto::{
    tensor_shape_proto::dimension::Value as Dim, type_proto, ModelProto, NodeProto,
};
use crate::onnx::{to_tensor, Attrs, OnnxError};

pub use convert::SUPPORTED;

/// Choices the ONNX file leaves open.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Size of a symbolic or unknown first dimension (the batch).
    pub batch: usize,
    /// Explicit shapes for graph inputs, overriding the file.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Graph inputs to treat as constants with these values.
    pub freeze: HashMap<String, Tensor>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch: 1,
            input_shapes: HashMap::new(),
            freeze: HashMap::new(),
        }
    }
}

/// A node that could not be converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Node name (or its first output when unnamed).
    pub node: String,
    /// ONNX op type.
    pub op: String,
    /// What stops it.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node '{}' ({}): {}", self.node, self.op, self.reason)
    }
}

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file itself is unreadable.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// Some nodes cannot be converted; all of them are listed.
    #[error("{} node(s) cannot be converted:\n  {}", .0.len(), .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Nodes(Vec<Problem>),
    /// A graph input or output cannot be used.
    #[error("graph {kind} '{name}': {reason}")]
    Graph {
        /// "input" or "output".
        kind: &'static str,
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Imports an ONNX model.
pub fn import(model: &ModelProto, options: &ImportOptions) -> Result<Graph, ImportError> {
    let onnx = model.graph.as_ref().ok_or_else(|| ImportError::Graph {
        kind: "input",
        name: String::new(),
        reason: "the model has no graph".into(),
    })?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
        .map_or(1, |o| o.version());

    let mut cx = Importer {
        graph: Graph::default(),
        names: HashMap::new(),
        opset,
    };
    for init in &onnx.initializer {
        let id = cx.graph.constant(init.name(), to_tensor(init)?);
        cx.names.insert(init.name().to_string(), id);
    }
    let declared: Vec<&str> = onnx.input.iter().map(|i| i.name()).collect();
    if let Some(unknown) = options
        .input_shapes
        .keys()
        .find(|k| !declared.contains(&k.as_str()))
    {
        return Err(ImportError::Graph {
            kind: "input",
            name: unknown.clone(),
            reason: format!(
                "is not an input of the model (its inputs are {})",
                declared
                    .iter()
                    .map(|d| format!("'{d}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    for input in &onnx.input {
        let name = input.name();
        if cx.names.contains_key(name) {
            continue; // an initializer with a default value
        }
        let id = match options.freeze.get(name) {
            Some(t) => cx.graph.constant(name, t.clone()),
            None => {
                let shape = input_shape(input, options)?;
                let id = cx.graph.activation(name, shape);
                cx.graph.inputs.push(id);
                id
            }
        };
        cx.names.insert(name.to_string(), id);
    }

    let mut problems = Vec::new();
    let mut poisoned: HashSet<String> = HashSet::new();
    for (index, node) in onnx.node.iter().enumerate() {
        let name = node_name(node, index);
        let op = node.op_type();
        if node.input.iter().any(|i| poisoned.contains(i)) {
            poisoned.extend(node.output.iter().cloned());
            continue;
        }
        let result = if !node.domain().is_empty() && node.domain() != "ai.onnx" {
            Err(format!("domain '{}' is not supported", node.domain()))
        } else if !SUPPORTED.contains(&op) && !fold::FOLDABLE.contains(&op) && op != "Constant" {
            Err("this op is not supported".to_string())
        } else {
            cx.node(node, &name)
        };
        if let Err(reason) = result {
            problems.push(Problem {
                node: name,
                op: op.to_string(),
                reason,
            });
            poisoned.extend(node.output.iter().cloned());
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Nodes(problems));
    }

    for output in &onnx.output {
        let fail = |reason: &str| ImportError::Graph {
            kind: "output",
            name: output.name().to_string(),
            reason: reason.to_string(),
        };
        let &id = cx
            .names
            .get(output.name())
            .ok_or_else(|| fail("no node produces it"))?;
        if cx.graph.values[id].constant.is_some() {
            return Err(fail(
                "it is a constant: the model computes nothing from its inputs",
            ));
        }
        cx.graph.outputs.push(id);
    }
    Ok(cx.graph)
}

fn node_name(node: &NodeProto, index: usize) -> String {
    match (node.name(), node.output.first()) {
        (n, _) if !n.is_empty() => n.to_string(),
        (_, Some(out)) if !out.is_empty() => format!("{}_{out}", node.op_type()),
        _ => format!("{}_{index}", node.op_type()),
    }
}

/// Static shape of a graph input: explicit override, file dims, batch for a symbolic first
/// dimension.
fn input_shape(
    input: &crate::onnx::proto::ValueInfoProto,
    options: &ImportOptions,
) -> Result<Vec<usize>, ImportError> {
    let name = input.name();
    let fail = |reason: String| ImportError::Graph {
        kind: "input",
        name: name.to_string(),
        reason,
    };
    if let Some(shape) = options.input_shapes.get(name) {
        if shape.contains(&0) {
            return Err(fail(format!("shape {shape:?} has a zero dimension")));
        }
        return Ok(shape.clone());
    }
    if options.batch == 0 {
        return Err(fail("the batch size must be at least 1".into()));
    }
    let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        _ => return Err(fail("is not a tensor".into())),
    };
    let dims = tensor
        .shape
        .as_ref()
        .ok_or_else(|| fail("has no shape; give one with --input-shape".into()))?;
    dims.dim
        .iter()
        .enumerate()
        .map(|(i, d)| match d.value.as_ref() {
            Some(Dim::DimValue(v)) if *v > 0 => Ok(*v as usize),
            _ if i == 0 => Ok(options.batch),
            _ => Err(fail(format!(
                "dimension {i} is not fixed; give the shape with --input-shape {name}=D0,D1,..."
            ))),
        })
        .collect()
}

/// Import state: the graph so far and the value each ONNX name refers to.
pub(crate) struct Importer {
    graph: Graph,
    names: HashMap<String, ValueId>,
    opset: i64,
}

impl Importer {
    fn node(&mut self, node: &NodeProto, name: &str) -> Result<(), String> {
        let attrs = Attrs::new(node);
        let op = node.op_type();
        if op == "Constant" {
            let value = constant_value(&attrs).map_err(|e| e.to_string())?;
            let id = self.graph.constant(&node.output[0], value);
            self.names.insert(node.output[0].clone(), id);
            return Ok(());
        }
        let mut inputs = Vec::with_capacity(node.input.len());
        for input in &node.input {
            if input.is_empty() {
                inputs.push(None);
                continue;
            }
            let id = *self
                .names
                .get(input)
                .ok_or_else(|| format!("reads '{input}', which no earlier node produces"))?;
            inputs.push(Some(id));
        }
        // Shape and Size only need the static shape; everything else needs constants.
        let foldable = fold::FOLDABLE.contains(&op)
            && (matches!(op, "Shape" | "Size")
                || inputs
                    .iter()
                    .flatten()
                    .all(|&v| self.graph.values[v].constant.is_some()));
        if foldable {
            let values: Vec<Option<Tensor>> = inputs
                .iter()
                .map(|v| {
                    v.map(|v| match &self.graph.values[v].constant {
                        Some(t) => t.clone(),
                        None => shape_stub(&self.graph.values[v].shape),
                    })
                })
                .collect();
            let outputs = fold::fold(op, &attrs, self.opset, &values)?;
            for (name, value) in node.output.iter().zip(outputs) {
                let id = self.graph.constant(name, value);
                self.names.insert(name.clone(), id);
            }
            return Ok(());
        }
        convert::convert(self, node, name, &attrs, &inputs)
    }
}

/// A zero-sized stand-in with the right dims for Shape/Size on an activation: candle
/// tensors carry their shape, and a broadcast zero costs nothing.
fn shape_stub(shape: &[usize]) -> Tensor {
    Tensor::zeros((), candle_core::DType::F32, &candle_core::Device::Cpu)
        .and_then(|z| z.broadcast_as(shape))
        .expect("broadcasting a scalar to any shape succeeds")
}

/// The value of a `Constant` node, from whichever attribute holds it.
fn constant_value(attrs: &Attrs) -> Result<Tensor, OnnxError> {
    use candle_core::Device;
    if let Some(t) = attrs.tensor("value")? {
        return Ok(t);
    }
    let cpu = &Device::Cpu;
    let made = if attrs.has("value_float") {
        Tensor::new(attrs.float("value_float", 0.0), cpu)
    } else if let Some(v) = attrs.floats("value_floats") {
        Tensor::new(v, cpu)
    } else if attrs.has("value_int") {
        Tensor::new(attrs.int("value_int", 0), cpu)
    } else if let Some(v) = attrs.ints("value_ints") {
        Tensor::new(v, cpu)
    } else {
        return Err(attrs.invalid(
            "value",
            "is missing (sparse and string constants are not supported)",
        ));
    };
    made.map_err(|e| attrs.invalid("value", &e.to_string()))
}
