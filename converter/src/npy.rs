//! `.npy` input and output for `lopper run`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use npyz::WriterBuilder;

/// Reads an f32 array (f64 and integer arrays are converted) and its shape.
pub fn read(path: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let npy = npyz::NpyFile::new(bytes.as_slice())
        .with_context(|| format!("{} is not a .npy file", path.display()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if npy.order() == npyz::Order::Fortran && shape.len() > 1 {
        bail!(
            "{}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
            path.display()
        );
    }
    let type_str = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => bail!(
            "{}: structured arrays are not supported, got {}",
            path.display(),
            other.descr()
        ),
    };
    let values: Vec<f32> = match type_str.trim_start_matches(['<', '|', '=']) {
        "f4" => npy.into_vec::<f32>()?,
        "f8" => npy
            .into_vec::<f64>()?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "i8" => npy
            .into_vec::<i64>()?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "i4" => npy
            .into_vec::<i32>()?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        "u1" => npy.into_vec::<u8>()?.into_iter().map(f32::from).collect(),
        other => bail!(
            "{}: element type '{other}' is not supported (use float32)",
            path.display()
        ),
    };
    Ok((values, shape))
}

/// Encodes an f32 array of `shape` as `.npy` bytes.
pub fn encode(values: &[f32], shape: &[usize]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()?;
    writer.extend(values.iter().copied())?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("lopper-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npy");
        std::fs::write(
            &path,
            encode(&[1.0, 2.5, -3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap(),
        )
        .unwrap();
        let (values, shape) = read(&path).unwrap();
        assert_eq!(shape, [2, 3]);
        assert_eq!(values, [1.0, 2.5, -3.0, 4.0, 5.0, 6.0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
