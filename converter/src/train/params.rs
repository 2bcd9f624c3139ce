//! The trainable parameters of a graph, as candle `Var`s shared with the graph, and the
//! pruning masks that hold pruned weights at zero.
//!
//! Trainable are the constant weights and biases of convolutions, transposed
//! convolutions, linear layers and constant matrix-product operands, and the scale and
//! shift of BatchNorm (its running statistics stay frozen: fine-tuning runs BatchNorm in
//! inference mode, the usual choice for small fine-tuning batches). The graph's constants
//! are replaced by the `Var`s' tensors, so evaluating the graph differentiates them and an
//! optimizer step updates the graph in place.

use candle_core::{DType, Tensor, Var};
use lopper_runtime::graph::Op as Rt;

use super::{Result, TrainError};
use crate::ir::{Graph, Op, ValueId};

/// What a parameter is to its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A convolution, linear or matrix-product weight: prunable, regularised.
    Weight,
    /// A layer bias.
    Bias,
    /// BatchNorm's scale (gamma), the network-slimming target.
    BnScale,
    /// BatchNorm's shift (beta).
    BnShift,
}

/// One trainable constant.
#[derive(Debug)]
pub struct Param {
    /// The graph value it lives in.
    pub value: ValueId,
    /// The node and operand slot that read it (pruning may rewire that slot to a new
    /// value).
    pub reader: (usize, usize),
    /// What it is to its layer.
    pub role: Role,
    /// The value's name (checkpoint key).
    pub name: String,
    /// The data, shared with the graph.
    pub var: Var,
    /// Where present, 1 where the weight may be non-zero and 0 where it was pruned.
    pub mask: Option<Tensor>,
}

/// Every trainable constant of a graph.
#[derive(Debug)]
pub struct Params {
    list: Vec<Param>,
}

impl Params {
    /// Makes the trainable constants of `graph` `Var`s and installs them in the graph.
    /// Weights of layers that already contain zeros (a pruned model) get a mask that keeps
    /// those zeros.
    pub fn attach(graph: &mut Graph) -> Result<Self> {
        let mut list = Vec::new();
        for (value, reader, role) in trainable_values(graph) {
            let data = graph.values[value]
                .constant
                .as_ref()
                .expect("trainable values are constants")
                .to_dtype(DType::F32)?;
            let var = Var::from_tensor(&data)?;
            graph.values[value].constant = Some(var.as_tensor().clone());
            let mask = if role == Role::Weight {
                zero_mask(var.as_tensor())?
            } else {
                None
            };
            list.push(Param {
                value,
                reader,
                role,
                name: graph.values[value].name.clone(),
                var,
                mask,
            });
        }
        if list.is_empty() {
            return Err(TrainError::Model(
                "the model has no trainable weights (no convolution, linear or matrix-product layer with constant weights)".into(),
            ));
        }
        Ok(Self { list })
    }

    /// The parameters, in graph order.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.list.iter()
    }

    /// The parameters, mutable (to change masks).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        self.list.iter_mut()
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are none (never, after [`Params::attach`]).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Number of scalar parameters.
    pub fn count(&self) -> usize {
        self.list.iter().map(|p| p.var.elem_count()).sum()
    }

    /// Zeroes the masked-out entries of every parameter.
    pub fn apply_masks(&self) -> Result<()> {
        for p in &self.list {
            if let Some(mask) = &p.mask {
                p.var.set(&(p.var.as_tensor().detach() * mask)?)?;
            }
        }
        Ok(())
    }

    /// Takes new values from `graph` for every parameter whose graph constant is no longer
    /// its `Var` (pruning replaced it, or rewired its reader to a new value), re-installs
    /// the `Var`, and sets that weight's mask to its non-zero entries.
    pub fn sync_from(&mut self, graph: &mut Graph) -> Result<()> {
        for p in &mut self.list {
            let (node, slot) = p.reader;
            p.value = graph.nodes[node].inputs[slot];
            let current = graph.values[p.value].constant.clone().ok_or_else(|| {
                TrainError::Model(format!("'{}' is no longer a constant", p.name))
            })?;
            if current.id() == p.var.as_tensor().id() {
                continue;
            }
            if current.dims() != p.var.dims() {
                return Err(TrainError::Model(format!(
                    "'{}' changed shape from {:?} to {:?} during training; structural pruning needs a new trainer",
                    p.name,
                    p.var.dims(),
                    current.dims()
                )));
            }
            p.var.set(&current.to_dtype(DType::F32)?)?;
            graph.values[p.value].constant = Some(p.var.as_tensor().clone());
            if p.mask.is_some() || zero_mask(&current)?.is_some() {
                p.mask = zero_mask(&current)?;
            }
        }
        Ok(())
    }

    /// Replaces every `Var` in `graph` by a plain copy of its data, so the graph no longer
    /// changes when training continues.
    pub fn detach(&self, graph: &mut Graph) -> Result<()> {
        for p in &self.list {
            graph.values[p.value].constant = Some(p.var.as_tensor().copy()?.detach());
        }
        Ok(())
    }
}

/// Constant values that training updates, with their first reader and their roles.
fn trainable_values(graph: &Graph) -> Vec<(ValueId, (usize, usize), Role)> {
    let mut found: Vec<(ValueId, (usize, usize), Role)> = Vec::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        let roles: &[(usize, Role)] = match &node.op {
            Op::Runtime(Rt::Conv2d(_) | Rt::ConvTranspose2d(_) | Rt::Linear) => {
                &[(1, Role::Weight), (2, Role::Bias)]
            }
            Op::Runtime(Rt::MatMul) => &[(0, Role::Weight), (1, Role::Weight)],
            Op::BatchNorm { .. } => &[(1, Role::BnScale), (2, Role::BnShift)],
            _ => &[],
        };
        for &(slot, role) in roles {
            let Some(&v) = node.inputs.get(slot) else {
                continue;
            };
            let is_float = graph.constant_of(v).is_some_and(|t| t.dtype().is_float());
            if is_float && !found.iter().any(|&(seen, _, _)| seen == v) {
                found.push((v, (index, slot), role));
            }
        }
    }
    found
}

/// The mask of a weight's non-zero entries, or `None` when it has no zero.
fn zero_mask(w: &Tensor) -> Result<Option<Tensor>> {
    let nonzero = w.ne(0f32)?.to_dtype(DType::F32)?;
    let kept = nonzero.sum_all()?.to_scalar::<f32>()?;
    Ok(((kept as usize) < w.elem_count()).then_some(nonzero))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::test_graphs::B;
    use lopper_runtime::graph::Activation;

    #[test]
    fn weights_biases_and_bn_parameters_are_trainable_and_shared_with_the_graph() {
        let (mut b, x) = B::new(&[1, 2, 4, 4]);
        let c = b.conv_bn(x, 3, 3, 1, Activation::Relu);
        let y = b.head(c, 2);
        let mut g = b.finish(y);
        let params = Params::attach(&mut g).unwrap();
        // conv weight + bias, BN scale + shift, linear weight + bias.
        assert_eq!(params.len(), 6);
        assert_eq!(params.count(), 3 * 2 * 9 + 3 + 3 + 3 + 2 * 3 + 2);
        let first = params.iter().next().unwrap();
        first.var.set(&first.var.zeros_like().unwrap()).unwrap();
        let in_graph = g.constant_of(first.value).unwrap();
        assert_eq!(
            in_graph
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }

    #[test]
    fn masks_keep_pruned_weights_at_zero() {
        let (mut b, x) = B::new(&[1, 4]);
        let y = b.linear(x, 2, Activation::None);
        let mut g = b.finish(y);
        let w = g.nodes[0].inputs[1];
        let pruned = Tensor::new(
            &[[0f32, 1.0, 2.0, 0.0], [3.0, 0.0, 4.0, 5.0]],
            &candle_core::Device::Cpu,
        )
        .unwrap();
        g.values[w].constant = Some(pruned);
        let params = Params::attach(&mut g).unwrap();
        let p = params.iter().find(|p| p.value == w).unwrap();
        p.var.set(&p.var.ones_like().unwrap()).unwrap();
        params.apply_masks().unwrap();
        let got: Vec<Vec<f32>> = g.constant_of(w).unwrap().to_vec2().unwrap();
        assert_eq!(got, [[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0]]);
        assert!(params.iter().all(|p| p.value == w || p.mask.is_none()));
    }
}
