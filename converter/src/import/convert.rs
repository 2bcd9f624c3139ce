//! ONNX nodes with run-time inputs to IR nodes, one arm per op type. Every arm computes the
//! static output shape; attributes the runtime cannot honour are refused with a reason.

use candle_core::{DType, Tensor};
use lopper_runtime::graph::{
    Activation, BinaryKind, Conv2d, Op as Rt, Pad, PadMode, Pool2d, PoolKind,
};
use lopper_runtime::ops::{binary::broadcast_shape, matmul::matmul_output_shape, window};

use super::fold::ints;
use super::normalize::{axis, reshape_target, squeeze, unsqueeze, window_pads};
use super::{convert_more, Importer};
use crate::ir::{Op, ValueId};
use crate::onnx::proto::NodeProto;
use crate::onnx::Attrs;

type Result<T> = std::result::Result<T, String>;

/// ONNX op types with a conversion (constant-only ops are folded instead, see `fold`).
pub const SUPPORTED: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Div",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Flatten",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LayerNormalization",
    "LeakyRelu",
    "LRN",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mul",
    "Neg",
    "Pad",
    "Pow",
    "PRelu",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Resize",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Softplus",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Transpose",
    "Unsqueeze",
    "Upsample",
];

/// The node being converted, with its resolved inputs.
pub(super) struct Cx<'a> {
    im: &'a mut Importer,
    pub node: &'a NodeProto,
    name: &'a str,
    pub inputs: &'a [Option<ValueId>],
    /// Intermediate values created so far, for unique names.
    temps: usize,
    /// Values made by helpers for the caller to bind.
    pub pending: Vec<ValueId>,
}

impl Cx<'_> {
    /// Binds ONNX output `k` to `v`.
    pub fn bind(&mut self, k: usize, v: ValueId) {
        if let Some(name) = self.node.output.get(k).filter(|n| !n.is_empty()) {
            self.im.names.insert(name.clone(), v);
        }
    }

    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    pub fn req(&self, i: usize) -> Result<ValueId> {
        self.input(i).ok_or_else(|| format!("input {i} is missing"))
    }

    pub fn shape(&self, v: ValueId) -> Vec<usize> {
        self.im.graph.shape(v).to_vec()
    }

    pub fn constant(&self, v: ValueId) -> Option<&Tensor> {
        self.im.graph.constant_of(v)
    }

    /// Integer values of optional constant input `i`.
    pub fn const_ints(&self, i: usize) -> Result<Option<Vec<i64>>> {
        match self.input(i) {
            None => Ok(None),
            Some(v) => match self.constant(v) {
                Some(t) => ints(t).map(Some),
                None => Err(format!("input {i} must be a constant")),
            },
        }
    }

    /// Float value of optional constant scalar input `i`.
    pub fn const_scalar(&self, i: usize) -> Result<Option<f32>> {
        match self.input(i) {
            None => Ok(None),
            Some(v) => {
                let t = self
                    .constant(v)
                    .ok_or(format!("input {i} must be a constant"))?;
                let values = t
                    .to_dtype(DType::F32)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| e.to_string())?;
                Ok(values.first().copied())
            }
        }
    }

    pub fn new_constant(&mut self, suffix: &str, data: Tensor) -> ValueId {
        let name = format!("{}.{suffix}", self.name);
        self.im.graph.constant(&name, data)
    }

    /// Adds a node writing a fresh intermediate value.
    pub fn temp(&mut self, op: Rt, inputs: Vec<ValueId>, shape: Vec<usize>) -> ValueId {
        self.temps += 1;
        let name = format!("{}.{}", self.node.output[0], self.temps);
        let out = self.im.graph.activation(&name, shape);
        let node_name = format!("{}.{}", self.name, self.temps);
        self.im
            .graph
            .push(&node_name, Op::Runtime(op), inputs, vec![out]);
        out
    }

    /// Adds the node that writes ONNX output 0.
    pub fn emit(&mut self, op: Op, inputs: Vec<ValueId>, shape: Vec<usize>) -> ValueId {
        let out = self.im.graph.activation(&self.node.output[0], shape);
        self.im.graph.push(self.name, op, inputs, vec![out]);
        self.im.names.insert(self.node.output[0].clone(), out);
        out
    }

    pub fn emit_rt(&mut self, op: Rt, inputs: Vec<ValueId>, shape: Vec<usize>) -> ValueId {
        self.emit(Op::Runtime(op), inputs, shape)
    }

    /// Binds ONNX output 0 to an existing value (Identity, Dropout).
    pub fn alias(&mut self, v: ValueId) {
        self.im.names.insert(self.node.output[0].clone(), v);
    }

    /// The activation on its own, as a Unary node.
    pub fn unary(&mut self, act: Activation) -> Result<()> {
        let x = self.req(0)?;
        let shape = self.shape(x);
        self.emit_rt(Rt::Unary, vec![x], shape);
        let last = self.im.graph.nodes.len() - 1;
        self.im.graph.nodes[last].activation = act;
        Ok(())
    }

    pub fn binary(
        &mut self,
        kind: BinaryKind,
        a: ValueId,
        b: ValueId,
        last: bool,
    ) -> Result<ValueId> {
        let shape = broadcast_shape(&self.shape(a), &self.shape(b)).ok_or_else(|| {
            format!(
                "shapes {:?} and {:?} do not broadcast",
                self.shape(a),
                self.shape(b)
            )
        })?;
        Ok(if last {
            self.emit_rt(Rt::Binary(kind), vec![a, b], shape)
        } else {
            self.temp(Rt::Binary(kind), vec![a, b], shape)
        })
    }

    pub fn reshape(&mut self, x: ValueId, shape: Vec<usize>, last: bool) -> ValueId {
        if last {
            self.emit_rt(Rt::Reshape, vec![x], shape)
        } else {
            self.temp(Rt::Reshape, vec![x], shape)
        }
    }

    pub fn require_rank(&self, v: ValueId, rank: usize, what: &str) -> Result<()> {
        let s = self.shape(v);
        if s.len() == rank {
            Ok(())
        } else {
            Err(format!("{what} must have rank {rank}, has shape {s:?}"))
        }
    }

    pub fn opset(&self) -> i64 {
        self.im.opset
    }
}

/// Converts one node whose inputs are resolved to values.
pub fn convert(
    im: &mut Importer,
    node: &NodeProto,
    name: &str,
    attrs: &Attrs,
    inputs: &[Option<ValueId>],
) -> Result<()> {
    let mut cx = Cx {
        im,
        node,
        name,
        inputs,
        temps: 0,
        pending: Vec::new(),
    };
    let op = node.op_type();
    let used_outputs = node.output.iter().skip(1).filter(|o| !o.is_empty()).count();
    if used_outputs > 0 && !matches!(op, "Dropout" | "Split") {
        return Err(format!(
            "only the first output is supported, {used_outputs} more are used"
        ));
    }
    if let Some(act) = convert_more::activation(op, attrs)? {
        return cx.unary(act);
    }
    match op {
        "Identity" | "Dropout" => {
            if cx.const_ints(2)?.is_some_and(|t| t.first() == Some(&1)) {
                return Err("training mode is not supported".into());
            }
            let x = cx.req(0)?;
            cx.alias(x);
            Ok(())
        }
        "Relu" => cx.unary(Activation::Relu),
        "Sigmoid" => cx.unary(Activation::Sigmoid),
        "Tanh" => cx.unary(Activation::Tanh),
        "HardSwish" => cx.unary(Activation::HardSwish),
        "LeakyRelu" => cx.unary(Activation::LeakyRelu {
            alpha: attrs.float("alpha", 0.01),
        }),
        "HardSigmoid" => cx.unary(Activation::HardSigmoid {
            alpha: attrs.float("alpha", 0.2),
            beta: attrs.float("beta", 0.5),
        }),
        "Clip" => {
            let (min, max) = if cx.opset() < 11 {
                (attrs.float("min", f32::MIN), attrs.float("max", f32::MAX))
            } else {
                (
                    cx.const_scalar(1)?.unwrap_or(f32::MIN),
                    cx.const_scalar(2)?.unwrap_or(f32::MAX),
                )
            };
            cx.unary(Activation::Clip { min, max })
        }
        "Cast" => {
            // TensorProto.DataType 1 float and 11 double are both f32 here; float16 would
            // need rounding the runtime does not do.
            if matches!(attrs.int("to", 0), 1 | 11) {
                let x = cx.req(0)?;
                cx.alias(x);
                Ok(())
            } else {
                Err("casts to integer or 16-bit types are not supported at run time".into())
            }
        }
        "Pow" => convert_more::variadic(&mut cx, BinaryKind::Pow),
        "Max" => convert_more::variadic(&mut cx, BinaryKind::Max),
        "Min" => convert_more::variadic(&mut cx, BinaryKind::Min),
        "Mean" => convert_more::mean(&mut cx),
        "PRelu" => convert_more::prelu(&mut cx),
        "GlobalMaxPool" | "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => {
            convert_more::reduce(&mut cx, attrs, op)
        }
        "LRN" => convert_more::lrn(&mut cx, attrs),
        "LayerNormalization" => convert_more::layer_norm(&mut cx, attrs),
        "Slice" => convert_more::slice(&mut cx, attrs),
        "Split" => convert_more::split(&mut cx, attrs),
        "Gather" => convert_more::gather(&mut cx, attrs),
        "ConvTranspose" => convert_more::conv_transpose(&mut cx, attrs),
        "Resize" | "Upsample" => convert_more::resize(&mut cx, attrs, op == "Upsample"),
        "Add" | "Sub" | "Mul" | "Div" => {
            let kind = match op {
                "Add" => BinaryKind::Add,
                "Sub" => BinaryKind::Sub,
                "Mul" => BinaryKind::Mul,
                _ => BinaryKind::Div,
            };
            let (a, b) = (cx.req(0)?, cx.req(1)?);
            cx.binary(kind, a, b, true).map(drop)
        }
        "Sum" => {
            let terms: Vec<ValueId> = cx.inputs.iter().flatten().copied().collect();
            match terms.as_slice() {
                [] => Err("Sum without inputs".into()),
                [only] => {
                    cx.alias(*only);
                    Ok(())
                }
                [first, rest @ ..] => {
                    let mut acc = *first;
                    for (i, &t) in rest.iter().enumerate() {
                        acc = cx.binary(BinaryKind::Add, acc, t, i + 1 == rest.len())?;
                    }
                    Ok(())
                }
            }
        }
        "Conv" => conv(&mut cx, attrs),
        "MaxPool" | "AveragePool" => pool(&mut cx, attrs, op == "MaxPool"),
        "GlobalAveragePool" => {
            let x = cx.req(0)?;
            cx.require_rank(x, 4, "input")?;
            let s = cx.shape(x);
            cx.emit_rt(Rt::GlobalAveragePool, vec![x], vec![s[0], s[1], 1, 1]);
            Ok(())
        }
        "BatchNormalization" => batch_norm(&mut cx, attrs),
        "Gemm" => gemm(&mut cx, attrs),
        "MatMul" => matmul(&mut cx),
        "Concat" => {
            let parts: Vec<ValueId> = cx.inputs.iter().flatten().copied().collect();
            let first = cx.shape(*parts.first().ok_or("Concat without inputs")?);
            let a = axis(attrs.int("axis", 0), first.len())?;
            let mut shape = first.clone();
            shape[a] = 0;
            for &p in &parts {
                let s = cx.shape(p);
                if s.len() != first.len()
                    || s.iter()
                        .zip(&first)
                        .enumerate()
                        .any(|(i, (x, y))| i != a && x != y)
                {
                    return Err(format!("input {s:?} does not fit {first:?} along axis {a}"));
                }
                shape[a] += s[a];
            }
            cx.emit_rt(Rt::Concat { axis: a }, parts, shape);
            Ok(())
        }
        "Flatten" => {
            let x = cx.req(0)?;
            let s = cx.shape(x);
            let raw = attrs.int("axis", 1);
            let a = if raw == s.len() as i64 {
                s.len()
            } else {
                axis(raw, s.len())?
            };
            let shape = vec![s[..a].iter().product(), s[a..].iter().product()];
            cx.reshape(x, shape, true);
            Ok(())
        }
        "Reshape" => {
            let x = cx.req(0)?;
            let spec = match cx.const_ints(1)? {
                Some(spec) => spec,
                None => attrs
                    .ints("shape")
                    .ok_or("the target shape is missing")?
                    .to_vec(),
            };
            let shape = reshape_target(&cx.shape(x), &spec, attrs.int("allowzero", 0) != 0)?;
            cx.reshape(x, shape, true);
            Ok(())
        }
        "Squeeze" | "Unsqueeze" => {
            let x = cx.req(0)?;
            let list = match (cx.opset() >= 13, cx.const_ints(1)?) {
                (true, Some(a)) => a,
                _ => attrs.ints("axes").unwrap_or_default().to_vec(),
            };
            let s = cx.shape(x);
            let shape = if op == "Squeeze" {
                squeeze(&s, &list)?
            } else {
                unsqueeze(&s, &list)?
            };
            cx.reshape(x, shape, true);
            Ok(())
        }
        "Transpose" => {
            let x = cx.req(0)?;
            let s = cx.shape(x);
            let perm: Vec<usize> = match attrs.ints("perm") {
                Some(p) => p.iter().map(|&a| axis(a, s.len())).collect::<Result<_>>()?,
                None => (0..s.len()).rev().collect(),
            };
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..s.len()).collect::<Vec<_>>() {
                return Err(format!(
                    "perm {perm:?} is not a permutation of {} axes",
                    s.len()
                ));
            }
            let shape = perm.iter().map(|&p| s[p]).collect();
            cx.emit_rt(Rt::Transpose { perm }, vec![x], shape);
            Ok(())
        }
        "Pad" => pad(&mut cx, attrs),
        "Softmax" => softmax(&mut cx, attrs),
        other => Err(format!("{other} is not supported")),
    }
}

pub(super) fn pair(v: Option<&[i64]>, default: usize, what: &str) -> Result<[usize; 2]> {
    match v {
        None => Ok([default; 2]),
        Some([a, b]) if *a > 0 && *b > 0 => Ok([*a as usize, *b as usize]),
        Some(other) => Err(format!(
            "{what} {other:?} must be two positive values (2-D only)"
        )),
    }
}

/// Stride, dilation, padding and output size of a 2-D sliding window (Conv, pooling)
/// from the ONNX attributes, for an NCHW input of shape `xs`.
struct Window {
    stride: [usize; 2],
    dilation: [usize; 2],
    pads: [usize; 4],
    out: [usize; 2],
}

fn window(attrs: &Attrs, xs: &[usize], kernel: [usize; 2], ceil_mode: bool) -> Result<Window> {
    let stride = pair(attrs.ints("strides"), 1, "strides")?;
    let dilation = pair(attrs.ints("dilations"), 1, "dilations")?;
    let auto_pad = attrs
        .string("auto_pad", "NOTSET")
        .map_err(|e| e.to_string())?;
    let pads = window_pads(
        auto_pad,
        attrs.ints("pads"),
        [xs[2], xs[3]],
        kernel,
        stride,
        dilation,
    )?;
    let len = |a: usize| {
        window::output_len(
            xs[2 + a],
            kernel[a],
            stride[a],
            dilation[a],
            pads[a],
            pads[a + 2],
            ceil_mode,
        )
        .ok_or_else(|| "the window does not fit the padded input".to_string())
    };
    Ok(Window {
        stride,
        dilation,
        pads,
        out: [len(0)?, len(1)?],
    })
}

fn conv(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let w = cx.req(1)?;
    cx.require_rank(x, 4, "input (only 2-D convolution is supported)")?;
    cx.require_rank(w, 4, "weight")?;
    let (xs, ws) = (cx.shape(x), cx.shape(w));
    let kernel = pair(attrs.ints("kernel_shape"), 0, "kernel_shape")
        .ok()
        .filter(|k| k[0] > 0)
        .unwrap_or([ws[2], ws[3]]);
    if kernel != [ws[2], ws[3]] {
        return Err(format!(
            "kernel_shape {kernel:?} does not match weight {ws:?}"
        ));
    }
    let win = window(attrs, &xs, kernel, false)?;
    let groups = usize::try_from(attrs.int("group", 1)).map_err(|_| "negative group")?;
    if groups == 0 || xs[1] % groups != 0 || ws[1] * groups != xs[1] || ws[0] % groups != 0 {
        return Err(format!(
            "{groups} groups do not fit input {xs:?} and weight {ws:?}"
        ));
    }
    let shape = vec![xs[0], ws[0], win.out[0], win.out[1]];
    let attrs = Conv2d {
        stride: win.stride,
        dilation: win.dilation,
        pads: win.pads,
        groups,
    };
    let mut inputs = vec![x, w];
    if let Some(b) = cx.input(2) {
        if cx.shape(b) != [ws[0]] {
            return Err(format!(
                "bias has shape {:?}, the weight has {} filters",
                cx.shape(b),
                ws[0]
            ));
        }
        inputs.push(b);
    }
    cx.emit_rt(Rt::Conv2d(attrs), inputs, shape);
    Ok(())
}

fn pool(cx: &mut Cx, attrs: &Attrs, max: bool) -> Result<()> {
    let x = cx.req(0)?;
    cx.require_rank(x, 4, "input (only 2-D pooling is supported)")?;
    let xs = cx.shape(x);
    let kernel = pair(attrs.ints("kernel_shape"), 0, "kernel_shape")?;
    let ceil_mode = attrs.int("ceil_mode", 0) != 0;
    if attrs.int("storage_order", 0) != 0 {
        return Err("storage_order 1 is not supported".into());
    }
    let win = window(attrs, &xs, kernel, ceil_mode)?;
    let p = Pool2d {
        kind: if max {
            PoolKind::Max
        } else {
            PoolKind::Average
        },
        kernel,
        stride: win.stride,
        dilation: win.dilation,
        pads: win.pads,
        ceil_mode,
        count_include_pad: attrs.int("count_include_pad", 0) != 0,
    };
    cx.emit_rt(
        Rt::Pool2d(p),
        vec![x],
        vec![xs[0], xs[1], win.out[0], win.out[1]],
    );
    Ok(())
}

fn batch_norm(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let params: Vec<ValueId> = (1..5).map(|i| cx.req(i)).collect::<Result<_>>()?;
    let xs = cx.shape(x);
    if xs.len() < 2 {
        return Err(format!("input {xs:?} has no channel axis"));
    }
    for &p in &params {
        if cx.constant(p).is_none() {
            return Err("scale, bias, mean and variance must be constants".into());
        }
        if cx.shape(p) != [xs[1]] {
            return Err(format!(
                "parameter shape {:?} does not match {} channels",
                cx.shape(p),
                xs[1]
            ));
        }
    }
    if attrs.int("training_mode", 0) != 0 {
        return Err("training_mode is not supported".into());
    }
    let mut inputs = vec![x];
    inputs.extend(params);
    cx.emit(
        Op::BatchNorm {
            epsilon: attrs.float("epsilon", 1e-5),
        },
        inputs,
        xs,
    );
    Ok(())
}

fn f32_tensor(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F32).map_err(|e| e.to_string())
}

fn gemm(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let (a, b) = (cx.req(0)?, cx.req(1)?);
    let alpha = attrs.float("alpha", 1.0);
    let beta = attrs.float("beta", 1.0);
    let (trans_a, trans_b) = (attrs.int("transA", 0) != 0, attrs.int("transB", 0) != 0);
    cx.require_rank(a, 2, "A")?;
    cx.require_rank(b, 2, "B")?;
    let a = if trans_a {
        let s = cx.shape(a);
        cx.temp(
            Rt::Transpose { perm: vec![1, 0] },
            vec![a],
            vec![s[1], s[0]],
        )
    } else {
        a
    };
    let b_const = cx.constant(b).cloned();
    let Some(b_data) = b_const else {
        return Err("B must be a constant".into());
    };
    // Linear wants W [N, K]: B is [K, N] unless transposed.
    let w = if trans_b {
        b_data
    } else {
        b_data
            .t()
            .and_then(|t| t.contiguous())
            .map_err(|e| e.to_string())?
    };
    let w = f32_tensor(&w)?;
    let w = if alpha == 1.0 {
        w
    } else {
        w.affine(alpha.into(), 0.0).map_err(|e| e.to_string())?
    };
    let (n, k) = (w.dims()[0], w.dims()[1]);
    let m = cx.shape(a)[0];
    if cx.shape(a)[1] != k {
        return Err(format!(
            "A {:?} does not match B with {k} rows",
            cx.shape(a)
        ));
    }
    let w = cx.new_constant("weight", w);
    let mut inputs = vec![a, w];
    let mut add_after = None;
    if let Some(c) = cx.input(2) {
        let cs = cx.shape(c);
        match cx.constant(c).cloned() {
            Some(data)
                if cs.iter().product::<usize>() == n || cs.iter().product::<usize>() == 1 =>
            {
                let bias = f32_tensor(&data)?
                    .flatten_all()
                    .and_then(|t| t.broadcast_as(n))
                    .and_then(|t| t.affine(beta.into(), 0.0))
                    .map_err(|e| e.to_string())?;
                inputs.push(cx.new_constant("bias", bias));
            }
            _ => add_after = Some(c),
        }
    }
    let Some(c) = add_after else {
        cx.emit_rt(Rt::Linear, inputs, vec![m, n]);
        return Ok(());
    };
    if beta != 1.0 {
        return Err("a run-time C with beta != 1 is not supported".into());
    }
    let y = cx.temp(Rt::Linear, inputs, vec![m, n]);
    cx.binary(BinaryKind::Add, y, c, true).map(drop)
}

fn matmul(cx: &mut Cx) -> Result<()> {
    let (a, b) = (cx.req(0)?, cx.req(1)?);
    let (sa, sb) = (cx.shape(a), cx.shape(b));
    if let Some(data) = cx.constant(b).cloned().filter(|_| sb.len() == 2) {
        // x [..., K] times constant [K, N] is a linear layer with W = B^T.
        let w = f32_tensor(&data)?
            .t()
            .and_then(|t| t.contiguous())
            .map_err(|e| e.to_string())?;
        let w = cx.new_constant("weight", w);
        let (&k, rest) = sa.split_last().ok_or("A is a scalar")?;
        if k != sb[0] {
            return Err(format!("cannot multiply {sa:?} by {sb:?}"));
        }
        let mut shape = rest.to_vec();
        shape.push(sb[1]);
        cx.emit_rt(Rt::Linear, vec![a, w], shape);
        return Ok(());
    }
    // Rank-1 operands get a unit axis, removed again from the result.
    let a2 = if sa.len() == 1 {
        cx.reshape(a, vec![1, sa[0]], false)
    } else {
        a
    };
    let b2 = if sb.len() == 1 {
        cx.reshape(b, vec![sb[0], 1], false)
    } else {
        b
    };
    let out = matmul_output_shape(&cx.shape(a2), &cx.shape(b2))
        .ok_or_else(|| format!("cannot multiply {sa:?} by {sb:?}"))?;
    if sa.len() > 1 && sb.len() > 1 {
        cx.emit_rt(Rt::MatMul, vec![a2, b2], out);
        return Ok(());
    }
    let y = cx.temp(Rt::MatMul, vec![a2, b2], out.clone());
    let mut shape = out;
    if sb.len() == 1 {
        shape.pop();
    }
    if sa.len() == 1 {
        shape.remove(shape.len() - if sb.len() == 1 { 1 } else { 2 });
    }
    cx.reshape(y, shape, true);
    Ok(())
}

fn pad(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let s = cx.shape(x);
    let rank = s.len();
    let mode = match attrs
        .string("mode", "constant")
        .map_err(|e| e.to_string())?
    {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        other => return Err(format!("mode '{other}' is not supported")),
    };
    let (pads, value) = if cx.opset() < 11 {
        let p = attrs
            .ints("pads")
            .or(attrs.ints("paddings"))
            .ok_or("pads are missing")?;
        (p.to_vec(), attrs.float("value", 0.0))
    } else {
        let p = cx.const_ints(1)?.ok_or("pads are missing")?;
        (p, cx.const_scalar(2)?.unwrap_or(0.0))
    };
    let axes: Vec<usize> = match cx.const_ints(3)? {
        Some(a) => a.iter().map(|&v| axis(v, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!("{} pads for {} axes", pads.len(), axes.len()));
    }
    if let Some(p) = pads.iter().find(|&&p| p < 0) {
        return Err(format!("negative padding {p} (cropping) is not supported"));
    }
    let (mut begin, mut end) = (vec![0; rank], vec![0; rank]);
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i] as usize;
        end[a] = pads[i + axes.len()] as usize;
    }
    let shape = (0..rank).map(|a| s[a] + begin[a] + end[a]).collect();
    cx.emit_rt(
        Rt::Pad(Pad {
            mode,
            begin,
            end,
            value,
        }),
        vec![x],
        shape,
    );
    Ok(())
}

fn softmax(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let s = cx.shape(x);
    let legacy = cx.opset() < 13;
    let a = axis(attrs.int("axis", if legacy { 1 } else { -1 }), s.len())?;
    if !legacy || a + 1 == s.len() {
        cx.emit_rt(Rt::Softmax { axis: a }, vec![x], s);
        return Ok(());
    }
    // Before opset 13 Softmax normalises over all axes from `axis` on, as one.
    let flat = vec![s[..a].iter().product(), s[a..].iter().product()];
    let x2 = cx.reshape(x, flat.clone(), false);
    let y = cx.temp(Rt::Softmax { axis: 1 }, vec![x2], flat);
    cx.reshape(y, s, true);
    Ok(())
}
