//! ONNX `TensorProto` to candle tensors: floats become F32, integers and booleans I64, so
//! that the IR sees two element types only.

use candle_core::{Device, Tensor};

use super::proto::{tensor_proto::DataType, TensorProto};
use super::OnnxError;

/// Converts a tensor stored in the file (raw bytes or typed fields) to a candle tensor.
pub fn to_tensor(t: &TensorProto) -> Result<Tensor, OnnxError> {
    let name = t.name().to_string();
    let fail = |reason: String| OnnxError::Tensor {
        name: name.clone(),
        reason,
    };
    if !t.external_data.is_empty()
        || t.data_location() == super::proto::tensor_proto::DataLocation::External
    {
        return Err(fail("weights stored in an external file are not supported; save the model with the weights inside".into()));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| fail(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| fail("shape overflows".into()))?;
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let data_type = DataType::try_from(t.data_type())
        .map_err(|_| fail(format!("unknown data type {}", t.data_type())))?;

    let check = |got: usize| {
        if got == count {
            Ok(())
        } else {
            Err(fail(format!(
                "has {got} values, shape {dims:?} needs {count}"
            )))
        }
    };
    let floats: Option<Vec<f32>> = match data_type {
        DataType::Float => Some(match raw {
            Some(r) => chunks::<4>(r, count, &fail)?
                .map(f32::from_le_bytes)
                .collect(),
            None => t.float_data.clone(),
        }),
        DataType::Double => Some(match raw {
            Some(r) => chunks::<8>(r, count, &fail)?
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
            None => t.double_data.iter().map(|&v| v as f32).collect(),
        }),
        DataType::Float16 => Some(match raw {
            Some(r) => chunks::<2>(r, count, &fail)?
                .map(|b| half::f16::from_le_bytes(b).to_f32())
                .collect(),
            None => t
                .int32_data
                .iter()
                .map(|&v| half::f16::from_bits(v as u16).to_f32())
                .collect(),
        }),
        _ => None,
    };
    if let Some(values) = floats {
        check(values.len())?;
        return Tensor::from_vec(values, dims, &Device::Cpu).map_err(|e| fail(e.to_string()));
    }
    let ints: Vec<i64> = match (data_type, raw) {
        (DataType::Int64, Some(r)) => chunks::<8>(r, count, &fail)?
            .map(i64::from_le_bytes)
            .collect(),
        (DataType::Int64, None) => t.int64_data.clone(),
        (DataType::Int32, Some(r)) => chunks::<4>(r, count, &fail)?
            .map(|b| i32::from_le_bytes(b).into())
            .collect(),
        (DataType::Int16, Some(r)) => chunks::<2>(r, count, &fail)?
            .map(|b| i16::from_le_bytes(b).into())
            .collect(),
        (DataType::Uint16, Some(r)) => chunks::<2>(r, count, &fail)?
            .map(|b| u16::from_le_bytes(b).into())
            .collect(),
        (DataType::Int8, Some(r)) => r.iter().map(|&b| (b as i8).into()).collect(),
        (DataType::Uint8 | DataType::Bool, Some(r)) => r.iter().map(|&b| b.into()).collect(),
        (DataType::Uint32, Some(r)) => chunks::<4>(r, count, &fail)?
            .map(|b| u32::from_le_bytes(b).into())
            .collect(),
        (
            DataType::Int32
            | DataType::Int16
            | DataType::Uint16
            | DataType::Int8
            | DataType::Uint8
            | DataType::Bool,
            None,
        ) => t.int32_data.iter().map(|&v| v.into()).collect(),
        (DataType::Uint32 | DataType::Uint64, None) => {
            t.uint64_data.iter().map(|&v| v as i64).collect()
        }
        (other, _) => {
            return Err(fail(format!(
                "data type {} is not supported",
                other.as_str_name()
            )))
        }
    };
    check(ints.len())?;
    Tensor::from_vec(ints, dims, &Device::Cpu).map_err(|e| fail(e.to_string()))
}

/// Splits little-endian raw bytes into `count` fixed-size chunks.
fn chunks<'a, const N: usize>(
    raw: &'a [u8],
    count: usize,
    fail: &dyn Fn(String) -> OnnxError,
) -> Result<impl Iterator<Item = [u8; N]> + 'a, OnnxError> {
    if raw.len() != count * N {
        return Err(fail(format!(
            "raw data has {} bytes, shape needs {count} values of {N} bytes",
            raw.len()
        )));
    }
    Ok(raw.chunks_exact(N).map(|c| {
        let mut b = [0u8; N];
        b.copy_from_slice(c);
        b
    }))
}
