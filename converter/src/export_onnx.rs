//! IR to standard ONNX, so that a pruned and compacted graph (physically smaller: removed
//! channels are gone from every tensor) runs in any ONNX runtime too.
//!
//! Every IR op maps to standard ONNX ops of the default domain: one op where ONNX has it,
//! a short chain otherwise (Linear on a tensor that is not 2-D is MatMul + Add, GELU is
//! `0.5 x (1 + Erf(x / sqrt 2))` so the model needs no opset 20, HardSwish before opset 14
//! is `x * HardSigmoid(x)`). A fused activation becomes extra nodes after its op. Constants
//! a node reads become f32 initializers; the shapes, pads, axes and indices the IR keeps as
//! attributes become int64 initializers where ONNX wants inputs. Only what the nodes and
//! graph outputs use is written.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Tensor};
use lopper_runtime::graph::{
    Activation, CoordinateTransform, NearestMode, Op as Rt, PadMode, PoolKind, ReduceKind, Resize,
    ResizeMode,
};
use lopper_runtime::ops::resize::resize;
use lopper_runtime::ops::slice::slice_axis;
use prost::Message;

use crate::ir::{Graph, Node, Op, ValueId};
use crate::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The opset `write_onnx` targets.
pub const DEFAULT_OPSET: i64 = 13;

/// Lowest opset `to_onnx` writes: Pad, Slice, Clip, Resize, ReduceSum and Softmax have
/// their current input forms and semantics from 13 on.
pub const MIN_OPSET: i64 = 13;

/// Highest opset `to_onnx` writes.
pub const MAX_OPSET: i64 = 21;

/// Why a graph could not be written as ONNX.
#[derive(Debug, thiserror::Error)]
pub enum ExportOnnxError {
    /// The requested opset is outside what the exporter knows.
    #[error("opset {0} is not supported; choose one from {MIN_OPSET} to {MAX_OPSET}")]
    Opset(i64),
    /// A node cannot be expressed in ONNX at this opset, or is malformed.
    #[error("node '{node}' ({op}): {reason}")]
    Node {
        /// Node name.
        node: String,
        /// IR op name.
        op: &'static str,
        /// What stops it.
        reason: String,
    },
    /// A graph input, output or constant cannot be written.
    #[error("value '{name}': {reason}")]
    Value {
        /// Value name (or `#index` when the index is out of range).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Converts `graph` to an ONNX model at `opset` (raised to 17 when the graph has a
/// LayerNorm, whose ONNX op starts there). The model records producer "lopper" and the
/// lowest IR version that allows its opset (8 up to opset 18).
pub fn to_onnx(graph: &Graph, opset: i64) -> Result<ModelProto, ExportOnnxError> {
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(ExportOnnxError::Opset(opset));
    }
    let has_layer_norm = graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Runtime(Rt::LayerNorm(_))));
    let opset = if has_layer_norm { opset.max(17) } else { opset };
    let mut b = Builder::new(graph, opset)?;
    for node in &graph.nodes {
        b.node(node).map_err(|reason| ExportOnnxError::Node {
            node: node.name.clone(),
            op: node.op.name(),
            reason,
        })?;
    }
    b.finish()
}

/// Writes `graph` as an ONNX model (opset [`DEFAULT_OPSET`]) to `path`, atomically: a
/// failed write leaves an existing file untouched.
pub fn write_onnx(graph: &Graph, path: &Path) -> Result<(), ExportOnnxError> {
    let model = to_onnx(graph, DEFAULT_OPSET)?;
    crate::files::write_atomic(path, &model.encode_to_vec()).map_err(|source| ExportOnnxError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The IR version to record: 8, or the IR version that came with `opset` when that is
/// later (9 for opsets 19 and 20, 10 for 21).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19 | 20 => 9,
        _ => 10,
    }
}

/// Result of one node's conversion; the error is a reason, the node is named by the caller.
type Res<T = ()> = Result<T, String>;

/// The model under construction.
struct Builder<'g> {
    graph: &'g Graph,
    opset: i64,
    /// ONNX name of every value a node or the caller uses.
    names: Vec<Option<String>>,
    /// Every value name in use, for fresh names.
    taken: HashSet<String>,
    /// Every node name in use.
    node_names: HashSet<String>,
    /// Graph constants already written as initializers.
    written: Vec<bool>,
    /// Transposed copies of constant Linear weights, by value.
    transposed: HashMap<ValueId, String>,
    /// Scalar f32 initializers, by bit pattern.
    scalars: HashMap<u32, String>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl<'g> Builder<'g> {
    /// Names every used value after the IR, making repeats and empty names unique.
    fn new(graph: &'g Graph, opset: i64) -> Result<Self, ExportOnnxError> {
        let mut b = Builder {
            graph,
            opset,
            names: vec![None; graph.values.len()],
            taken: HashSet::new(),
            node_names: HashSet::new(),
            written: vec![false; graph.values.len()],
            transposed: HashMap::new(),
            scalars: HashMap::new(),
            nodes: Vec::new(),
            initializers: Vec::new(),
        };
        let missing = |v: ValueId| ExportOnnxError::Value {
            name: format!("#{v}"),
            reason: "is not a value of the graph".into(),
        };
        for &v in graph.inputs.iter().chain(&graph.outputs) {
            b.name_value(v).ok_or_else(|| missing(v))?;
        }
        for node in &graph.nodes {
            for &v in node.inputs.iter().chain(&node.outputs) {
                b.name_value(v).ok_or_else(|| ExportOnnxError::Node {
                    node: node.name.clone(),
                    op: node.op.name(),
                    reason: format!("uses value #{v}, which does not exist"),
                })?;
            }
        }
        Ok(b)
    }

    /// Gives value `v` its ONNX name if it has none yet; `None` when `v` does not exist.
    fn name_value(&mut self, v: ValueId) -> Option<()> {
        let value = self.graph.values.get(v)?;
        if self.names[v].is_none() {
            let base = if value.name.is_empty() {
                format!("value_{v}")
            } else {
                value.name.clone()
            };
            self.names[v] = Some(self.fresh(&base));
        }
        Some(())
    }

    /// A value name based on `base` that nothing uses yet.
    fn fresh(&mut self, base: &str) -> String {
        unique(&mut self.taken, base)
    }

    /// The ONNX name of value `v`, writing its initializer on first use of a constant.
    fn input(&mut self, v: ValueId) -> Res<String> {
        let name = self.names[v]
            .clone()
            .ok_or_else(|| format!("value #{v} has no name"))?;
        if let (Some(data), false) = (&self.graph.values[v].constant, self.written[v]) {
            let values = f32_values(data).map_err(|e| format!("constant '{name}': {e}"))?;
            let dims = &self.graph.values[v].shape;
            self.initializers.push(f32_tensor(&name, dims, &values)?);
            self.written[v] = true;
        }
        Ok(name)
    }

    /// The ONNX name of value `v`, which must exist.
    fn name(&self, v: ValueId) -> String {
        self.names[v].clone().unwrap_or_default()
    }

    /// Adds a node; its name is `base` made unique.
    fn add(
        &mut self,
        op_type: &str,
        base: &str,
        inputs: Vec<String>,
        output: String,
        attribute: Vec<AttributeProto>,
    ) {
        let name = unique(&mut self.node_names, base);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output],
            name: Some(name),
            op_type: Some(op_type.to_string()),
            attribute,
            ..NodeProto::default()
        });
    }

    /// A new int64 initializer named after `base`.
    fn ints(&mut self, base: &str, dims: &[usize], values: &[i64]) -> String {
        let name = self.fresh(base);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Int64 as i32),
            name: Some(name.clone()),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..TensorProto::default()
        });
        name
    }

    /// A 1-D int64 initializer of usize values.
    fn usizes(&mut self, base: &str, values: &[usize]) -> String {
        let values: Vec<i64> = values.iter().map(|&v| v as i64).collect();
        self.ints(base, &[values.len()], &values)
    }

    /// A new f32 initializer named after `base`.
    fn floats(&mut self, base: &str, dims: &[usize], values: &[f32]) -> Res<String> {
        let name = self.fresh(base);
        self.initializers.push(f32_tensor(&name, dims, values)?);
        Ok(name)
    }

    /// A scalar f32 initializer of `value`, shared by every node that needs it.
    fn scalar(&mut self, value: f32) -> Res<String> {
        if let Some(name) = self.scalars.get(&value.to_bits()) {
            return Ok(name.clone());
        }
        let name = self.floats(&format!("scalar_{value:?}"), &[], &[value])?;
        self.scalars.insert(value.to_bits(), name.clone());
        Ok(name)
    }

    /// Converts one IR node: its op writes the node's output, or an intermediate value
    /// that the fused activation's nodes then turn into the output.
    fn node(&mut self, node: &Node) -> Res {
        let &[out] = node.outputs.as_slice() else {
            return Err(format!("has {} outputs, expected 1", node.outputs.len()));
        };
        let out_name = self.name(out);
        if node.op == Op::Runtime(Rt::Unary) {
            let &[x] = node.inputs.as_slice() else {
                return Err(format!("has {} inputs, expected 1", node.inputs.len()));
            };
            let x = self.input(x)?;
            return self.activation(&node.name, node.activation, x, out_name);
        }
        let target = if node.activation == Activation::None {
            out_name.clone()
        } else {
            self.fresh(&format!("{out_name}_pre_activation"))
        };
        self.op(node, out, target.clone())?;
        if node.activation != Activation::None {
            self.activation(&node.name, node.activation, target, out_name)?;
        }
        Ok(())
    }

    /// The op of `node` (without its activation), writing value `y`.
    fn op(&mut self, node: &Node, out: ValueId, y: String) -> Res {
        let g = self.graph;
        if node.op == Op::Runtime(Rt::Linear) {
            return self.linear(node, y);
        }
        let inputs = node
            .inputs
            .iter()
            .map(|&v| self.input(v))
            .collect::<Res<Vec<_>>>()?;
        let n = node.name.as_str();
        let rt = match &node.op {
            Op::BatchNorm { epsilon } => {
                expect_inputs(&inputs, 5, 5)?;
                let attrs = vec![float("epsilon", *epsilon)];
                self.add("BatchNormalization", n, inputs, y, attrs);
                return Ok(());
            }
            Op::Runtime(rt) => rt,
        };
        match rt {
            Rt::Conv2d(c) => {
                expect_inputs(&inputs, 2, 3)?;
                let w = g.shape(node.inputs[1]);
                let &[_, _, kh, kw] = w else {
                    return Err(format!("weight has shape {w:?}, expected rank 4"));
                };
                let attrs = vec![
                    ints("dilations", &c.dilation),
                    int("group", c.groups),
                    ints("kernel_shape", &[kh, kw]),
                    ints("pads", &c.pads),
                    ints("strides", &c.stride),
                ];
                self.add("Conv", n, inputs, y, attrs);
            }
            Rt::ConvTranspose2d(c) => {
                expect_inputs(&inputs, 2, 3)?;
                let w = g.shape(node.inputs[1]);
                let &[_, _, kh, kw] = w else {
                    return Err(format!("weight has shape {w:?}, expected rank 4"));
                };
                let attrs = vec![
                    ints("dilations", &c.dilation),
                    int("group", c.groups),
                    ints("kernel_shape", &[kh, kw]),
                    ints("output_padding", &c.output_padding),
                    ints("pads", &c.pads),
                    ints("strides", &c.stride),
                ];
                self.add("ConvTranspose", n, inputs, y, attrs);
            }
            Rt::Linear | Rt::Unary => {
                // `node` handles Unary and the check above Linear; neither gets here.
                return Err("internal: op dispatched to the wrong converter".into());
            }
            Rt::MatMul => {
                expect_inputs(&inputs, 2, 2)?;
                self.add("MatMul", n, inputs, y, vec![]);
            }
            Rt::Pool2d(p) => {
                expect_inputs(&inputs, 1, 1)?;
                let mut attrs = vec![
                    int("ceil_mode", usize::from(p.ceil_mode)),
                    ints("kernel_shape", &p.kernel),
                    ints("pads", &p.pads),
                    ints("strides", &p.stride),
                ];
                let op_type = match p.kind {
                    PoolKind::Max => {
                        attrs.push(ints("dilations", &p.dilation));
                        "MaxPool"
                    }
                    PoolKind::Average => {
                        attrs.push(int("count_include_pad", usize::from(p.count_include_pad)));
                        if p.dilation != [1, 1] {
                            if self.opset < 19 {
                                return Err(format!(
                                    "dilated average pooling (dilation {:?}) needs ONNX opset \
                                     19, this export targets opset {}",
                                    p.dilation, self.opset
                                ));
                            }
                            attrs.push(ints("dilations", &p.dilation));
                        }
                        "AveragePool"
                    }
                };
                self.add(op_type, n, inputs, y, attrs);
            }
            Rt::GlobalAveragePool => {
                expect_inputs(&inputs, 1, 1)?;
                self.add("GlobalAveragePool", n, inputs, y, vec![]);
            }
            Rt::Binary(_) => {
                expect_inputs(&inputs, 2, 2)?;
                // The runtime's names of binary ops are the ONNX op types.
                self.add(rt.name(), n, inputs, y, vec![]);
            }
            Rt::Concat { axis } => {
                expect_inputs(&inputs, 1, usize::MAX)?;
                self.add("Concat", n, inputs, y, vec![int("axis", *axis)]);
            }
            Rt::Reshape => {
                expect_inputs(&inputs, 1, 1)?;
                let shape = g.shape(out);
                if shape.contains(&0) {
                    return Err(format!(
                        "output shape {shape:?} has an empty axis, which ONNX Reshape reads \
                         as 'copy the input dimension'"
                    ));
                }
                let spec = self.usizes(&format!("{y}_shape"), shape);
                self.add("Reshape", n, vec![inputs[0].clone(), spec], y, vec![]);
            }
            Rt::Transpose { perm } => {
                expect_inputs(&inputs, 1, 1)?;
                self.add("Transpose", n, inputs, y, vec![ints("perm", perm)]);
            }
            Rt::Pad(p) => {
                expect_inputs(&inputs, 1, 1)?;
                let pads: Vec<usize> = p.begin.iter().chain(&p.end).copied().collect();
                let mut args = vec![inputs[0].clone(), self.usizes(&format!("{y}_pads"), &pads)];
                let mode = match p.mode {
                    PadMode::Constant => {
                        args.push(self.scalar(p.value)?);
                        "constant"
                    }
                    PadMode::Reflect => "reflect",
                    PadMode::Edge => "edge",
                };
                self.add("Pad", n, args, y, vec![string("mode", mode)]);
            }
            Rt::Softmax { axis } => {
                expect_inputs(&inputs, 1, 1)?;
                self.add("Softmax", n, inputs, y, vec![int("axis", *axis)]);
            }
            Rt::Resize(r) => self.resize(node, r, inputs, out, y)?,
            Rt::Lrn(l) => {
                expect_inputs(&inputs, 1, 1)?;
                let attrs = vec![
                    float("alpha", l.alpha),
                    float("beta", l.beta),
                    float("bias", l.bias),
                    int("size", l.size),
                ];
                self.add("LRN", n, inputs, y, attrs);
            }
            Rt::Reduce(r) => {
                expect_inputs(&inputs, 1, 1)?;
                if r.axes.is_empty() {
                    // ONNX reads empty axes as "all axes"; the IR reduces nothing.
                    self.add("Identity", n, inputs, y, vec![]);
                    return Ok(());
                }
                let op_type = match r.kind {
                    ReduceKind::Mean => "ReduceMean",
                    ReduceKind::Sum => "ReduceSum",
                    ReduceKind::Max => "ReduceMax",
                    ReduceKind::Min => "ReduceMin",
                };
                let mut args = inputs;
                let mut attrs = vec![int("keepdims", usize::from(r.keepdims))];
                // ReduceSum takes its axes as an input from opset 13, the others from 18.
                if r.kind == ReduceKind::Sum || self.opset >= 18 {
                    args.push(self.usizes(&format!("{y}_axes"), &r.axes));
                } else {
                    attrs.push(ints("axes", &r.axes));
                }
                self.add(op_type, n, args, y, attrs);
            }
            Rt::LayerNorm(l) => {
                expect_inputs(&inputs, 2, 3)?;
                let attrs = vec![int("axis", l.axis), float("epsilon", l.epsilon)];
                self.add("LayerNormalization", n, inputs, y, attrs);
            }
            Rt::Slice(s) => {
                expect_inputs(&inputs, 1, 1)?;
                let dims = g.shape(node.inputs[0]);
                if [s.starts.len(), s.ends.len(), s.steps.len()] != [dims.len(); 3] {
                    return Err(format!(
                        "slice parameters {s:?} do not match input shape {dims:?}"
                    ));
                }
                let (mut starts, mut ends) = (Vec::new(), Vec::new());
                for (a, &dim) in dims.iter().enumerate() {
                    let step = s.steps[a];
                    let (first, count) = slice_axis(dim, s.starts[a], s.ends[a], step)
                        .ok_or_else(|| format!("axis {a} has step 0"))?;
                    if count == 0 {
                        return Err(format!("axis {a} is sliced to nothing"));
                    }
                    // The exact end; below 0 (a backward slice through index 0) it would
                    // wrap around in ONNX, so it becomes -dim - 1, which ONNX reads as -1.
                    let end = first as i64 + count as i64 * step;
                    starts.push(first as i64);
                    ends.push(if end < 0 { -(dim as i64) - 1 } else { end });
                }
                let rank = [dims.len()];
                let axes: Vec<i64> = (0..dims.len() as i64).collect();
                let args = vec![
                    inputs[0].clone(),
                    self.ints(&format!("{y}_starts"), &rank, &starts),
                    self.ints(&format!("{y}_ends"), &rank, &ends),
                    self.ints(&format!("{y}_axes"), &rank, &axes),
                    self.ints(&format!("{y}_steps"), &rank, &s.steps),
                ];
                self.add("Slice", n, args, y, vec![]);
            }
            Rt::Gather(gather) => {
                expect_inputs(&inputs, 1, 1)?;
                let values: Vec<i64> = gather.indices.iter().map(|&i| i as i64).collect();
                if values.len() != gather.indices_shape.iter().product::<usize>() {
                    return Err(format!(
                        "{} indices do not fill indices shape {:?}",
                        values.len(),
                        gather.indices_shape
                    ));
                }
                let indices = self.ints(&format!("{y}_indices"), &gather.indices_shape, &values);
                let args = vec![inputs[0].clone(), indices];
                self.add("Gather", n, args, y, vec![int("axis", gather.axis)]);
            }
        }
        Ok(())
    }

    /// Linear: Gemm with transB for a 2-D input and a constant weight, otherwise MatMul
    /// with the transposed weight (a transposed initializer for a constant, a Transpose
    /// node otherwise) and an Add of the bias. (Gemm would take a run-time weight too,
    /// but MatMul keeps the file readable by importers that want Gemm's B constant,
    /// lopper's own among them.)
    fn linear(&mut self, node: &Node, y: String) -> Res {
        let n = node.name.as_str();
        let (x, w, bias) = match *node.inputs.as_slice() {
            [x, w] => (x, w, None),
            [x, w, b] => (x, w, Some(b)),
            ref other => return Err(format!("has {} inputs, expected 2 or 3", other.len())),
        };
        let ws = self.graph.shape(w);
        let &[rows, cols] = ws else {
            return Err(format!("weight has shape {ws:?}, expected rank 2"));
        };
        let x_name = self.input(x)?;
        let bias = bias.map(|b| self.input(b)).transpose()?;
        if self.graph.shape(x).len() == 2 && self.graph.constant_of(w).is_some() {
            let mut args = vec![x_name, self.input(w)?];
            args.extend(bias);
            self.add("Gemm", n, args, y, vec![int("transB", 1)]);
            return Ok(());
        }
        let base = format!("{}_transposed", self.name(w));
        let wt = match (self.graph.constant_of(w), self.transposed.get(&w)) {
            (_, Some(name)) => name.clone(),
            (Some(data), None) => {
                let values = data
                    .t()
                    .and_then(|t| t.contiguous())
                    .map_err(|e| e.to_string())
                    .and_then(|t| f32_values(&t))?;
                let name = self.floats(&base, &[cols, rows], &values)?;
                self.transposed.insert(w, name.clone());
                name
            }
            (None, None) => {
                let w_name = self.input(w)?;
                let name = self.fresh(&base);
                let perm = vec![ints("perm", &[1, 0])];
                let node_name = format!("{n}/transpose_weight");
                self.add("Transpose", &node_name, vec![w_name], name.clone(), perm);
                name
            }
        };
        let Some(bias) = bias else {
            self.add("MatMul", n, vec![x_name, wt], y, vec![]);
            return Ok(());
        };
        let product = self.fresh(&format!("{y}_matmul"));
        self.add("MatMul", n, vec![x_name, wt], product.clone(), vec![]);
        self.add("Add", &format!("{n}/bias"), vec![product, bias], y, vec![]);
        Ok(())
    }

    /// Resize of the last two axes, with a `scales` input when ONNX's
    /// `floor(input * scale)` gives the IR's output size, else with `sizes` when the
    /// IR's scales are exactly output / input (which is what ONNX then uses). Nearest
    /// resizing with `tf_half_pixel_for_nearest` (valid at opset 13, but refused by
    /// onnxruntime) becomes two Gathers of the rows and columns the runtime reads.
    fn resize(
        &mut self,
        node: &Node,
        r: &Resize,
        inputs: Vec<String>,
        out: ValueId,
        y: String,
    ) -> Res {
        expect_inputs(&inputs, 1, 1)?;
        let (xs, ys) = (self.graph.shape(node.inputs[0]), self.graph.shape(out));
        let (&[n, c, h, w], &[yn, yc, yh, yw]) = (xs, ys) else {
            return Err(format!("resizes {xs:?} to {ys:?}, expected NCHW"));
        };
        if (n, c) != (yn, yc) {
            return Err(format!("resizes {xs:?} to {ys:?}, changing N or C"));
        }
        if r.coordinate_transform == CoordinateTransform::TfHalfPixelForNearest {
            if r.mode != ResizeMode::Nearest {
                return Err(
                    "linear resizing with tf_half_pixel_for_nearest has no ONNX \
                            equivalent that onnxruntime runs"
                        .into(),
                );
            }
            let (rows, cols) = nearest_sources(r, [h, w], [yh, yw])?;
            let picked = self.fresh(&format!("{y}_rows"));
            let rows = self.ints(&format!("{y}_row_indices"), &[yh], &rows);
            let cols = self.ints(&format!("{y}_column_indices"), &[yw], &cols);
            let base = format!("{}/rows", node.name);
            let args = vec![inputs[0].clone(), rows];
            self.add("Gather", &base, args, picked.clone(), vec![int("axis", 2)]);
            let base = format!("{}/columns", node.name);
            self.add("Gather", &base, vec![picked, cols], y, vec![int("axis", 3)]);
            return Ok(());
        }
        let floor_fits = |len: usize, s: f32, out: usize| (len as f32 * s).floor() == out as f32;
        let ratio_is = |len: usize, s: f32, out: usize| out as f32 / len as f32 == s;
        let mut args = vec![inputs[0].clone(), String::new()];
        let [sh, sw] = r.scales;
        if floor_fits(h, sh, yh) && floor_fits(w, sw, yw) {
            args.push(self.floats(&format!("{y}_scales"), &[4], &[1.0, 1.0, sh, sw])?);
        } else if ratio_is(h, sh, yh) && ratio_is(w, sw, yw) {
            args.push(String::new());
            args.push(self.usizes(&format!("{y}_sizes"), ys));
        } else {
            return Err(format!(
                "scales {:?} resize {xs:?} to {ys:?}, which ONNX Resize cannot express",
                r.scales
            ));
        }
        let mode = match r.mode {
            ResizeMode::Nearest => "nearest",
            ResizeMode::Linear => "linear",
        };
        let transform = match r.coordinate_transform {
            CoordinateTransform::HalfPixel => "half_pixel",
            CoordinateTransform::PytorchHalfPixel => "pytorch_half_pixel",
            CoordinateTransform::AlignCorners => "align_corners",
            CoordinateTransform::Asymmetric => "asymmetric",
            CoordinateTransform::TfHalfPixelForNearest => "tf_half_pixel_for_nearest",
        };
        let nearest = match r.nearest_mode {
            NearestMode::RoundPreferFloor => "round_prefer_floor",
            NearestMode::RoundPreferCeil => "round_prefer_ceil",
            NearestMode::Floor => "floor",
            NearestMode::Ceil => "ceil",
        };
        let attrs = vec![
            string("coordinate_transformation_mode", transform),
            string("mode", mode),
            string("nearest_mode", nearest),
        ];
        self.add("Resize", &node.name, args, y, attrs);
        Ok(())
    }

    /// Nodes computing `act(x)` into `y`; node names start with `node`.
    fn activation(&mut self, node: &str, act: Activation, x: String, y: String) -> Res {
        let base = format!("{node}/activation");
        let single = |op: &str| (op.to_string(), Vec::new());
        let (op_type, attrs) = match act {
            Activation::None => single("Identity"),
            Activation::Relu => single("Relu"),
            Activation::Sigmoid => single("Sigmoid"),
            Activation::Tanh => single("Tanh"),
            Activation::Sqrt => single("Sqrt"),
            Activation::Exp => single("Exp"),
            Activation::Abs => single("Abs"),
            Activation::Neg => single("Neg"),
            Activation::Erf => single("Erf"),
            Activation::Reciprocal => single("Reciprocal"),
            Activation::Softplus => single("Softplus"),
            Activation::HardSigmoid { alpha, beta } => (
                "HardSigmoid".to_string(),
                vec![float("alpha", alpha), float("beta", beta)],
            ),
            Activation::LeakyRelu { alpha } => {
                ("LeakyRelu".to_string(), vec![float("alpha", alpha)])
            }
            Activation::Elu { alpha } => ("Elu".to_string(), vec![float("alpha", alpha)]),
            Activation::HardSwish if self.opset >= 14 => single("HardSwish"),
            Activation::HardSwish => {
                // x * HardSigmoid(x) with alpha 1/6, beta 1/2: HardSwish before opset 14.
                let gate = self.fresh(&format!("{y}_gate"));
                let attrs = vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)];
                self.add("HardSigmoid", &base, vec![x.clone()], gate.clone(), attrs);
                self.add("Mul", &base, vec![x, gate], y, vec![]);
                return Ok(());
            }
            Activation::Clip { min, max } => {
                let args = vec![x, self.scalar(min)?, self.scalar(max)?];
                self.add("Clip", &base, args, y, vec![]);
                return Ok(());
            }
            Activation::Gelu => {
                // 0.5 x (1 + erf(x / sqrt 2)) from opset-13 ops (ONNX Gelu is opset 20).
                let scaled = self.fresh(&format!("{y}_scaled"));
                let erf = self.fresh(&format!("{y}_erf"));
                let shifted = self.fresh(&format!("{y}_shifted"));
                let product = self.fresh(&format!("{y}_product"));
                let sqrt2 = self.scalar(std::f32::consts::SQRT_2)?;
                let one = self.scalar(1.0)?;
                let half = self.scalar(0.5)?;
                self.add("Div", &base, vec![x.clone(), sqrt2], scaled.clone(), vec![]);
                self.add("Erf", &base, vec![scaled], erf.clone(), vec![]);
                self.add("Add", &base, vec![erf, one], shifted.clone(), vec![]);
                self.add("Mul", &base, vec![x, shifted], product.clone(), vec![]);
                self.add("Mul", &base, vec![product, half], y, vec![]);
                return Ok(());
            }
        };
        self.add(&op_type, &base, vec![x], y, attrs);
        Ok(())
    }

    /// The finished model: graph inputs and outputs with their static f32 shapes.
    fn finish(mut self) -> Result<ModelProto, ExportOnnxError> {
        let g = self.graph;
        let produced: HashSet<ValueId> = g.nodes.iter().flat_map(|n| n.outputs.clone()).collect();
        let mut outputs = Vec::with_capacity(g.outputs.len());
        for &v in &g.outputs {
            let value = &g.values[v];
            if value.constant.is_none() && !produced.contains(&v) && !g.inputs.contains(&v) {
                return Err(ExportOnnxError::Value {
                    name: value.name.clone(),
                    reason: "is a graph output that no node computes".into(),
                });
            }
            let name = self.input(v).map_err(|reason| ExportOnnxError::Value {
                name: value.name.clone(),
                reason,
            })?;
            outputs.push(value_info(&name, &value.shape));
        }
        let inputs = g
            .inputs
            .iter()
            .map(|&v| value_info(&self.name(v), &g.values[v].shape))
            .collect();
        Ok(ModelProto {
            ir_version: Some(ir_version(self.opset)),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            producer_name: Some("lopper".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            graph: Some(GraphProto {
                node: self.nodes,
                name: Some("lopper".into()),
                initializer: self.initializers,
                input: inputs,
                output: outputs,
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        })
    }
}

/// The input rows and columns that nearest resizing `r` of an `[h, w]` plane to `[oh, ow]`
/// reads, found by running the runtime's own resize on planes holding their row and
/// column numbers (exact in f32 for any real image size).
fn nearest_sources(
    r: &Resize,
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
) -> Res<(Vec<i64>, Vec<i64>)> {
    if [h, w, oh, ow].contains(&0) {
        return Err(format!("resizes an empty plane ({h}x{w} to {oh}x{ow})"));
    }
    let mut out = vec![0.0f32; oh * ow];
    let mut sources = |number: &dyn Fn(usize) -> usize| {
        let plane: Vec<f32> = (0..h * w).map(|i| number(i) as f32).collect();
        resize(r, &plane, [1, 1, h, w], &mut out, [1, 1, oh, ow]);
        out.clone()
    };
    let rows = sources(&|i| i / w);
    let cols = sources(&|i| i % w);
    Ok((
        (0..oh).map(|oy| rows[oy * ow] as i64).collect(),
        cols[..ow].iter().map(|&c| c as i64).collect(),
    ))
}

/// `base`, or `base_1`, `base_2`, ... : the first not in `taken`, which then holds it.
fn unique(taken: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut k = 0;
    while taken.contains(&name) {
        k += 1;
        name = format!("{base}_{k}");
    }
    taken.insert(name.clone());
    name
}

/// Error unless there are `min..=max` inputs.
fn expect_inputs(inputs: &[String], min: usize, max: usize) -> Res {
    if (min..=max).contains(&inputs.len()) {
        Ok(())
    } else if min == max {
        Err(format!("has {} inputs, expected {min}", inputs.len()))
    } else {
        Err(format!(
            "has {} inputs, expected {min} to {max}",
            inputs.len()
        ))
    }
}

/// Every element of `t` as f32, row-major.
fn f32_values(t: &Tensor) -> Res<Vec<f32>> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| e.to_string())
}

/// An f32 `TensorProto` with little-endian raw data.
fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> Res<TensorProto> {
    if values.len() != dims.iter().product::<usize>() {
        return Err(format!(
            "'{name}' has {} values for shape {dims:?}",
            values.len()
        ));
    }
    Ok(TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        name: Some(name.to_string()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..TensorProto::default()
    })
}

/// A graph input or output: f32 with a static shape.
fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

/// An attribute with only its name and type set.
fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(kind as i32),
        ..AttributeProto::default()
    }
}

/// An INT attribute.
fn int(name: &str, value: usize) -> AttributeProto {
    AttributeProto {
        i: Some(value as i64),
        ..attr(name, AttributeType::Int)
    }
}

/// An INTS attribute.
fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        ints: values.iter().map(|&v| v as i64).collect(),
        ..attr(name, AttributeType::Ints)
    }
}

/// A FLOAT attribute.
fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        f: Some(value),
        ..attr(name, AttributeType::Float)
    }
}

/// A STRING attribute.
fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        s: Some(value.as_bytes().to_vec()),
        ..attr(name, AttributeType::String)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use lopper_runtime::graph::{
        BinaryKind, Conv2d, ConvTranspose2d, Gather, LayerNorm, Lrn, Pad, Pool2d, Reduce, Slice,
    };

    use crate::import::{import, ImportOptions};
    use crate::ir::eval;

    /// Deterministic values in [-1, 1) for a tensor of `shape`.
    fn data(shape: &[usize], seed: usize) -> Tensor {
        let count = shape.iter().product::<usize>();
        let values: Vec<f32> = (0..count)
            .map(|i| ((i * 37 + seed * 101) % 97) as f32 / 48.5 - 1.0)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// Builds test graphs with made-up names and deterministic constants.
    #[derive(Default)]
    struct Build {
        g: Graph,
    }

    impl Build {
        fn input(&mut self, name: &str, shape: &[usize]) -> ValueId {
            let v = self.g.activation(name, shape.to_vec());
            self.g.inputs.push(v);
            v
        }

        fn constant(&mut self, shape: &[usize]) -> ValueId {
            let seed = self.g.values.len();
            self.g.constant(&format!("c{seed}"), data(shape, seed))
        }

        /// A constant in [0.5, 1.5).
        fn positive(&mut self, shape: &[usize]) -> ValueId {
            let seed = self.g.values.len();
            let t = data(shape, seed).abs().unwrap().affine(1.0, 0.5).unwrap();
            self.g.constant(&format!("p{seed}"), t)
        }

        fn scalar(&mut self, value: f32) -> ValueId {
            let t = Tensor::new(value, &Device::Cpu).unwrap();
            self.g.constant(&format!("s{}", self.g.values.len()), t)
        }

        fn act(&mut self, op: Rt, inputs: &[ValueId], shape: &[usize], act: Activation) -> ValueId {
            let k = self.g.nodes.len();
            let y = self.g.activation(&format!("y{k}"), shape.to_vec());
            self.g
                .push(&format!("n{k}"), Op::Runtime(op), inputs.to_vec(), vec![y]);
            self.g.nodes[k].activation = act;
            y
        }

        fn op(&mut self, op: Rt, inputs: &[ValueId], shape: &[usize]) -> ValueId {
            self.act(op, inputs, shape, Activation::None)
        }

        fn unary(&mut self, x: ValueId, act: Activation) -> ValueId {
            let shape = self.g.shape(x).to_vec();
            self.act(Rt::Unary, &[x], &shape, act)
        }

        fn out(&mut self, v: ValueId) {
            self.g.outputs.push(v);
        }
    }

    /// Writes `g` at `opset`, reads the bytes back with the importer and checks that
    /// both graphs compute the same outputs; returns the model.
    fn round_trip(g: &Graph, opset: i64) -> ModelProto {
        let model = to_onnx(g, opset).unwrap();
        let bytes = model.encode_to_vec();
        let back = import(
            &ModelProto::decode(bytes.as_slice()).unwrap(),
            &ImportOptions::default(),
        )
        .unwrap();
        let inputs: Vec<Tensor> = g.inputs.iter().map(|&v| data(g.shape(v), v)).collect();
        let want = eval(g, &inputs).unwrap();
        let got = eval(&back, &inputs).unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (got, want)) in got.iter().zip(&want).enumerate() {
            assert_eq!(got.dims(), want.dims(), "output {i}");
            let got = f32_values(got).unwrap();
            let want = f32_values(want).unwrap();
            let diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                diff <= 1e-5,
                "output {i} ('{}'): max abs diff {diff}",
                g.values[g.outputs[i]].name
            );
        }
        model
    }

    fn op_types(model: &ModelProto) -> Vec<String> {
        let graph = model.graph.as_ref().unwrap();
        graph.node.iter().map(|n| n.op_type().to_string()).collect()
    }

    /// Conv with asymmetric pads and a fused Relu, MaxPool in ceil mode, a 1x1 conv,
    /// Concat, Reshape, Linear and Softmax.
    fn small_cnn() -> Graph {
        let mut b = Build::default();
        let x = b.input("x", &[1, 3, 9, 10]);
        let w = b.constant(&[4, 3, 3, 3]);
        let bias = b.constant(&[4]);
        let conv = Conv2d {
            stride: [2, 1],
            pads: [1, 0, 2, 1],
            ..Conv2d::default()
        };
        // H (9 + 1 + 2 - 3) / 2 + 1 = 5, W (10 + 0 + 1 - 3) + 1 = 9.
        let c = b.act(
            Rt::Conv2d(conv),
            &[x, w, bias],
            &[1, 4, 5, 9],
            Activation::Relu,
        );
        let pool = Pool2d {
            kind: PoolKind::Max,
            kernel: [2, 2],
            stride: [2, 2],
            dilation: [1, 1],
            pads: [0; 4],
            ceil_mode: true,
            count_include_pad: false,
        };
        // ceil((5 - 2) / 2) + 1 = 3, ceil((9 - 2) / 2) + 1 = 5.
        let p = b.op(Rt::Pool2d(pool), &[c], &[1, 4, 3, 5]);
        let w2 = b.constant(&[2, 4, 1, 1]);
        let c2 = b.op(Rt::Conv2d(Conv2d::default()), &[p, w2], &[1, 2, 3, 5]);
        let cat = b.op(Rt::Concat { axis: 1 }, &[p, c2], &[1, 6, 3, 5]);
        let flat = b.op(Rt::Reshape, &[cat], &[1, 90]);
        let (w3, b3) = (b.constant(&[7, 90]), b.constant(&[7]));
        let fc = b.op(Rt::Linear, &[flat, w3, b3], &[1, 7]);
        let y = b.op(Rt::Softmax { axis: 1 }, &[fc], &[1, 7]);
        b.out(y);
        b.g
    }

    #[test]
    fn small_cnn_round_trips() {
        let g = small_cnn();
        let model = round_trip(&g, 13);
        assert_eq!(model.ir_version, Some(8));
        assert_eq!(model.producer_name(), "lopper");
        assert_eq!(model.opset_import[0].version(), 13);
        assert_eq!(
            op_types(&model),
            ["Conv", "Relu", "MaxPool", "Conv", "Concat", "Reshape", "Gemm", "Softmax"]
        );
        let graph = model.graph.as_ref().unwrap();
        let conv = &graph.node[0];
        let pads = conv.attribute.iter().find(|a| a.name() == "pads").unwrap();
        assert_eq!(pads.ints, [1, 0, 2, 1]);
        // Five weights and biases plus the reshape target.
        assert_eq!(graph.initializer.len(), 6);
        let io = |v: &[ValueInfoProto]| v.iter().map(|i| i.name().to_string()).collect::<Vec<_>>();
        assert_eq!(io(&graph.input), ["x"]);
        assert_eq!(io(&graph.output), [g.values[g.outputs[0]].name.clone()]);
    }

    /// Every IR op and activation, each on its own output.
    fn every_op() -> Graph {
        use Activation as A;
        let mut b = Build::default();
        let x = b.input("x", &[1, 4, 6, 6]);
        let s = [1, 4, 6, 6];
        let pos = b.unary(x, A::Sigmoid);
        let four = b.scalar(4.0);
        let wide = b.op(Rt::Binary(BinaryKind::Mul), &[x, four], &s);

        // Transposed convolutions: H 2 * 5 + 1 + 3 - 1 = 13, W 2 * 5 + 3 - 1 = 12; the
        // grouped one 5 + 2 = 7.
        let ct = ConvTranspose2d {
            stride: [2, 2],
            pads: [1, 1, 0, 0],
            output_padding: [1, 0],
            ..ConvTranspose2d::default()
        };
        let (w, bias) = (b.constant(&[4, 2, 3, 3]), b.constant(&[2]));
        let leaky = A::LeakyRelu { alpha: 0.1 };
        let y = b.act(
            Rt::ConvTranspose2d(ct),
            &[x, w, bias],
            &[1, 2, 13, 12],
            leaky,
        );
        b.out(y);
        let grouped = ConvTranspose2d {
            groups: 2,
            ..ConvTranspose2d::default()
        };
        let w = b.constant(&[4, 1, 2, 2]);
        let y = b.op(Rt::ConvTranspose2d(grouped), &[x, w], &[1, 2, 7, 7]);
        b.out(y);

        // Depthwise dilated convolution with Relu6: H 6 + 4 - 5 + 1, W 6 + 2 - 5 + 1.
        let dw = Conv2d {
            dilation: [2, 2],
            pads: [2, 1, 2, 1],
            groups: 4,
            ..Conv2d::default()
        };
        let w = b.constant(&[4, 1, 3, 3]);
        let relu6 = A::Clip { min: 0.0, max: 6.0 };
        let y = b.act(Rt::Conv2d(dw), &[wide, w], &[1, 4, 6, 4], relu6);
        b.out(y);

        // Resizes: scales that ONNX floors to the output size, and 6 -> 13 / 11 -> 13,
        // which only `sizes` expresses.
        let resize = |mode, coordinate_transform, nearest_mode, scales| {
            Rt::Resize(Resize {
                mode,
                coordinate_transform,
                nearest_mode,
                scales,
            })
        };
        use CoordinateTransform as T;
        use NearestMode as N;
        use ResizeMode::{Linear, Nearest};
        let cases = [
            (Nearest, T::Asymmetric, N::Floor, [2.0, 2.0], [12, 12]),
            (
                Linear,
                T::HalfPixel,
                N::RoundPreferFloor,
                [1.5, 2.0],
                [9, 12],
            ),
            (
                Linear,
                T::AlignCorners,
                N::Floor,
                [8.0 / 6.0, 8.0 / 6.0],
                [8, 8],
            ),
            (
                Nearest,
                T::TfHalfPixelForNearest,
                N::RoundPreferCeil,
                [0.5, 0.5],
                [3, 3],
            ),
            (Nearest, T::PytorchHalfPixel, N::Ceil, [2.0, 1.5], [12, 9]),
        ];
        for (mode, transform, nearest, scales, [h, w]) in cases {
            let op = resize(mode, transform, nearest, scales);
            let y = b.act(op, &[x], &[1, 4, h, w], A::Sigmoid);
            b.out(y);
        }
        let edge = Pad {
            mode: PadMode::Edge,
            begin: vec![0, 0, 2, 3],
            end: vec![0, 0, 3, 2],
            value: 0.0,
        };
        let x11 = b.op(Rt::Pad(edge), &[x], &[1, 4, 11, 11]);
        let op = resize(Linear, T::HalfPixel, N::Floor, [13.0 / 11.0; 2]);
        let y = b.op(op, &[x11], &[1, 4, 13, 13]);
        b.out(y);

        let lrn = Lrn {
            size: 3,
            alpha: 0.5,
            beta: 0.75,
            bias: 1.0,
        };
        let y = b.act(Rt::Lrn(lrn), &[x], &s, A::Tanh);
        b.out(y);

        let reductions = [
            (ReduceKind::Sum, vec![2, 3], true, vec![1, 4, 1, 1]),
            (ReduceKind::Mean, vec![1], false, vec![1, 6, 6]),
            (ReduceKind::Max, vec![3], true, vec![1, 4, 6, 1]),
            (ReduceKind::Min, vec![0, 2], false, vec![4, 6]),
            (ReduceKind::Sum, vec![], true, s.to_vec()),
        ];
        for (kind, axes, keepdims, shape) in reductions {
            let r = Reduce {
                kind,
                axes,
                keepdims,
            };
            let y = b.op(Rt::Reduce(r), &[x], &shape);
            b.out(y);
        }

        // Backward slices through index 0 (end -1) and open ends.
        let back = Slice {
            starts: vec![0, 3, 1, 5],
            ends: vec![1, -1, 6, -1],
            steps: vec![1, -1, 2, -2],
        };
        let y = b.act(Rt::Slice(back), &[x], &[1, 4, 3, 3], A::Abs);
        b.out(y);
        let open = Slice {
            starts: vec![0, 1, 0, 0],
            ends: vec![i64::MAX, 3, i64::MAX, 4],
            steps: vec![1; 4],
        };
        let y = b.op(Rt::Slice(open), &[x], &[1, 2, 6, 4]);
        b.out(y);

        let matrix = Gather {
            axis: 1,
            indices: vec![2, 0, 1, 1],
            indices_shape: vec![2, 2],
        };
        let y = b.op(Rt::Gather(matrix), &[x], &[1, 2, 2, 6, 6]);
        b.out(y);
        let single = Gather {
            axis: 3,
            indices: vec![4],
            indices_shape: vec![],
        };
        let y = b.op(Rt::Gather(single), &[x], &[1, 4, 6]);
        b.out(y);

        for (mode, value) in [(PadMode::Reflect, 0.0), (PadMode::Constant, 0.5)] {
            let p = Pad {
                mode,
                begin: vec![0, 0, 1, 2],
                end: vec![0, 0, 2, 1],
                value,
            };
            let y = b.op(Rt::Pad(p), &[x], &[1, 4, 9, 9]);
            b.out(y);
        }

        let params = [
            b.constant(&[4]),
            b.constant(&[4]),
            b.constant(&[4]),
            b.positive(&[4]),
        ];
        let k = b.g.nodes.len();
        let y = b.g.activation("batch_norm", s.to_vec());
        let mut inputs = vec![x];
        inputs.extend(params);
        b.g.push("bn", Op::BatchNorm { epsilon: 1e-3 }, inputs, vec![y]);
        b.g.nodes[k].activation = A::Elu { alpha: 0.7 };
        b.out(y);

        let y = b.op(
            Rt::Transpose {
                perm: vec![0, 2, 3, 1],
            },
            &[x],
            &[1, 6, 6, 4],
        );
        b.out(y);

        let (c411, c6, p116, e, c1416) = (
            b.constant(&[4, 1, 1]),
            b.constant(&[6]),
            b.positive(&[1, 1, 6]),
            b.scalar(2.5),
            b.constant(&[1, 4, 1, 6]),
        );
        let half = b.scalar(0.25);
        let binaries = [
            (BinaryKind::Add, x, c411),
            (BinaryKind::Sub, c6, x),
            (BinaryKind::Mul, x, pos),
            (BinaryKind::Div, x, p116),
            (BinaryKind::Pow, pos, e),
            (BinaryKind::Max, x, c1416),
            (BinaryKind::Min, x, half),
        ];
        for (kind, l, r) in binaries {
            let y = b.op(Rt::Binary(kind), &[l, r], &s);
            b.out(y);
        }

        let activations = [
            (x, A::None),
            (x, A::Relu),
            (
                x,
                A::Clip {
                    min: -0.5,
                    max: 0.7,
                },
            ),
            (
                x,
                A::HardSigmoid {
                    alpha: 0.3,
                    beta: 0.4,
                },
            ),
            (wide, A::HardSwish),
            (x, A::LeakyRelu { alpha: 0.2 }),
            (pos, A::Sqrt),
            (x, A::Exp),
            (x, A::Neg),
            (x, A::Erf),
            (wide, A::Gelu),
            (pos, A::Reciprocal),
            (wide, A::Softplus),
            (wide, A::Elu { alpha: 1.3 }),
        ];
        for (input, act) in activations {
            let y = b.unary(input, act);
            b.out(y);
        }

        // Pools: 3x3 / 2 with padding counted, 2x2 / 2 in ceil mode whose last window
        // would start in the padding (so it is dropped), dilated max in ceil mode.
        let pool = |kind, kernel, stride, dilation, pads, ceil_mode, count_include_pad| {
            Rt::Pool2d(Pool2d {
                kind,
                kernel,
                stride,
                dilation,
                pads,
                ceil_mode,
                count_include_pad,
            })
        };
        let avg = PoolKind::Average;
        let op = pool(avg, [3, 3], [2, 2], [1, 1], [1; 4], false, true);
        let y = b.op(op, &[x], &[1, 4, 3, 3]);
        b.out(y);
        let op = pool(avg, [2, 2], [2, 2], [1, 1], [0, 0, 1, 1], true, false);
        let y = b.op(op, &[x], &[1, 4, 3, 3]);
        b.out(y);
        let op = pool(PoolKind::Max, [2, 2], [1, 2], [2, 1], [0; 4], true, false);
        let y = b.op(op, &[x], &[1, 4, 4, 3]);
        b.out(y);
        let y = b.op(Rt::GlobalAveragePool, &[x], &[1, 4, 1, 1]);
        b.out(y);

        let y = b.op(Rt::MatMul, &[x, x], &s);
        b.out(y);
        // Linear: on 4-D input with a constant weight shared by two nodes (MatMul with
        // one transposed initializer, + Add), on 2-D input (Gemm) with constant and with
        // run-time weights, and on 4-D input with a run-time weight (Transpose + MatMul).
        let (w, bias) = (b.constant(&[5, 6]), b.constant(&[5]));
        let y = b.op(Rt::Linear, &[x, w, bias], &[1, 4, 6, 5]);
        b.out(y);
        let y = b.op(Rt::Linear, &[x, w], &[1, 4, 6, 5]);
        b.out(y);
        let r = b.op(Rt::Reshape, &[x], &[24, 6]);
        let y = b.op(Rt::Linear, &[r, w, bias], &[24, 5]);
        b.out(y);
        let y = b.op(Rt::Linear, &[r, r], &[24, 24]);
        b.out(y);
        let y = b.op(Rt::Linear, &[x, r], &[1, 4, 6, 24]);
        b.out(y);

        let y = b.op(Rt::Softmax { axis: 2 }, &[x], &s);
        b.out(y);
        let y = b.op(Rt::Concat { axis: 3 }, &[x, pos], &[1, 4, 6, 12]);
        b.out(y);
        b.g
    }

    #[test]
    fn every_op_round_trips() {
        let g = every_op();
        for opset in [13, 14, 18, 19, 21] {
            let model = round_trip(&g, opset);
            assert_eq!(model.opset_import[0].version(), opset);
            let types = op_types(&model);
            // HardSwish is an op from 14 on; GELU is always decomposed.
            assert_eq!(types.contains(&"HardSwish".to_string()), opset >= 14);
            assert!(!types.contains(&"Gelu".to_string()));
            // Nearest resizing with tf_half_pixel_for_nearest is two Gathers.
            let gathers = types.iter().filter(|t| *t == "Gather").count();
            assert_eq!(gathers, 4);
        }
        let model = to_onnx(&g, 13).unwrap();
        let graph = model.graph.unwrap();
        // The weight shared by the two 4-D Linear nodes is transposed once.
        let transposed = graph
            .initializer
            .iter()
            .filter(|t| t.name().ends_with("_transposed"))
            .count();
        assert_eq!(transposed, 1);
        // Node and value names are unique.
        let nodes: HashSet<&str> = graph.node.iter().map(|n| n.name()).collect();
        assert_eq!(nodes.len(), graph.node.len());
        let mut values: Vec<&str> = graph.initializer.iter().map(|t| t.name()).collect();
        values.extend(
            graph
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str)),
        );
        let distinct: HashSet<&str> = values.iter().copied().collect();
        assert_eq!(distinct.len(), values.len());
    }

    #[test]
    fn layer_norm_raises_the_opset_to_17() {
        let mut b = Build::default();
        let x = b.input("x", &[2, 3, 5]);
        let (scale, bias) = (b.constant(&[3, 5]), b.constant(&[3, 5]));
        let ln = LayerNorm {
            axis: 1,
            epsilon: 1e-5,
        };
        let y = b.act(
            Rt::LayerNorm(ln),
            &[x, scale, bias],
            &[2, 3, 5],
            Activation::Gelu,
        );
        b.out(y);
        let model = round_trip(&b.g, 13);
        assert_eq!(model.opset_import[0].version(), 17);
        assert_eq!(model.ir_version, Some(8));
    }

    #[test]
    fn dilated_average_pooling_needs_opset_19() {
        let mut b = Build::default();
        let x = b.input("x", &[1, 2, 7, 7]);
        let p = Pool2d {
            kind: PoolKind::Average,
            kernel: [2, 2],
            stride: [1, 1],
            dilation: [2, 2],
            pads: [0; 4],
            ceil_mode: false,
            count_include_pad: false,
        };
        let y = b.op(Rt::Pool2d(p), &[x], &[1, 2, 5, 5]);
        b.out(y);
        let err = to_onnx(&b.g, 13).unwrap_err().to_string();
        assert!(err.contains("node 'n0' (AveragePool)"), "{err}");
        assert!(err.contains("opset 19"), "{err}");
        let model = round_trip(&b.g, 19);
        assert_eq!(model.ir_version, Some(9));
    }

    #[test]
    fn refuses_unknown_opsets_and_malformed_graphs() {
        let g = small_cnn();
        for opset in [12, 22] {
            let err = to_onnx(&g, opset).unwrap_err();
            assert!(matches!(err, ExportOnnxError::Opset(o) if o == opset));
        }
        let mut bad = g.clone();
        bad.nodes[2].inputs.push(999);
        let err = to_onnx(&bad, 13).unwrap_err().to_string();
        assert!(err.contains("node 'n2'") && err.contains("#999"), "{err}");
        let mut bad = g.clone();
        bad.nodes[1].inputs.clear();
        let err = to_onnx(&bad, 13).unwrap_err().to_string();
        assert_eq!(err, "node 'n1' (MaxPool): has 0 inputs, expected 1");
        let mut bad = g.clone();
        let tf = Resize {
            mode: ResizeMode::Linear,
            coordinate_transform: CoordinateTransform::TfHalfPixelForNearest,
            nearest_mode: NearestMode::Floor,
            scales: [1.0, 1.0],
        };
        bad.nodes[1].op = Op::Runtime(Rt::Resize(tf));
        let err = to_onnx(&bad, 13).unwrap_err().to_string();
        assert!(
            err.starts_with("node 'n1' (Resize): linear resizing"),
            "{err}"
        );
        let mut bad = g;
        let orphan = bad.activation("orphan", vec![1]);
        bad.outputs.push(orphan);
        let err = to_onnx(&bad, 13).unwrap_err().to_string();
        assert!(err.contains("'orphan'"), "{err}");
    }

    #[test]
    fn names_stay_unique_and_unused_constants_are_left_out() {
        let mut b = Build::default();
        let x = b.input("t", &[1, 2]);
        let unused = b.constant(&[100]);
        let y1 = b.unary(x, Activation::Relu);
        let y2 = b.unary(y1, Activation::Tanh);
        // Clashing and empty names.
        b.g.values[y1].name = "t".into();
        b.g.values[y2].name = String::new();
        b.g.nodes[1].name = "n0".into();
        b.out(y2);
        let model = round_trip(&b.g, 13);
        let graph = model.graph.unwrap();
        assert_eq!(graph.node[0].output, ["t_1"]);
        assert_eq!(graph.node[1].name(), "n0/activation_1");
        assert_eq!(graph.output[0].name(), format!("value_{y2}"));
        assert!(graph.initializer.is_empty(), "{unused} written");
    }

    #[test]
    fn write_onnx_writes_a_readable_file() {
        let dir = std::env::temp_dir().join(format!("lopper-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.onnx");
        write_onnx(&small_cnn(), &path).unwrap();
        let model = crate::onnx::load(&path).unwrap();
        assert_eq!(model.opset_import[0].version(), DEFAULT_OPSET);
        let err = write_onnx(&small_cnn(), &dir.join("missing/model.onnx")).unwrap_err();
        assert!(err.to_string().starts_with("cannot write"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
