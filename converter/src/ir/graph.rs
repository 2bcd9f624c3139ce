//! Values and nodes, in execution order.

use candle_core::Tensor;
use lopper_runtime::graph::Activation;

use super::Op;

/// Index of a value in [`Graph::values`].
pub type ValueId = usize;

/// A tensor of the graph: a constant (weights, biases, folded shapes) or an activation
/// computed at run time.
#[derive(Clone, Debug)]
pub struct Value {
    /// Name from the source model.
    pub name: String,
    /// Static shape.
    pub shape: Vec<usize>,
    /// The data, for constants: F32 for floats, I64 for integers.
    pub constant: Option<Tensor>,
}

/// One operation.
#[derive(Clone, Debug)]
pub struct Node {
    /// Name from the source model (or made up from the op and output when it had none).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Values read.
    pub inputs: Vec<ValueId>,
    /// Values written.
    pub outputs: Vec<ValueId>,
    /// Applied to the (single) output; set by activation fusion.
    pub activation: Activation,
}

/// A whole model.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Every value.
    pub values: Vec<Value>,
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// Values the caller feeds.
    pub inputs: Vec<ValueId>,
    /// Values the caller reads.
    pub outputs: Vec<ValueId>,
}

impl Graph {
    /// Adds an activation value.
    pub fn activation(&mut self, name: &str, shape: Vec<usize>) -> ValueId {
        self.values.push(Value {
            name: name.to_string(),
            shape,
            constant: None,
        });
        self.values.len() - 1
    }

    /// Adds a constant value.
    pub fn constant(&mut self, name: &str, data: Tensor) -> ValueId {
        self.values.push(Value {
            name: name.to_string(),
            shape: data.dims().to_vec(),
            constant: Some(data),
        });
        self.values.len() - 1
    }

    /// Appends a node.
    pub fn push(&mut self, name: &str, op: Op, inputs: Vec<ValueId>, outputs: Vec<ValueId>) {
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            outputs,
            activation: Activation::None,
        });
    }

    /// Shape of a value.
    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.values[v].shape
    }

    /// The constant data of a value, if it is one.
    pub fn constant_of(&self, v: ValueId) -> Option<&Tensor> {
        self.values[v].constant.as_ref()
    }

    /// Nodes reading each value, by value index.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut users = vec![Vec::new(); self.values.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for &v in &node.inputs {
                users[v].push(i);
            }
        }
        users
    }
}
