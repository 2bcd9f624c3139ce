//! Decodes one node and checks it: operand counts and kinds, attribute ranges, and that
//! the stored output shape is exactly what the op computes from its input shapes.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::invalid;
use crate::error::{LoadError, Location};
use crate::format::fb;
use crate::graph::{
    element_count, Activation, BinaryKind, Conv2d, ConvTranspose2d, CoordinateTransform, Gather,
    LayerNorm, LayoutData, Lrn, NearestMode, Node, Op, Pad, PadMode, Pool2d, PoolKind, Reduce,
    ReduceKind, Resize, ResizeMode, Slice, Storage, Tensor,
};
use crate::ops::convtranspose::conv_transpose_output_len;
use crate::ops::reduce::reduce_shape;
use crate::ops::slice::slice_axis;
use crate::ops::window::output_len;
use crate::ops::{binary::broadcast_shape, matmul::matmul_output_shape};

type Reason = String;

/// Decodes node `index` and checks it against the tensors.
pub fn node(index: usize, n: &fb::Node, tensors: &[Tensor]) -> Result<Node, LoadError> {
    let name = n.name().to_string();
    let at = || Location::Node(index, name.clone());
    let fail = |reason: Reason| invalid(at(), format!("({}) {reason}", op_name(n)));
    let operands =
        |list: flatbuffers::Vector<'_, u32>, kind: &str| -> Result<Vec<usize>, LoadError> {
            list.iter()
                .map(|i| {
                    let i = i as usize;
                    if i < tensors.len() {
                        Ok(i)
                    } else {
                        Err(fail(format!(
                            "{kind} refers to tensor {i}, but there are {}",
                            tensors.len()
                        )))
                    }
                })
                .collect()
        };
    let inputs = operands(n.inputs(), "an input")?;
    let outputs = operands(n.outputs(), "an output")?;
    let op = decode_op(n).map_err(&fail)?;
    let activation = decode_activation(n.activation()).map_err(&fail)?;
    let node = Node {
        name: name.clone(),
        op,
        inputs,
        outputs,
        activation,
    };
    check(&node, tensors).map_err(&fail)?;
    Ok(node)
}

fn op_name(n: &fb::Node) -> &'static str {
    n.op_type().variant_name().unwrap_or("unknown op")
}

fn decode_activation(a: Option<&fb::Activation>) -> Result<Activation, Reason> {
    let Some(a) = a else {
        return Ok(Activation::None);
    };
    let (alpha, beta) = (a.alpha(), a.beta());
    Ok(match a.kind() {
        fb::ActivationKind::None => Activation::None,
        fb::ActivationKind::Relu => Activation::Relu,
        fb::ActivationKind::Clip => Activation::Clip {
            min: alpha,
            max: beta,
        },
        fb::ActivationKind::Sigmoid => Activation::Sigmoid,
        fb::ActivationKind::HardSigmoid => Activation::HardSigmoid { alpha, beta },
        fb::ActivationKind::HardSwish => Activation::HardSwish,
        fb::ActivationKind::LeakyRelu => Activation::LeakyRelu { alpha },
        fb::ActivationKind::Tanh => Activation::Tanh,
        fb::ActivationKind::Sqrt => Activation::Sqrt,
        fb::ActivationKind::Exp => Activation::Exp,
        fb::ActivationKind::Abs => Activation::Abs,
        fb::ActivationKind::Neg => Activation::Neg,
        fb::ActivationKind::Erf => Activation::Erf,
        fb::ActivationKind::Gelu => Activation::Gelu,
        fb::ActivationKind::Reciprocal => Activation::Reciprocal,
        fb::ActivationKind::Softplus => Activation::Softplus,
        fb::ActivationKind::Elu => Activation::Elu { alpha },
        other => return Err(format!("unknown activation {}", other.0)),
    })
}

fn pads(top: u32, left: u32, bottom: u32, right: u32) -> [usize; 4] {
    [top as usize, left as usize, bottom as usize, right as usize]
}

fn decode_op(n: &fb::Node) -> Result<Op, Reason> {
    let missing = || "attribute table missing".to_string();
    Ok(match n.op_type() {
        fb::Op::Conv2d => {
            let c = n.op_as_conv_2d().ok_or_else(missing)?;
            Op::Conv2d(Conv2d {
                stride: [c.stride_h() as usize, c.stride_w() as usize],
                dilation: [c.dilation_h() as usize, c.dilation_w() as usize],
                pads: pads(c.pad_top(), c.pad_left(), c.pad_bottom(), c.pad_right()),
                groups: c.groups() as usize,
            })
        }
        fb::Op::Linear => Op::Linear,
        fb::Op::MatMul => Op::MatMul,
        fb::Op::Pool2d => {
            let p = n.op_as_pool_2d().ok_or_else(missing)?;
            let kind = match p.kind() {
                fb::PoolKind::Max => PoolKind::Max,
                fb::PoolKind::Average => PoolKind::Average,
                other => return Err(format!("unknown pool kind {}", other.0)),
            };
            Op::Pool2d(Pool2d {
                kind,
                kernel: [p.kernel_h() as usize, p.kernel_w() as usize],
                stride: [p.stride_h() as usize, p.stride_w() as usize],
                dilation: [p.dilation_h() as usize, p.dilation_w() as usize],
                pads: pads(p.pad_top(), p.pad_left(), p.pad_bottom(), p.pad_right()),
                ceil_mode: p.ceil_mode(),
                count_include_pad: p.count_include_pad(),
            })
        }
        fb::Op::GlobalAveragePool => Op::GlobalAveragePool,
        fb::Op::Binary => {
            let b = n.op_as_binary().ok_or_else(missing)?;
            Op::Binary(match b.kind() {
                fb::BinaryKind::Add => BinaryKind::Add,
                fb::BinaryKind::Sub => BinaryKind::Sub,
                fb::BinaryKind::Mul => BinaryKind::Mul,
                fb::BinaryKind::Div => BinaryKind::Div,
                fb::BinaryKind::Pow => BinaryKind::Pow,
                fb::BinaryKind::Max => BinaryKind::Max,
                fb::BinaryKind::Min => BinaryKind::Min,
                other => return Err(format!("unknown binary kind {}", other.0)),
            })
        }
        fb::Op::Concat => Op::Concat {
            axis: n.op_as_concat().ok_or_else(missing)?.axis() as usize,
        },
        fb::Op::Reshape => Op::Reshape,
        fb::Op::Transpose => Op::Transpose {
            perm: n
                .op_as_transpose()
                .ok_or_else(missing)?
                .perm()
                .iter()
                .map(|p| p as usize)
                .collect(),
        },
        fb::Op::Pad => {
            let p = n.op_as_pad().ok_or_else(missing)?;
            let mode = match p.mode() {
                fb::PadMode::Constant => PadMode::Constant,
                fb::PadMode::Reflect => PadMode::Reflect,
                fb::PadMode::Edge => PadMode::Edge,
                other => return Err(format!("unknown pad mode {}", other.0)),
            };
            Op::Pad(Pad {
                mode,
                begin: p.begin().iter().map(|v| v as usize).collect(),
                end: p.end().iter().map(|v| v as usize).collect(),
                value: p.value(),
            })
        }
        fb::Op::Softmax => Op::Softmax {
            axis: n.op_as_softmax().ok_or_else(missing)?.axis() as usize,
        },
        fb::Op::Unary => Op::Unary,
        fb::Op::ConvTranspose2d => {
            let c = n.op_as_conv_transpose_2d().ok_or_else(missing)?;
            Op::ConvTranspose2d(ConvTranspose2d {
                stride: [c.stride_h() as usize, c.stride_w() as usize],
                dilation: [c.dilation_h() as usize, c.dilation_w() as usize],
                pads: pads(c.pad_top(), c.pad_left(), c.pad_bottom(), c.pad_right()),
                output_padding: [c.output_padding_h() as usize, c.output_padding_w() as usize],
                groups: c.groups() as usize,
            })
        }
        fb::Op::Resize => Op::Resize(decode_resize(n.op_as_resize().ok_or_else(missing)?)?),
        fb::Op::Lrn => {
            let l = n.op_as_lrn().ok_or_else(missing)?;
            Op::Lrn(Lrn {
                size: l.size() as usize,
                alpha: l.alpha(),
                beta: l.beta(),
                bias: l.bias(),
            })
        }
        fb::Op::Reduce => {
            let r = n.op_as_reduce().ok_or_else(missing)?;
            let kind = match r.kind() {
                fb::ReduceKind::Mean => ReduceKind::Mean,
                fb::ReduceKind::Sum => ReduceKind::Sum,
                fb::ReduceKind::Max => ReduceKind::Max,
                fb::ReduceKind::Min => ReduceKind::Min,
                other => return Err(format!("unknown reduce kind {}", other.0)),
            };
            Op::Reduce(Reduce {
                kind,
                axes: r.axes().iter().map(|a| a as usize).collect(),
                keepdims: r.keepdims(),
            })
        }
        fb::Op::LayerNorm => {
            let l = n.op_as_layer_norm().ok_or_else(missing)?;
            Op::LayerNorm(LayerNorm {
                axis: l.axis() as usize,
                epsilon: l.epsilon(),
            })
        }
        fb::Op::Slice => {
            let s = n.op_as_slice().ok_or_else(missing)?;
            Op::Slice(Slice {
                starts: s.starts().iter().collect(),
                ends: s.ends().iter().collect(),
                steps: s.steps().iter().collect(),
            })
        }
        fb::Op::Gather => {
            let g = n.op_as_gather().ok_or_else(missing)?;
            let indices = g
                .indices()
                .iter()
                .map(|i| usize::try_from(i).map_err(|_| format!("index {i} is negative")))
                .collect::<Result<_, _>>()?;
            Op::Gather(Gather {
                axis: g.axis() as usize,
                indices,
                indices_shape: g.indices_shape().iter().map(|d| d as usize).collect(),
            })
        }
        other => return Err(format!("unknown op {}", other.0)),
    })
}

fn decode_resize(r: fb::Resize) -> Result<Resize, Reason> {
    let mode = match r.mode() {
        fb::ResizeMode::Nearest => ResizeMode::Nearest,
        fb::ResizeMode::Linear => ResizeMode::Linear,
        other => return Err(format!("unknown resize mode {}", other.0)),
    };
    let coordinate_transform = match r.coordinate_transform() {
        fb::CoordinateTransform::HalfPixel => CoordinateTransform::HalfPixel,
        fb::CoordinateTransform::PytorchHalfPixel => CoordinateTransform::PytorchHalfPixel,
        fb::CoordinateTransform::AlignCorners => CoordinateTransform::AlignCorners,
        fb::CoordinateTransform::Asymmetric => CoordinateTransform::Asymmetric,
        fb::CoordinateTransform::TfHalfPixelForNearest => {
            CoordinateTransform::TfHalfPixelForNearest
        }
        other => return Err(format!("unknown coordinate transform {}", other.0)),
    };
    let nearest_mode = match r.nearest_mode() {
        fb::NearestMode::RoundPreferFloor => NearestMode::RoundPreferFloor,
        fb::NearestMode::RoundPreferCeil => NearestMode::RoundPreferCeil,
        fb::NearestMode::Floor => NearestMode::Floor,
        fb::NearestMode::Ceil => NearestMode::Ceil,
        other => return Err(format!("unknown nearest mode {}", other.0)),
    };
    Ok(Resize {
        mode,
        coordinate_transform,
        nearest_mode,
        scales: [r.scale_h(), r.scale_w()],
    })
}

/// Checks operand counts and kinds and the output shape.
fn check(node: &Node, tensors: &[Tensor]) -> Result<(), Reason> {
    let (min_inputs, max_inputs) = match node.op {
        Op::Conv2d(_) | Op::Linear | Op::ConvTranspose2d(_) | Op::LayerNorm(_) => (2, 3),
        Op::MatMul | Op::Binary(_) => (2, 2),
        Op::Concat { .. } => (1, usize::MAX),
        _ => (1, 1),
    };
    let count = node.inputs.len();
    if count < min_inputs || count > max_inputs {
        return Err(format!(
            "has {count} inputs, expected {min_inputs} to {max_inputs}"
        ));
    }
    if node.outputs.len() != 1 {
        return Err(format!("has {} outputs, expected 1", node.outputs.len()));
    }
    let output = &tensors[node.outputs[0]];
    if output.constant.is_some() {
        return Err(format!("writes constant tensor '{}'", output.name));
    }
    // Only the weight operand of Conv2d, ConvTranspose2d and Linear may be sparse or
    // narrow; any operand may be an activation (weights are then read as dense f32).
    let weight_slot =
        matches!(node.op, Op::Conv2d(_) | Op::ConvTranspose2d(_) | Op::Linear).then_some(1);
    for (slot, &i) in node.inputs.iter().enumerate() {
        let t = &tensors[i];
        if let Some(c) = &t.constant {
            let plain = c.layout == LayoutData::Dense && c.storage == Storage::F32;
            if !plain && Some(slot) != weight_slot {
                return Err(format!(
                    "input {slot} '{}' must be a dense f32 constant",
                    t.name
                ));
            }
        }
    }
    let shape = |slot: usize| tensors[node.inputs[slot]].shape.as_slice();
    let expected = output_shape(node, &shape, tensors)?;
    if expected != output.shape {
        return Err(format!(
            "output '{}' has shape {:?}, but the op computes {:?}",
            output.name, output.shape, expected
        ));
    }
    Ok(())
}

fn rank4(shape: &[usize], what: &str) -> Result<[usize; 4], Reason> {
    <[usize; 4]>::try_from(shape)
        .map_err(|_| format!("{what} must be rank 4 (NCHW), got {shape:?}"))
}

fn output_shape<'t>(
    node: &Node,
    shape: &dyn Fn(usize) -> &'t [usize],
    tensors: &[Tensor],
) -> Result<Vec<usize>, Reason> {
    let bias_len = |expected: usize| -> Result<(), Reason> {
        match node.inputs.get(2).map(|&i| tensors[i].shape.as_slice()) {
            Some(b) if b != [expected] => {
                Err(format!("bias has shape {b:?}, expected [{expected}]"))
            }
            _ => Ok(()),
        }
    };
    match &node.op {
        Op::Conv2d(c) => {
            let [n, ch, h, w] = rank4(shape(0), "input")?;
            let [o, cg, kh, kw] = rank4(shape(1), "weight")?;
            let g = c.groups;
            if g == 0 || ch % g != 0 || o % g != 0 || cg * g != ch {
                return Err(format!(
                    "{g} groups do not fit {ch} input channels, weight {:?}",
                    shape(1)
                ));
            }
            bias_len(o)?;
            let oh = output_len(
                h,
                kh,
                c.stride[0],
                c.dilation[0],
                c.pads[0],
                c.pads[2],
                false,
            );
            let ow = output_len(
                w,
                kw,
                c.stride[1],
                c.dilation[1],
                c.pads[1],
                c.pads[3],
                false,
            );
            match (oh, ow) {
                (Some(oh), Some(ow)) => Ok(vec![n, o, oh, ow]),
                _ => Err("kernel, stride, dilation and padding do not fit the input".to_string()),
            }
        }
        Op::Linear => {
            let x = shape(0);
            let w = shape(1);
            let (k, rest) = x.split_last().ok_or("input must have rank >= 1")?;
            if w.len() != 2 || w[1] != *k {
                return Err(format!("weight {w:?} does not match input {x:?}"));
            }
            bias_len(w[0])?;
            let mut out = rest.to_vec();
            out.push(w[0]);
            Ok(out)
        }
        Op::MatMul => matmul_output_shape(shape(0), shape(1))
            .ok_or_else(|| format!("cannot multiply {:?} by {:?}", shape(0), shape(1))),
        Op::Pool2d(p) => {
            let [n, c, h, w] = rank4(shape(0), "input")?;
            let extent = |k: usize, d: usize| k.checked_sub(1)?.checked_mul(d)?.checked_add(1);
            let fits = |k: usize, d: usize, a: usize, b: usize| {
                extent(k, d).is_some_and(|e| a < e && b < e)
            };
            if !fits(p.kernel[0], p.dilation[0], p.pads[0], p.pads[2])
                || !fits(p.kernel[1], p.dilation[1], p.pads[1], p.pads[3])
            {
                return Err("padding must be smaller than the pooling window".to_string());
            }
            let len = |i: usize, axis: usize| {
                output_len(
                    i,
                    p.kernel[axis],
                    p.stride[axis],
                    p.dilation[axis],
                    p.pads[axis],
                    p.pads[axis + 2],
                    p.ceil_mode,
                )
            };
            match (len(h, 0), len(w, 1)) {
                (Some(oh), Some(ow)) => Ok(vec![n, c, oh, ow]),
                _ => Err("window, stride, dilation and padding do not fit the input".to_string()),
            }
        }
        Op::GlobalAveragePool => {
            let [n, c, _, _] = rank4(shape(0), "input")?;
            Ok(vec![n, c, 1, 1])
        }
        Op::Binary(_) => broadcast_shape(shape(0), shape(1))
            .ok_or_else(|| format!("cannot broadcast {:?} with {:?}", shape(0), shape(1))),
        Op::Concat { axis } => {
            let first = shape(0);
            if *axis >= first.len() {
                return Err(format!(
                    "axis {axis} is out of range for rank {}",
                    first.len()
                ));
            }
            let mut out = first.to_vec();
            for slot in 1..node.inputs.len() {
                let s = shape(slot);
                let same_other_dims = s.len() == first.len()
                    && s.iter()
                        .zip(first)
                        .enumerate()
                        .all(|(i, (a, b))| i == *axis || a == b);
                if !same_other_dims {
                    return Err(format!("input {slot} {s:?} does not fit input 0 {first:?}"));
                }
                out[*axis] = out[*axis]
                    .checked_add(s[*axis])
                    .ok_or("concatenated axis overflows")?;
            }
            Ok(out)
        }
        Op::Reshape => {
            let out = &tensors[node.outputs[0]].shape;
            let n_in: usize = shape(0).iter().product();
            let n_out: usize = out.iter().product();
            if n_in != n_out {
                return Err(format!("cannot reshape {:?} into {out:?}", shape(0)));
            }
            Ok(out.clone())
        }
        Op::Transpose { perm } => {
            let x = shape(0);
            let mut seen = vec![false; x.len()];
            let valid = perm.len() == x.len()
                && perm
                    .iter()
                    .all(|&p| p < x.len() && !core::mem::replace(&mut seen[p], true));
            if !valid {
                return Err(format!("{perm:?} is not a permutation of {} axes", x.len()));
            }
            Ok(perm.iter().map(|&p| x[p]).collect())
        }
        Op::Pad(p) => {
            let x = shape(0);
            if p.begin.len() != x.len() || p.end.len() != x.len() {
                return Err(format!(
                    "pads {:?}/{:?} do not match rank {}",
                    p.begin,
                    p.end,
                    x.len()
                ));
            }
            let mut out = Vec::with_capacity(x.len());
            for (axis, &d) in x.iter().enumerate() {
                let (b, e) = (p.begin[axis], p.end[axis]);
                if p.mode == PadMode::Reflect && (b >= d || e >= d) {
                    return Err(format!(
                        "reflect padding of axis {axis} must be below its size {d}"
                    ));
                }
                out.push(
                    d.checked_add(b)
                        .and_then(|v| v.checked_add(e))
                        .ok_or("padded size overflows")?,
                );
            }
            Ok(out)
        }
        Op::Softmax { axis } => {
            let x = shape(0);
            if *axis >= x.len() {
                return Err(format!("axis {axis} is out of range for rank {}", x.len()));
            }
            Ok(x.to_vec())
        }
        Op::Unary => Ok(shape(0).to_vec()),
        Op::ConvTranspose2d(c) => {
            let [n, ch, h, w] = rank4(shape(0), "input")?;
            let [wc, og, kh, kw] = rank4(shape(1), "weight")?;
            let g = c.groups;
            if wc != ch || g == 0 || ch % g != 0 {
                return Err(format!(
                    "weight {:?} with {g} groups does not fit {ch} input channels",
                    shape(1)
                ));
            }
            let o = og.checked_mul(g).ok_or("output channels overflow")?;
            bias_len(o)?;
            let len = |axis: usize, input: usize, kernel: usize| {
                conv_transpose_output_len(
                    input,
                    kernel,
                    c.stride[axis],
                    c.dilation[axis],
                    [c.pads[axis], c.pads[axis + 2]],
                    c.output_padding[axis],
                )
            };
            match (len(0, h, kh), len(1, w, kw)) {
                (Some(oh), Some(ow)) => Ok(vec![n, o, oh, ow]),
                _ => Err(
                    "stride, dilation, padding and output padding leave no output (or overflow)"
                        .to_string(),
                ),
            }
        }
        Op::Resize(r) => {
            let [n, c, _, _] = rank4(shape(0), "input")?;
            let out = &tensors[node.outputs[0]].shape;
            let [_, _, oh, ow] = rank4(out, "output")?;
            if !r.scales.iter().all(|s| s.is_finite() && *s > 0.0) {
                return Err(format!("scales {:?} must be finite and positive", r.scales));
            }
            Ok(vec![n, c, oh, ow])
        }
        Op::Lrn(l) => {
            let x = shape(0);
            if x.len() < 2 {
                return Err(format!("input must have rank >= 2 (N, C, ...), got {x:?}"));
            }
            if l.size == 0 {
                return Err("size must be at least 1".to_string());
            }
            Ok(x.to_vec())
        }
        Op::Reduce(r) => reduce_shape(shape(0), &r.axes, r.keepdims).ok_or_else(|| {
            format!(
                "axes {:?} must be distinct and below rank {}",
                r.axes,
                shape(0).len()
            )
        }),
        Op::LayerNorm(l) => {
            let x = shape(0);
            if l.axis >= x.len() {
                return Err(format!(
                    "axis {} is out of range for rank {}",
                    l.axis,
                    x.len()
                ));
            }
            let normalized = &x[l.axis..];
            for (slot, what) in [(1, "scale"), (2, "bias")] {
                if slot < node.inputs.len() && !same_ignoring_leading_ones(shape(slot), normalized)
                {
                    return Err(format!(
                        "{what} has shape {:?}, expected {normalized:?}",
                        shape(slot)
                    ));
                }
            }
            Ok(x.to_vec())
        }
        Op::Slice(s) => {
            let x = shape(0);
            let rank = x.len();
            if s.starts.len() != rank || s.ends.len() != rank || s.steps.len() != rank {
                return Err(format!(
                    "starts {:?}, ends {:?} and steps {:?} must have one entry per axis ({rank})",
                    s.starts, s.ends, s.steps
                ));
            }
            (0..rank)
                .map(|a| {
                    slice_axis(x[a], s.starts[a], s.ends[a], s.steps[a])
                        .map(|(_, count)| count)
                        .ok_or_else(|| format!("step of axis {a} is 0"))
                })
                .collect()
        }
        Op::Gather(g) => {
            let x = shape(0);
            let Some(&dim) = x.get(g.axis) else {
                return Err(format!(
                    "axis {} is out of range for rank {}",
                    g.axis,
                    x.len()
                ));
            };
            if element_count(&g.indices_shape) != Some(g.indices.len()) {
                return Err(format!(
                    "{} indices do not fill the indices shape {:?}",
                    g.indices.len(),
                    g.indices_shape
                ));
            }
            if let Some(i) = g.indices.iter().find(|&&i| i >= dim) {
                return Err(format!(
                    "index {i} is out of range for axis {} of size {dim}",
                    g.axis
                ));
            }
            let mut out = x[..g.axis].to_vec();
            out.extend_from_slice(&g.indices_shape);
            out.extend_from_slice(&x[g.axis + 1..]);
            Ok(out)
        }
    }
}

/// Whether `a` and `b` are the same shape once leading 1s are dropped (so `[1, 4]` matches
/// `[4]`): same elements in the same row-major order.
fn same_ignoring_leading_ones(a: &[usize], b: &[usize]) -> bool {
    fn strip(s: &[usize]) -> &[usize] {
        &s[s.iter().position(|&d| d != 1).unwrap_or(s.len())..]
    }
    strip(a) == strip(b)
}
