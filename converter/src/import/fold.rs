//! Constant folding: ops whose inputs are all known at import time are computed in candle
//! and become constants. This is how the shape sub-graphs of exported models
//! (Shape -> Gather -> Concat -> Reshape, ConstantOfShape, Range, ...) disappear.

use candle_core::{DType, Device, Tensor};

use lopper_runtime::ops::slice::slice_axis;

use super::normalize::{axis, reshape_target, squeeze, unsqueeze};
use crate::onnx::Attrs;

type Result<T> = std::result::Result<T, String>;

/// Ops this module can fold.
pub const FOLDABLE: &[&str] = &[
    "Add",
    "Cast",
    "Concat",
    "ConstantOfShape",
    "Div",
    "Equal",
    "Expand",
    "Flatten",
    "Gather",
    "Identity",
    "Mul",
    "Neg",
    "Range",
    "Reshape",
    "Shape",
    "Size",
    "Slice",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
    "Where",
];

fn e(err: candle_core::Error) -> String {
    err.to_string()
}

/// Integer values of a constant (any element type).
pub fn ints(t: &Tensor) -> Result<Vec<i64>> {
    t.to_dtype(DType::I64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<i64>())
        .map_err(e)
}

/// A 1-D I64 tensor.
pub fn int_tensor(values: Vec<i64>) -> Result<Tensor> {
    let n = values.len();
    Tensor::from_vec(values, n, &Device::Cpu).map_err(e)
}

/// Folds one node whose inputs (`None` for omitted optional ones) are all constants.
pub fn fold(op: &str, attrs: &Attrs, opset: i64, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let input = |i: usize| -> Result<&Tensor> {
        inputs
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let x = || input(0);
    let out = match op {
        "Identity" => x()?.clone(),
        "Shape" => {
            let dims: Vec<i64> = x()?.dims().iter().map(|&d| d as i64).collect();
            let rank = dims.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
            let start = clampi(attrs.int("start", 0));
            let end = clampi(attrs.int("end", rank));
            int_tensor(dims[start..end.max(start)].to_vec())?
        }
        "Size" => Tensor::new(x()?.elem_count() as i64, &Device::Cpu).map_err(e)?,
        "Cast" => {
            // TensorProto.DataType: 1 float, 10 float16, 11 double; everything else integral.
            let to = attrs.int("to", 1);
            let dtype = if matches!(to, 1 | 10 | 11 | 16) {
                DType::F32
            } else {
                DType::I64
            };
            x()?.to_dtype(dtype).map_err(e)?
        }
        "Neg" => {
            let (a, int) = widen(x()?)?;
            narrow(a.neg().map_err(e)?, int, false)?
        }
        "Sqrt" => x()?
            .to_dtype(DType::F32)
            .and_then(|t| t.sqrt())
            .map_err(e)?,
        "Add" | "Sub" | "Mul" | "Div" => {
            let (a, b, int) = same_dtype(x()?, input(1)?)?;
            let out = match op {
                "Add" => a.broadcast_add(&b),
                "Sub" => a.broadcast_sub(&b),
                "Mul" => a.broadcast_mul(&b),
                _ => a.broadcast_div(&b),
            }
            .map_err(e)?;
            narrow(out, int, op == "Div")?
        }
        "Equal" => {
            let (a, b, _) = same_dtype(x()?, input(1)?)?;
            a.broadcast_eq(&b)
                .and_then(|t| t.to_dtype(DType::I64))
                .map_err(e)?
        }
        "Where" => {
            let cond = input(0)?.to_dtype(DType::U8).map_err(e)?;
            let (a, b, int) = same_dtype(input(1)?, input(2)?)?;
            let shape = broadcast(&[cond.dims(), a.dims(), b.dims()])?;
            let cond = cond.broadcast_as(shape.as_slice()).map_err(e)?;
            let a = a.broadcast_as(shape.as_slice()).map_err(e)?;
            let b = b.broadcast_as(shape.as_slice()).map_err(e)?;
            narrow(cond.where_cond(&a, &b).map_err(e)?, int, false)?
        }
        "ConstantOfShape" => {
            let shape: Vec<usize> = ints(x()?)?.iter().map(|&d| d.max(0) as usize).collect();
            let value = attrs
                .tensor("value")
                .map_err(|err| err.to_string())?
                .unwrap_or(Tensor::zeros(1, DType::F32, &Device::Cpu).map_err(e)?);
            value
                .flatten_all()
                .and_then(|v| v.reshape(()))
                .and_then(|v| v.broadcast_as(shape.as_slice()))
                .and_then(|v| v.contiguous())
                .map_err(e)?
        }
        "Range" => {
            let dtype = x()?.dtype();
            let (start, limit, delta) = (
                scalar_f64(x()?)?,
                scalar_f64(input(1)?)?,
                scalar_f64(input(2)?)?,
            );
            if delta == 0.0 {
                return Err("Range with delta 0".into());
            }
            let n = ((limit - start) / delta).ceil().max(0.0) as usize;
            let values: Vec<f64> = (0..n).map(|i| start + i as f64 * delta).collect();
            Tensor::from_vec(values, n, &Device::Cpu)
                .and_then(|t| t.to_dtype(dtype))
                .map_err(e)?
        }
        "Concat" => {
            let parts: Vec<&Tensor> = inputs.iter().flatten().collect();
            let first = parts.first().ok_or("Concat without inputs")?;
            let a = axis(attrs.int("axis", 0), first.rank())?;
            let dtype = if parts.iter().all(|t| t.dtype() == DType::I64) {
                DType::I64
            } else {
                DType::F32
            };
            let parts = parts
                .iter()
                .map(|t| t.to_dtype(dtype))
                .collect::<candle_core::Result<Vec<_>>>()
                .map_err(e)?;
            Tensor::cat(&parts, a).map_err(e)?
        }
        "Reshape" => {
            let spec = match inputs.get(1).and_then(Option::as_ref) {
                Some(s) => ints(s)?,
                None => attrs.ints("shape").unwrap_or_default().to_vec(),
            };
            let target = reshape_target(x()?.dims(), &spec, attrs.int("allowzero", 0) != 0)?;
            x()?.reshape(target).map_err(e)?
        }
        "Flatten" => {
            let dims = x()?.dims();
            let a = if attrs.int("axis", 1) == dims.len() as i64 {
                dims.len()
            } else {
                axis(attrs.int("axis", 1), dims.len())?
            };
            let outer: usize = dims[..a].iter().product();
            let inner: usize = dims[a..].iter().product();
            x()?.reshape((outer, inner)).map_err(e)?
        }
        "Squeeze" | "Unsqueeze" => {
            let list = match (opset >= 13, inputs.get(1).and_then(Option::as_ref)) {
                (true, Some(a)) => ints(a)?,
                _ => attrs.ints("axes").unwrap_or_default().to_vec(),
            };
            let shape = if op == "Squeeze" {
                squeeze(x()?.dims(), &list)?
            } else {
                unsqueeze(x()?.dims(), &list)?
            };
            x()?.reshape(shape).map_err(e)?
        }
        "Transpose" => {
            let rank = x()?.rank();
            let perm: Vec<usize> = match attrs.ints("perm") {
                Some(p) => p.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            x()?.permute(perm).and_then(|t| t.contiguous()).map_err(e)?
        }
        "Expand" => {
            let target: Vec<usize> = ints(input(1)?)?
                .iter()
                .map(|&d| d.max(0) as usize)
                .collect();
            let shape = broadcast(&[x()?.dims(), &target])?;
            x()?.broadcast_as(shape.as_slice())
                .and_then(|t| t.contiguous())
                .map_err(e)?
        }
        "Gather" => {
            let data = x()?;
            let indices = input(1)?;
            let a = axis(attrs.int("axis", 0), data.rank())?;
            gather(data, a, &ints(indices)?, indices.dims())?
        }
        "Slice" => {
            let data = x()?;
            let p = slice_params(attrs, opset, inputs)?;
            let mut out = data.clone();
            let rank = data.rank();
            let axes_list = match &p.axes {
                Some(a) => a
                    .iter()
                    .map(|&v| axis(v, rank))
                    .collect::<Result<Vec<_>>>()?,
                None => (0..p.starts.len()).collect(),
            };
            for (i, &a) in axes_list.iter().enumerate() {
                let step = p.steps.as_ref().map_or(1, |s| s[i]);
                let dim = out.dims()[a];
                let (start, end) = (wrap(p.starts[i], dim), wrap(p.ends[i], dim));
                let (first, count) = slice_axis(dim, start, end, step).ok_or("slice step is 0")?;
                let index: Vec<i64> = (0..count as i64).map(|k| first as i64 + k * step).collect();
                out = gather(&out, a, &index, &[count])?;
            }
            out
        }
        _ => return Err(format!("{op} cannot be folded")),
    };
    Ok(vec![out])
}

/// Slice's bounds as ONNX gives them (before clamping), per listed axis.
pub struct SliceParams {
    /// First index per axis.
    pub starts: Vec<i64>,
    /// End (exclusive) per axis.
    pub ends: Vec<i64>,
    /// The axes, when not simply 0..n.
    pub axes: Option<Vec<i64>>,
    /// Steps, when not all 1.
    pub steps: Option<Vec<i64>>,
}

/// Slice's starts, ends, axes and steps from inputs (opset >= 10) or attributes.
pub fn slice_params(attrs: &Attrs, opset: i64, inputs: &[Option<Tensor>]) -> Result<SliceParams> {
    if opset < 10 {
        let get = |n: &str| attrs.ints(n).map(<[i64]>::to_vec);
        let starts = get("starts").ok_or("Slice without starts")?;
        let ends = get("ends").ok_or("Slice without ends")?;
        return Ok(SliceParams {
            starts,
            ends,
            axes: get("axes"),
            steps: None,
        });
    }
    let get = |i: usize| -> Result<Option<Vec<i64>>> {
        inputs.get(i).and_then(Option::as_ref).map(ints).transpose()
    };
    let starts = get(1)?.ok_or("Slice starts must be constant")?;
    let ends = get(2)?.ok_or("Slice ends must be constant")?;
    let (axes_list, steps) = (get(3)?, get(4)?);
    let same = |v: &Option<Vec<i64>>| v.as_ref().is_none_or(|v| v.len() == starts.len());
    if ends.len() != starts.len() || !same(&axes_list) || !same(&steps) {
        return Err("Slice starts, ends, axes and steps differ in length".into());
    }
    Ok(SliceParams {
        starts,
        ends,
        axes: axes_list,
        steps,
    })
}

/// A negative slice bound counts from the end of an axis of `dim`.
pub fn wrap(v: i64, dim: usize) -> i64 {
    if v < 0 {
        v.saturating_add(dim as i64)
    } else {
        v
    }
}

/// `data` indexed along `axis` by `indices` (negative ones count from the end), with the
/// indices' shape replacing that axis.
pub fn gather(
    data: &Tensor,
    axis: usize,
    indices: &[i64],
    indices_shape: &[usize],
) -> Result<Tensor> {
    let dim = data.dims()[axis] as i64;
    let fixed = indices
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim } else { i };
            if (0..dim).contains(&j) {
                Ok(j as u32)
            } else {
                Err(format!("index {i} is out of range for an axis of {dim}"))
            }
        })
        .collect::<Result<Vec<u32>>>()?;
    let n = fixed.len();
    let index = Tensor::from_vec(fixed, n, &Device::Cpu).map_err(e)?;
    let picked = data.index_select(&index, axis).map_err(e)?;
    let mut shape = data.dims()[..axis].to_vec();
    shape.extend_from_slice(indices_shape);
    shape.extend_from_slice(&data.dims()[axis + 1..]);
    picked.reshape(shape).map_err(e)
}

fn scalar_f64(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(e)?
        .first()
        .copied()
        .ok_or_else(|| "empty scalar".to_string())
}

/// Integer tensors computed in F64 (candle lacks some I64 kernels; shape values are far
/// below 2^53, so this is exact), with whether the input was integral.
fn widen(t: &Tensor) -> Result<(Tensor, bool)> {
    match t.dtype() {
        DType::I64 => Ok((t.to_dtype(DType::F64).map_err(e)?, true)),
        _ => Ok((t.to_dtype(DType::F32).map_err(e)?, false)),
    }
}

/// Back to I64 after `widen` (truncating a division toward zero, as ONNX does).
fn narrow(t: Tensor, int: bool, truncate: bool) -> Result<Tensor> {
    if !int {
        return Ok(t);
    }
    let t = if truncate {
        let v: Vec<f64> = t.flatten_all().and_then(|f| f.to_vec1()).map_err(e)?;
        let v: Vec<f64> = v.into_iter().map(f64::trunc).collect();
        Tensor::from_vec(v, t.dims(), &Device::Cpu).map_err(e)?
    } else {
        t
    };
    t.to_dtype(DType::I64).map_err(e)
}

/// Both operands in one element type: F64 when both are integral (see `widen`), else F32.
fn same_dtype(a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor, bool)> {
    let int = a.dtype() == DType::I64 && b.dtype() == DType::I64;
    let dtype = if int { DType::F64 } else { DType::F32 };
    Ok((
        a.to_dtype(dtype).map_err(e)?,
        b.to_dtype(dtype).map_err(e)?,
        int,
    ))
}

/// Numpy broadcast of several shapes.
pub fn broadcast(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!("shapes {shapes:?} do not broadcast"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_with_negative_and_matrix_indices() {
        let data = Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.]], &Device::Cpu).unwrap();
        let out = gather(&data, 0, &[-1, 0, 1, 1], &[2, 2]).unwrap();
        assert_eq!(out.dims(), &[2, 2, 2]);
        let flat: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(flat, [5., 6., 1., 2., 3., 4., 3., 4.]);
    }

    #[test]
    fn broadcast_shapes() {
        assert_eq!(broadcast(&[&[2, 1, 3], &[4, 1]]), Ok(vec![2, 4, 3]));
        assert!(broadcast(&[&[2, 3], &[4]]).is_err());
    }
}
