//! The reference executor: runs an IR graph on the CPU in f32 with candle tensor ops.
//!
//! Exported files are checked against it, and fine-tuning differentiates it with candle's
//! autograd, so every op is composed from differentiable candle ops (convolutions,
//! matrix products, broadcast arithmetic, `index_select`, `cat`, reductions) and never
//! from the runtime's kernels or from host round trips of activations. Graph constants
//! are used as they are, so a constant that is a candle `Var` receives gradients.
//!
//! Where candle has no direct equivalent the op is composed: asymmetric padding is
//! explicit padding, pooling gathers its window taps with `index_select` (which also makes
//! overlapping windows differentiable), transposed convolution is a convolution over a
//! zero-spread input, and so on. Each op family lives in its own file.

mod activation;
mod conv;
mod layout;
mod math;
mod norm;
mod pool;
mod resize;

use candle_core::{DType, Device, Tensor};
use lopper_runtime::graph::Op as Rt;

use super::{Graph, Op, ValueId};

/// Why a graph could not be evaluated. Node errors name the node and its op.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The caller passed a different number of tensors than the graph has inputs.
    #[error("the graph has {expected} inputs, but {got} tensors were given")]
    InputCount {
        /// Graph inputs.
        expected: usize,
        /// Tensors given.
        got: usize,
    },
    /// An input tensor does not fit its graph input.
    #[error("input '{name}': {reason}")]
    Input {
        /// Name of the graph input.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A node is malformed: wrong operand count, bad attributes, an operand that is not
    /// available, or a result that does not have the declared output shape.
    #[error("node '{node}' ({op}): {reason}")]
    Invalid {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// candle refused one of the node's tensor operations.
    #[error("node '{node}' ({op}): {error}")]
    Candle {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// What candle reported.
        error: candle_core::Error,
    },
    /// A graph output is not an input, a constant or the output of a node.
    #[error("graph output '{name}' is never computed")]
    Output {
        /// Name of the value (or its index when the index is out of range).
        name: String,
    },
}

/// Why one op failed, before the node's name is attached.
#[derive(Debug)]
enum Fail {
    /// Bad operands or attributes.
    Invalid(String),
    /// A candle operation failed.
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for Fail {
    fn from(e: candle_core::Error) -> Self {
        Fail::Candle(e)
    }
}

/// Result of one op.
type OpResult<T = Tensor> = Result<T, Fail>;

/// Runs `graph` on `inputs` (one tensor per graph input, with the input's shape; other
/// dtypes are converted to f32) and returns the graph outputs in order, as f32 tensors.
/// Values no later node or output needs are dropped as soon as they are dead.
pub fn eval(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, EvalError> {
    if inputs.len() != graph.inputs.len() {
        return Err(EvalError::InputCount {
            expected: graph.inputs.len(),
            got: inputs.len(),
        });
    }
    let mut env: Vec<Option<Tensor>> = vec![None; graph.values.len()];
    for (&v, t) in graph.inputs.iter().zip(inputs) {
        let input_error = |reason: String| EvalError::Input {
            name: value_name(graph, v),
            reason,
        };
        let value = graph
            .values
            .get(v)
            .ok_or_else(|| input_error("is not a value of the graph".to_string()))?;
        if t.dims() != value.shape.as_slice() {
            return Err(input_error(format!(
                "expected shape {:?}, got {:?}",
                value.shape,
                t.dims()
            )));
        }
        let t = t
            .to_dtype(DType::F32)
            .map_err(|e| input_error(e.to_string()))?;
        env[v] = Some(t);
    }

    let last_reader = last_readers(graph);
    for (index, node) in graph.nodes.iter().enumerate() {
        let op = node.op.name();
        let invalid = |reason: String| EvalError::Invalid {
            node: node.name.clone(),
            op,
            reason,
        };
        let args = node
            .inputs
            .iter()
            .map(|&v| fetch(graph, &env, v).map_err(invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let &[out] = node.outputs.as_slice() else {
            return Err(invalid(format!(
                "has {} outputs, expected 1",
                node.outputs.len()
            )));
        };
        let declared = graph
            .values
            .get(out)
            .map(|value| value.shape.as_slice())
            .ok_or_else(|| invalid(format!("writes value #{out}, which does not exist")))?;
        let y = run_op(&node.op, &args, declared)
            .and_then(|y| Ok(activation::apply(node.activation, &y)?))
            .map_err(|fail| match fail {
                Fail::Invalid(reason) => invalid(reason),
                Fail::Candle(error) => EvalError::Candle {
                    node: node.name.clone(),
                    op,
                    error,
                },
            })?;
        if y.dims() != declared {
            return Err(invalid(format!(
                "computes shape {:?}, but output '{}' is declared {declared:?}",
                y.dims(),
                value_name(graph, out)
            )));
        }
        env[out] = Some(y);
        for &v in &node.inputs {
            if last_reader[v] == Some(index) {
                env[v] = None;
            }
        }
    }

    graph
        .outputs
        .iter()
        .map(|&v| {
            fetch(graph, &env, v).map_err(|_| EvalError::Output {
                name: value_name(graph, v),
            })
        })
        .collect()
}

/// For every value, the index of the last node reading it; `None` for values never read
/// and for graph outputs, which must stay alive to the end.
fn last_readers(graph: &Graph) -> Vec<Option<usize>> {
    let mut last = vec![None; graph.values.len()];
    for (index, node) in graph.nodes.iter().enumerate() {
        for &v in &node.inputs {
            if let Some(slot) = last.get_mut(v) {
                *slot = Some(index);
            }
        }
    }
    for &v in &graph.outputs {
        if let Some(slot) = last.get_mut(v) {
            *slot = None;
        }
    }
    last
}

/// The tensor of value `v`: computed, fed, or constant (converted to f32).
fn fetch(graph: &Graph, env: &[Option<Tensor>], v: ValueId) -> Result<Tensor, String> {
    let value = graph
        .values
        .get(v)
        .ok_or_else(|| format!("reads value #{v}, which does not exist"))?;
    if let Some(t) = &env[v] {
        return Ok(t.clone());
    }
    match &value.constant {
        Some(c) => c
            .to_dtype(DType::F32)
            .map_err(|e| format!("constant '{}': {e}", value.name)),
        None => Err(format!(
            "reads '{}', which is not a graph input, a constant or the output of an earlier \
             node (or was already consumed)",
            value.name
        )),
    }
}

/// Name of value `v` for messages.
fn value_name(graph: &Graph, v: ValueId) -> String {
    graph
        .values
        .get(v)
        .map_or_else(|| format!("#{v}"), |value| value.name.clone())
}

/// Computes one op (without its fused activation); `out_shape` is the declared output
/// shape, which Reshape and Resize take as their target.
fn run_op(op: &Op, args: &[Tensor], out_shape: &[usize]) -> OpResult {
    match op {
        Op::BatchNorm { epsilon } => norm::batch_norm(args, *epsilon),
        Op::Runtime(op) => match op {
            Rt::Conv2d(c) => conv::conv2d(c, args),
            Rt::ConvTranspose2d(c) => conv::conv_transpose2d(c, args),
            Rt::Linear => math::linear(args),
            Rt::MatMul => math::matmul(args),
            Rt::Pool2d(p) => pool::pool2d(p, args),
            Rt::GlobalAveragePool => pool::global_average_pool(args),
            Rt::Binary(kind) => math::binary(*kind, args),
            Rt::Softmax { axis } => math::softmax(*axis, args),
            Rt::Reduce(r) => math::reduce(r, args),
            Rt::Unary => Ok(operands::<1>(args)?[0].clone()),
            Rt::Concat { axis } => layout::concat(*axis, args),
            Rt::Reshape => layout::reshape(args, out_shape),
            Rt::Transpose { perm } => layout::transpose(perm, args),
            Rt::Pad(p) => layout::pad(p, args),
            Rt::Slice(s) => layout::slice(s, args),
            Rt::Gather(g) => layout::gather(g, args),
            Rt::Resize(r) => resize::resize(r, args, out_shape),
            Rt::Lrn(l) => norm::lrn(l, args),
            Rt::LayerNorm(l) => norm::layer_norm(l, args),
        },
    }
}

/// Exactly `N` operands.
fn operands<const N: usize>(args: &[Tensor]) -> OpResult<&[Tensor; N]> {
    args.try_into()
        .map_err(|_| Fail::Invalid(format!("has {} inputs, expected {N}", args.len())))
}

/// `x, weight[, bias]`: two or three operands.
fn with_optional_bias(args: &[Tensor]) -> OpResult<(&Tensor, &Tensor, Option<&Tensor>)> {
    match args {
        [x, w] => Ok((x, w, None)),
        [x, w, b] => Ok((x, w, Some(b))),
        _ => Err(Fail::Invalid(format!(
            "has {} inputs, expected 2 or 3",
            args.len()
        ))),
    }
}

/// Error unless `t` has rank `rank`; names the operand as `what`.
fn expect_rank(t: &Tensor, rank: usize, what: &str) -> OpResult<()> {
    if t.rank() == rank {
        Ok(())
    } else {
        Err(Fail::Invalid(format!(
            "{what} must have rank {rank}, got shape {:?}",
            t.dims()
        )))
    }
}

/// Error unless `axis` is below `t`'s rank.
fn expect_axis(t: &Tensor, axis: usize) -> OpResult<()> {
    if axis < t.rank() {
        Ok(())
    } else {
        Err(Fail::Invalid(format!(
            "axis {axis} is out of range for shape {:?}",
            t.dims()
        )))
    }
}

/// A rank-1 `u32` index tensor for `index_select`.
fn index_tensor(indices: &[usize]) -> OpResult {
    let indices = indices
        .iter()
        .map(|&i| u32::try_from(i).map_err(|_| Fail::Invalid(format!("index {i} is too large"))))
        .collect::<OpResult<Vec<u32>>>()?;
    let len = indices.len();
    Ok(Tensor::from_vec(indices, len, &Device::Cpu)?)
}

/// `t` with `before` and `after` elements of `value` added along `dim`.
fn pad_constant(t: &Tensor, dim: usize, before: usize, after: usize, value: f32) -> OpResult {
    if value == 0.0 {
        return Ok(t.pad_with_zeros(dim, before, after)?);
    }
    let block = |len: usize| {
        let mut dims = t.dims().to_vec();
        dims[dim] = len;
        Tensor::full(value, dims, t.device())
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(block(before)?);
    }
    parts.push(t.clone());
    if after > 0 {
        parts.push(block(after)?);
    }
    Ok(Tensor::cat(&parts, dim)?)
}

/// Bias `[C]` added along axis 1 of `y`, if given.
fn add_channel_bias(y: Tensor, bias: Option<&Tensor>) -> OpResult {
    let Some(b) = bias else { return Ok(y) };
    Ok(y.broadcast_add(&along_axis1(b, &y)?)?)
}

/// A per-channel vector reshaped to `[1, C, 1, ...]` to broadcast along axis 1 of `like`.
fn along_axis1(v: &Tensor, like: &Tensor) -> OpResult {
    let channels = like.dims().get(1).copied().unwrap_or(0);
    if like.rank() < 2 || v.elem_count() != channels {
        return Err(Fail::Invalid(format!(
            "per-channel operand {:?} does not fit shape {:?}",
            v.dims(),
            like.dims()
        )));
    }
    let mut dims = vec![1; like.rank()];
    dims[1] = channels;
    Ok(v.reshape(dims)?)
}

#[cfg(test)]
mod tests;
