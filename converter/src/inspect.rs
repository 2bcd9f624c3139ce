//! Per-layer facts for `lopper inspect`: op, shapes, parameters, MACs, layout, sparsity and
//! bytes, for an IR graph (from ONNX) or a `.lopper` model.

use lopper_runtime::graph::{element_count, LayoutData, Op as Rt, Storage};
use serde::Serialize;

use crate::ir::{Graph, Op};

/// One node's row.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Layer {
    /// Node name.
    pub name: String,
    /// Op name.
    pub op: String,
    /// Output shape.
    pub output: Vec<usize>,
    /// Stored weight and bias values (nonzero or not).
    pub params: usize,
    /// Multiply-accumulates per run.
    pub macs: usize,
    /// Weight layout ("dense", "csr", "bsr 4x1", "2:4") or "-".
    pub layout: String,
    /// Fraction of zero weights.
    pub sparsity: f32,
    /// Bytes of weight data in the file (or as f32 for ONNX).
    pub bytes: usize,
}

/// Sums over all layers.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Totals {
    /// Parameters.
    pub params: usize,
    /// Multiply-accumulates.
    pub macs: usize,
    /// Weight bytes.
    pub bytes: usize,
}

/// Totals of `layers`.
pub fn totals(layers: &[Layer]) -> Totals {
    Totals {
        params: layers.iter().map(|l| l.params).sum(),
        macs: layers.iter().map(|l| l.macs).sum(),
        bytes: layers.iter().map(|l| l.bytes).sum(),
    }
}

/// MACs of a weight-bearing op producing `out` from inputs of `shapes`.
fn macs(op: &Rt, shapes: &[&[usize]], out: &[usize]) -> usize {
    let out_count = element_count(out).unwrap_or(0);
    match op {
        // Each output reads C / groups * kh * kw inputs: the weight's row length.
        Rt::Conv2d(_) => out_count * shapes[1][1..].iter().product::<usize>(),
        Rt::Linear => out_count * shapes[1][1],
        Rt::MatMul => out_count * shapes[0].last().copied().unwrap_or(0),
        _ => 0,
    }
}

/// Rows for an IR graph; weights count as dense f32.
pub fn ir_layers(graph: &Graph) -> Vec<Layer> {
    graph
        .nodes
        .iter()
        .map(|node| {
            let shapes: Vec<&[usize]> = node.inputs.iter().map(|&v| graph.shape(v)).collect();
            let out = graph.shape(node.outputs[0]).to_vec();
            let mut params = 0;
            let mut zeros = 0;
            for &v in &node.inputs {
                if let Some(t) = graph.constant_of(v) {
                    params += t.elem_count();
                    zeros += t
                        .to_dtype(candle_core::DType::F32)
                        .and_then(|t| t.flatten_all())
                        .and_then(|t| t.to_vec1::<f32>())
                        .map_or(0, |v| v.iter().filter(|&&x| x == 0.0).count());
                }
            }
            let macs = match &node.op {
                Op::Runtime(op) => macs(op, &shapes, &out),
                Op::BatchNorm { .. } => 0,
            };
            Layer {
                name: node.name.clone(),
                op: node.op.name().to_string(),
                output: out,
                params,
                macs,
                layout: if params > 0 {
                    "dense".into()
                } else {
                    "-".into()
                },
                sparsity: if params > 0 {
                    zeros as f32 / params as f32
                } else {
                    0.0
                },
                bytes: params * 4,
            }
        })
        .collect()
}

/// Rows for a verified `.lopper` model, with the stored layouts and byte counts.
pub fn lopper_layers(model: &lopper_runtime::Model) -> Vec<Layer> {
    let graph = model.graph();
    graph
        .nodes
        .iter()
        .map(|node| {
            let shapes: Vec<&[usize]> = node
                .inputs
                .iter()
                .map(|&t| graph.tensors[t].shape.as_slice())
                .collect();
            let out = graph.tensors[node.outputs[0]].shape.clone();
            let (mut params, mut zeros, mut bytes) = (0, 0, 0);
            let mut layout = "-".to_string();
            for &t in &node.inputs {
                let tensor = &graph.tensors[t];
                let Some(c) = &tensor.constant else { continue };
                let count = element_count(&tensor.shape).unwrap_or(0);
                params += count;
                bytes += c.values.len()
                    + c.scales.as_ref().map_or(0, |r| r.len())
                    + match &c.layout {
                        LayoutData::Dense => 0,
                        LayoutData::Csr { row_ptr, col_idx }
                        | LayoutData::Bsr {
                            row_ptr, col_idx, ..
                        } => row_ptr.len() + col_idx.len(),
                        LayoutData::NM { indices, .. } => indices.len(),
                    };
                if let Some(w) = model.weight(t) {
                    let dense = lopper_runtime::format::encode::decode_dense(&w);
                    zeros += dense.iter().filter(|&&x| x == 0.0).count();
                }
                if layout == "-" {
                    let storage = match c.storage {
                        Storage::F32 => "f32",
                        Storage::F16 => "f16",
                        Storage::I8 => "int8",
                    };
                    let kind = match &c.layout {
                        LayoutData::Dense => "dense".to_string(),
                        LayoutData::Csr { .. } => "csr".to_string(),
                        LayoutData::Bsr { block, .. } => format!("bsr {}x{}", block[0], block[1]),
                        LayoutData::NM { n, m, .. } => format!("{n}:{m}"),
                    };
                    layout = format!("{kind} {storage}");
                }
            }
            Layer {
                name: node.name.clone(),
                op: node.op.name().to_string(),
                output: out.clone(),
                params,
                macs: macs(&node.op, &shapes, &out),
                layout,
                sparsity: if params > 0 {
                    zeros as f32 / params as f32
                } else {
                    0.0
                },
                bytes,
            }
        })
        .collect()
}
