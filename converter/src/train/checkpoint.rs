//! Checkpoints: everything a run needs to resume exactly where it stopped.
//!
//! One safetensors file holds the parameters (`param/<name>`), their masks
//! (`mask/<name>`), the optimizer state (`opt/<slot>/<name>`) and a JSON header
//! (`meta`, as bytes) with the step reached and a fingerprint of the run's settings, so a
//! checkpoint is never resumed under other settings or other data. The file is written to
//! a temporary name and renamed, so an interrupted save leaves the previous checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::optim::Optimizer;
use super::params::Params;
use super::{Result, TrainError};

/// The run-level facts stored next to the tensors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// Training steps completed.
    pub step: u64,
    /// Settings and data the run depends on; resuming requires the same.
    pub fingerprint: String,
}

/// Saves a checkpoint at `path`.
pub fn save(path: &Path, meta: &Meta, params: &Params, optimizer: &Optimizer) -> Result<()> {
    let fail = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for p in params.iter() {
        tensors.insert(format!("param/{}", p.name), p.var.as_tensor().clone());
        if let Some(mask) = &p.mask {
            tensors.insert(format!("mask/{}", p.name), mask.clone());
        }
    }
    for (key, t) in optimizer.state() {
        tensors.insert(format!("opt/{key}"), t.clone());
    }
    let json = serde_json::to_vec(meta).map_err(|e| fail(e.to_string()))?;
    let len = json.len();
    tensors.insert("meta".into(), Tensor::from_vec(json, len, &Device::Cpu)?);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create its folder: {e}")))?;
    }
    let tmp = temporary_name(path);
    let saved = candle_core::safetensors::save(&tensors, &tmp)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
    if saved.is_err() {
        // The previous checkpoint stays; the partial one goes.
        let _ = std::fs::remove_file(&tmp);
    }
    saved.map_err(fail)
}

/// Loads the checkpoint at `path` into `params` and `optimizer`, after checking that it
/// was written by a run with `fingerprint` and has every parameter with the right shape.
/// Returns the step to continue from.
pub fn load(
    path: &Path,
    fingerprint: &str,
    params: &mut Params,
    optimizer: &mut Optimizer,
) -> Result<u64> {
    let fail = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| fail(format!("not a lopper checkpoint: {e}")))?;
    let meta = tensors
        .remove("meta")
        .ok_or_else(|| fail("has no 'meta' entry: not a lopper checkpoint".into()))?;
    let meta: Meta = serde_json::from_slice(&meta.to_vec1::<u8>()?)
        .map_err(|e| fail(format!("unreadable header: {e}")))?;
    if meta.fingerprint != fingerprint {
        return Err(fail(format!(
            "it was written by a run with other settings or data ({}); this run is {fingerprint}. Delete it or pass the same settings",
            meta.fingerprint
        )));
    }
    for p in params.iter_mut() {
        let value = tensors
            .remove(&format!("param/{}", p.name))
            .ok_or_else(|| fail(format!("has no parameter '{}'", p.name)))?;
        if value.dims() != p.var.dims() {
            return Err(fail(format!(
                "parameter '{}' is {:?} there but {:?} in the model",
                p.name,
                value.dims(),
                p.var.dims()
            )));
        }
        p.var.set(&value.to_dtype(DType::F32)?)?;
        p.mask = tensors.remove(&format!("mask/{}", p.name));
    }
    let state = tensors
        .into_iter()
        .filter_map(|(key, t)| key.strip_prefix("opt/").map(|k| (k.to_string(), t)))
        .collect();
    optimizer.restore(meta.step, state);
    Ok(meta.step)
}

/// `path` with `.tmp` appended.
fn temporary_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}
