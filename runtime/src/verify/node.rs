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
    Activation, BinaryKind, Conv2d, LayoutData, Node, Op, Pad, PadMode, Pool2d, PoolKind, Storage,
    Tensor,
};
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
        other => return Err(format!("unknown op {}", other.0)),
    })
}

/// Checks operand counts and kinds and the output shape.
fn check(node: &Node, tensors: &[Tensor]) -> Result<(), Reason> {
    let (min_inputs, max_inputs) = match node.op {
        Op::Conv2d(_) | Op::Linear => (2, 3),
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
    // Only the weight operand of Conv2d and Linear may be sparse or narrow.
    let weight_slot = matches!(node.op, Op::Conv2d(_) | Op::Linear).then_some(1);
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
        } else if weight_slot.is_some() && slot >= 1 {
            return Err(format!(
                "input {slot} '{}' must be a constant (weights and bias)",
                t.name
            ));
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
    }
}
