//! Conversions of the ops real mobile and sequence models use beyond the core set:
//! transposed convolution, resizing, normalisations, reductions, slicing and gathering.

use lopper_runtime::graph::{
    Activation, BinaryKind, ConvTranspose2d, CoordinateTransform, Gather, LayerNorm, Lrn,
    NearestMode, Op as Rt, Reduce, ReduceKind, Resize, ResizeMode, Slice,
};
use lopper_runtime::ops::{
    convtranspose::conv_transpose_output_len, reduce::reduce_shape, slice::slice_axis,
};

use super::convert::{pair, Cx};
use super::fold::{slice_params, wrap};
use super::normalize::{axes, axis, window_pads};
use crate::ir::ValueId;
use crate::onnx::Attrs;

type Result<T> = std::result::Result<T, String>;

/// Element-wise ops that map to one activation.
pub fn activation(op: &str, attrs: &Attrs) -> Result<Option<Activation>> {
    Ok(Some(match op {
        "Abs" => Activation::Abs,
        "Neg" => Activation::Neg,
        "Sqrt" => Activation::Sqrt,
        "Exp" => Activation::Exp,
        "Erf" => Activation::Erf,
        "Reciprocal" => Activation::Reciprocal,
        "Softplus" => Activation::Softplus,
        "Elu" => Activation::Elu {
            alpha: attrs.float("alpha", 1.0),
        },
        "Gelu" => match attrs
            .string("approximate", "none")
            .map_err(|e| e.to_string())?
        {
            "none" => Activation::Gelu,
            other => return Err(format!("approximate '{other}' is not supported")),
        },
        _ => return Ok(None),
    }))
}

/// Max, Min (any number of inputs) and Pow.
pub fn variadic(cx: &mut Cx, kind: BinaryKind) -> Result<()> {
    let terms: Vec<ValueId> = cx.inputs.iter().flatten().copied().collect();
    let Some((&first, rest)) = terms.split_first() else {
        return Err("no inputs".into());
    };
    if rest.is_empty() {
        cx.alias(first);
        return Ok(());
    }
    let mut acc = first;
    for (i, &t) in rest.iter().enumerate() {
        acc = cx.binary(kind, acc, t, i + 1 == rest.len())?;
    }
    Ok(())
}

/// Mean of any number of inputs: their sum times 1/n.
pub fn mean(cx: &mut Cx) -> Result<()> {
    let terms: Vec<ValueId> = cx.inputs.iter().flatten().copied().collect();
    let Some((&first, rest)) = terms.split_first() else {
        return Err("no inputs".into());
    };
    let mut acc = first;
    for &t in rest {
        acc = cx.binary(BinaryKind::Add, acc, t, false)?;
    }
    let scale = candle_core::Tensor::new(1.0 / terms.len() as f32, &candle_core::Device::Cpu)
        .map_err(|e| e.to_string())?;
    let scale = cx.new_constant("inv_count", scale);
    cx.binary(BinaryKind::Mul, acc, scale, true).map(drop)
}

/// PRelu as `max(x, 0) + slope * min(x, 0)`.
pub fn prelu(cx: &mut Cx) -> Result<()> {
    let (x, slope) = (cx.req(0)?, cx.req(1)?);
    let zero =
        candle_core::Tensor::new(0.0f32, &candle_core::Device::Cpu).map_err(|e| e.to_string())?;
    let zero = cx.new_constant("zero", zero);
    let pos = cx.binary(BinaryKind::Max, x, zero, false)?;
    let neg = cx.binary(BinaryKind::Min, x, zero, false)?;
    let scaled = cx.binary(BinaryKind::Mul, neg, slope, false)?;
    cx.binary(BinaryKind::Add, pos, scaled, true).map(drop)
}

/// ReduceMean / Sum / Max / Min, and GlobalMaxPool.
pub fn reduce(cx: &mut Cx, attrs: &Attrs, op: &str) -> Result<()> {
    let x = cx.req(0)?;
    let s = cx.shape(x);
    let (kind, list, keepdims) = if op == "GlobalMaxPool" {
        (ReduceKind::Max, (2..s.len() as i64).collect(), true)
    } else {
        let kind = match op {
            "ReduceMean" => ReduceKind::Mean,
            "ReduceSum" => ReduceKind::Sum,
            "ReduceMax" => ReduceKind::Max,
            _ => ReduceKind::Min,
        };
        // ReduceSum takes axes as an input from opset 13, the others from opset 18.
        let from_input = if op == "ReduceSum" {
            cx.opset() >= 13
        } else {
            cx.opset() >= 18
        };
        let list = if from_input {
            cx.const_ints(1)?
        } else {
            attrs.ints("axes").map(<[i64]>::to_vec)
        };
        let list = match list {
            Some(l) if !l.is_empty() => l,
            _ if attrs.int("noop_with_empty_axes", 0) != 0 => {
                cx.alias(x);
                return Ok(());
            }
            _ => (0..s.len() as i64).collect(),
        };
        (kind, list, attrs.int("keepdims", 1) != 0)
    };
    let axes = axes(&list, s.len())?;
    let shape = reduce_shape(&s, &axes, keepdims).ok_or("invalid reduction axes")?;
    cx.emit_rt(
        Rt::Reduce(Reduce {
            kind,
            axes,
            keepdims,
        }),
        vec![x],
        shape,
    );
    Ok(())
}

/// Local response normalisation across channels.
pub fn lrn(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let size = usize::try_from(attrs.int("size", 0))
        .ok()
        .filter(|&s| s > 0)
        .ok_or("size must be positive")?;
    let shape = cx.shape(x);
    let p = Lrn {
        size,
        alpha: attrs.float("alpha", 1e-4),
        beta: attrs.float("beta", 0.75),
        bias: attrs.float("bias", 1.0),
    };
    cx.emit_rt(Rt::Lrn(p), vec![x], shape);
    Ok(())
}

/// LayerNormalization over the axes from `axis` on.
pub fn layer_norm(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let s = cx.shape(x);
    let a = axis(attrs.int("axis", -1), s.len())?;
    let mut inputs = vec![x, cx.req(1)?];
    inputs.extend(cx.input(2));
    let p = LayerNorm {
        axis: a,
        epsilon: attrs.float("epsilon", 1e-5),
    };
    cx.emit_rt(Rt::LayerNorm(p), inputs, s);
    Ok(())
}

/// Slice with every axis listed and bounds wrapped, as the runtime wants.
pub fn slice(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let s = cx.shape(x);
    let constants: Vec<Option<candle_core::Tensor>> = (0..cx.inputs.len())
        .map(|i| cx.input(i).and_then(|v| cx.constant(v).cloned()))
        .collect();
    if (1..cx.inputs.len()).any(|i| cx.input(i).is_some() && constants[i].is_none()) {
        return Err("starts, ends, axes and steps must be constants".into());
    }
    let p = slice_params(attrs, cx.opset(), &constants)?;
    let listed = match &p.axes {
        Some(a) => a
            .iter()
            .map(|&v| axis(v, s.len()))
            .collect::<Result<Vec<_>>>()?,
        None => (0..p.starts.len()).collect(),
    };
    let mut starts = vec![0; s.len()];
    let mut ends = vec![i64::MAX; s.len()];
    let mut steps = vec![1; s.len()];
    for (i, &a) in listed.iter().enumerate() {
        starts[a] = wrap(p.starts[i], s[a]);
        ends[a] = wrap(p.ends[i], s[a]);
        steps[a] = p.steps.as_ref().map_or(1, |st| st[i]);
    }
    emit_slice(cx, x, starts, ends, steps, true)
}

fn emit_slice(
    cx: &mut Cx,
    x: ValueId,
    starts: Vec<i64>,
    ends: Vec<i64>,
    steps: Vec<i64>,
    last: bool,
) -> Result<()> {
    let s = cx.shape(x);
    let mut shape = Vec::with_capacity(s.len());
    for a in 0..s.len() {
        let (_, count) = slice_axis(s[a], starts[a], ends[a], steps[a]).ok_or("slice step is 0")?;
        if count == 0 {
            return Err(format!("the slice of axis {a} is empty"));
        }
        shape.push(count);
    }
    let op = Rt::Slice(Slice {
        starts,
        ends,
        steps,
    });
    if last {
        cx.emit_rt(op, vec![x], shape);
    } else {
        let v = cx.temp(op, vec![x], shape);
        cx.pending.push(v);
    }
    Ok(())
}

/// Split into one Slice per output.
pub fn split(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let s = cx.shape(x);
    let a = axis(attrs.int("axis", 0), s.len())?;
    let outputs = cx.node.output.len();
    let sizes: Vec<usize> = match (
        cx.opset() >= 13,
        cx.const_ints(1)?,
        attrs.ints("split").map(<[i64]>::to_vec),
    ) {
        (true, Some(sizes), _) | (false, _, Some(sizes)) => {
            sizes.iter().map(|&v| v.max(0) as usize).collect()
        }
        (false, _, None) | (true, None, _) => {
            let parts = usize::try_from(attrs.int("num_outputs", outputs as i64))
                .map_err(|_| "bad num_outputs")?;
            let chunk = s[a].div_ceil(parts.max(1));
            (0..parts)
                .map(|i| chunk.min(s[a].saturating_sub(i * chunk)))
                .collect()
        }
    };
    if sizes.len() != outputs || sizes.iter().sum::<usize>() != s[a] {
        return Err(format!(
            "split sizes {sizes:?} do not cover axis {a} of {s:?} in {outputs} outputs"
        ));
    }
    let mut start = 0;
    for (k, &size) in sizes.iter().enumerate() {
        let mut starts = vec![0; s.len()];
        let mut ends: Vec<i64> = s.iter().map(|&d| d as i64).collect();
        starts[a] = start as i64;
        ends[a] = (start + size) as i64;
        emit_slice(cx, x, starts, ends, vec![1; s.len()], false)?;
        let v = cx.pending.pop().expect("emit_slice pushed it");
        cx.bind(k, v);
        start += size;
    }
    Ok(())
}

/// Gather along one axis with constant indices.
pub fn gather(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let s = cx.shape(x);
    let a = axis(attrs.int("axis", 0), s.len())?;
    let idx_value = cx.req(1)?;
    let indices_shape = cx.shape(idx_value);
    let raw = cx.const_ints(1)?.ok_or("indices must be constant")?;
    let indices = raw
        .iter()
        .map(|&i| {
            let j = wrap(i, s[a]);
            usize::try_from(j)
                .ok()
                .filter(|&j| j < s[a])
                .ok_or_else(|| format!("index {i} is out of range for {}", s[a]))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut shape = s[..a].to_vec();
    shape.extend_from_slice(&indices_shape);
    shape.extend_from_slice(&s[a + 1..]);
    cx.emit_rt(
        Rt::Gather(Gather {
            axis: a,
            indices,
            indices_shape,
        }),
        vec![x],
        shape,
    );
    Ok(())
}

/// ConvTranspose (2-D).
pub fn conv_transpose(cx: &mut Cx, attrs: &Attrs) -> Result<()> {
    let x = cx.req(0)?;
    let w = cx.req(1)?;
    cx.require_rank(x, 4, "input (only 2-D transposed convolution is supported)")?;
    cx.require_rank(w, 4, "weight")?;
    let (xs, ws) = (cx.shape(x), cx.shape(w));
    let groups = usize::try_from(attrs.int("group", 1))
        .ok()
        .filter(|&g| g > 0)
        .ok_or("bad group")?;
    if ws[0] != xs[1] || xs[1] % groups != 0 {
        return Err(format!(
            "weight {ws:?} does not fit input {xs:?} with {groups} groups"
        ));
    }
    let kernel = [ws[2], ws[3]];
    let stride = pair(attrs.ints("strides"), 1, "strides")?;
    let dilation = pair(attrs.ints("dilations"), 1, "dilations")?;
    let output_padding = match attrs.ints("output_padding") {
        None => [0, 0],
        Some([h, w]) if *h >= 0 && *w >= 0 => [*h as usize, *w as usize],
        Some(other) => return Err(format!("output_padding {other:?} must be two values")),
    };
    let auto_pad = attrs
        .string("auto_pad", "NOTSET")
        .map_err(|e| e.to_string())?;
    let full = |a: usize| {
        stride[a] * (xs[2 + a] - 1) + output_padding[a] + (kernel[a] - 1) * dilation[a] + 1
    };
    let pads = if let Some(out) = attrs.ints("output_shape") {
        // Explicit output size: the padding is whatever makes it fit (extra at the end
        // for SAME_UPPER and NOTSET, at the start for SAME_LOWER).
        let out = &out[out.len().saturating_sub(2)..];
        let mut pads = [0; 4];
        for a in 0..2 {
            let total = full(a)
                .checked_sub(out[a] as usize)
                .ok_or("output_shape is larger than the transposed convolution produces")?;
            let (begin, end) = if auto_pad == "SAME_LOWER" {
                (total - total / 2, total / 2)
            } else {
                (total / 2, total - total / 2)
            };
            pads[a] = begin;
            pads[a + 2] = end;
        }
        pads
    } else if auto_pad.starts_with("SAME") {
        let mut pads = [0; 4];
        for a in 0..2 {
            let total = full(a).saturating_sub(xs[2 + a] * stride[a]);
            let (begin, end) = if auto_pad == "SAME_LOWER" {
                (total - total / 2, total / 2)
            } else {
                (total / 2, total - total / 2)
            };
            pads[a] = begin;
            pads[a + 2] = end;
        }
        pads
    } else {
        window_pads(
            auto_pad,
            attrs.ints("pads"),
            [xs[2], xs[3]],
            kernel,
            stride,
            dilation,
        )?
    };
    let len = |a: usize| {
        conv_transpose_output_len(
            xs[2 + a],
            kernel[a],
            stride[a],
            dilation[a],
            [pads[a], pads[a + 2]],
            output_padding[a],
        )
        .filter(|&l| l > 0)
        .ok_or_else(|| "the padding removes the whole output".to_string())
    };
    let shape = vec![xs[0], ws[1] * groups, len(0)?, len(1)?];
    let p = ConvTranspose2d {
        stride,
        dilation,
        pads,
        output_padding,
        groups,
    };
    let mut inputs = vec![x, w];
    if let Some(b) = cx.input(2) {
        if cx.shape(b) != [ws[1] * groups] {
            return Err(format!(
                "bias has shape {:?}, the layer has {} outputs",
                cx.shape(b),
                ws[1] * groups
            ));
        }
        inputs.push(b);
    }
    cx.emit_rt(Rt::ConvTranspose2d(p), inputs, shape);
    Ok(())
}

/// Resize (opset 10+) and Upsample (before opset 10) of the last two axes of NCHW.
pub fn resize(cx: &mut Cx, attrs: &Attrs, upsample: bool) -> Result<()> {
    let x = cx.req(0)?;
    cx.require_rank(x, 4, "input (only NCHW resizing is supported)")?;
    let s = cx.shape(x);
    let mode = match attrs.string("mode", "nearest").map_err(|e| e.to_string())? {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        other => return Err(format!("mode '{other}' is not supported")),
    };
    for unsupported in ["antialias", "exclude_outside"] {
        if attrs.int(unsupported, 0) != 0 {
            return Err(format!("{unsupported} is not supported"));
        }
    }
    if attrs.has("axes") {
        return Err("the axes attribute is not supported".into());
    }
    let float_input = |cx: &Cx, i: usize| -> Result<Option<Vec<f32>>> {
        match cx.input(i) {
            None => Ok(None),
            Some(v) => {
                let t = cx
                    .constant(v)
                    .ok_or(format!("input {i} must be a constant"))?;
                let v = t
                    .to_dtype(candle_core::DType::F32)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| e.to_string())?;
                Ok(Some(v).filter(|v| !v.is_empty()))
            }
        }
    };
    let (scales, sizes) = if upsample {
        let scales = match attrs.floats("scales") {
            Some(s) => Some(s.to_vec()),
            None => float_input(cx, 1)?,
        };
        (scales, None)
    } else if cx.opset() < 11 {
        (float_input(cx, 1)?, None)
    } else {
        (
            float_input(cx, 2)?,
            cx.const_ints(3)?.filter(|v| !v.is_empty()),
        )
    };
    let (out_hw, scale) = match (scales, sizes) {
        (Some(sc), _) if sc.len() == 4 => {
            if sc[0] != 1.0 || sc[1] != 1.0 {
                return Err(format!("scales {sc:?} resize the batch or channel axis"));
            }
            let out = [
                (s[2] as f32 * sc[2]).floor() as usize,
                (s[3] as f32 * sc[3]).floor() as usize,
            ];
            (out, [sc[2], sc[3]])
        }
        (_, Some(sz)) if sz.len() == 4 => {
            if sz[0] as usize != s[0] || sz[1] as usize != s[1] {
                return Err(format!("sizes {sz:?} change the batch or channel axis"));
            }
            let out = [sz[2].max(0) as usize, sz[3].max(0) as usize];
            (
                out,
                [out[0] as f32 / s[2] as f32, out[1] as f32 / s[3] as f32],
            )
        }
        _ => return Err("needs 4 scales or 4 sizes".into()),
    };
    if out_hw.contains(&0) {
        return Err("the resized output is empty".into());
    }
    let default_transform = if upsample || cx.opset() < 11 {
        "asymmetric"
    } else {
        "half_pixel"
    };
    let coordinate_transform = match attrs
        .string("coordinate_transformation_mode", default_transform)
        .map_err(|e| e.to_string())?
    {
        "half_pixel" => CoordinateTransform::HalfPixel,
        "pytorch_half_pixel" => CoordinateTransform::PytorchHalfPixel,
        "align_corners" => CoordinateTransform::AlignCorners,
        "asymmetric" => CoordinateTransform::Asymmetric,
        "tf_half_pixel_for_nearest" => CoordinateTransform::TfHalfPixelForNearest,
        other => {
            return Err(format!(
                "coordinate_transformation_mode '{other}' is not supported"
            ))
        }
    };
    let default_nearest = if upsample || cx.opset() < 11 {
        "floor"
    } else {
        "round_prefer_floor"
    };
    let nearest_mode = match attrs
        .string("nearest_mode", default_nearest)
        .map_err(|e| e.to_string())?
    {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        other => return Err(format!("nearest_mode '{other}' is not supported")),
    };
    let p = Resize {
        mode,
        coordinate_transform,
        nearest_mode,
        scales: scale,
    };
    cx.emit_rt(
        Rt::Resize(p),
        vec![x],
        vec![s[0], s[1], out_hw[0], out_hw[1]],
    );
    Ok(())
}
