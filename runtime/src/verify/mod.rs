//! Verification on load: footer and checksum, the FlatBuffers verifier, then the meaning
//! of every field. Nothing in the file is trusted before this returns `Ok`; after it,
//! kernels may rely on every invariant documented in `weights.rs` and `graph.rs`.

mod constant;
mod node;

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{LoadError, Location};
use crate::format::footer::split;
use crate::format::{fb, FORMAT_VERSION};
use crate::graph::{element_count, Tensor, MAX_RANK};
use crate::model::Graph;

/// Largest tensor the runtime accepts, in elements: its f32 bytes must fit `isize`.
const MAX_ELEMENTS: usize = isize::MAX as usize / 4;

/// Shorthand for a semantic error.
fn invalid(at: Location, reason: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        at,
        reason: reason.into(),
    }
}

/// Checks every byte of `bytes` and decodes the graph.
pub fn verify(bytes: &[u8]) -> Result<Graph, LoadError> {
    let parts = split(bytes)?;
    if !fb::model_buffer_has_identifier(parts.flatbuffer) {
        return Err(LoadError::Identifier);
    }
    let model = fb::root_as_model(parts.flatbuffer).map_err(LoadError::Flatbuffer)?;
    if model.version() != FORMAT_VERSION {
        return Err(LoadError::Version {
            found: model.version(),
            supported: FORMAT_VERSION,
        });
    }

    let blobs = blob_ranges(&model, parts.data_offset, parts.data.len())?;
    let mut tensors = Vec::with_capacity(model.tensors().len());
    for (index, t) in model.tensors().iter().enumerate() {
        tensors.push(tensor(index, &t, &blobs, bytes)?);
    }
    let inputs = graph_ends(model.inputs().iter(), &tensors, "input")?;
    let outputs = graph_ends(model.outputs().iter(), &tensors, "output")?;

    // Which tensors hold a value at each point of the execution order.
    let mut defined: Vec<bool> = tensors.iter().map(|t| t.constant.is_some()).collect();
    for &i in &inputs {
        defined[i] = true;
    }
    let mut nodes = Vec::with_capacity(model.nodes().len());
    for (index, n) in model.nodes().iter().enumerate() {
        let node = node::node(index, &n, &tensors)?;
        let at = || Location::Node(index, node.name.clone());
        for &i in &node.inputs {
            if !defined[i] {
                return Err(invalid(
                    at(),
                    alloc::format!(
                        "reads tensor {i} '{}' before any node writes it",
                        tensors[i].name
                    ),
                ));
            }
        }
        for &o in &node.outputs {
            if defined[o] {
                return Err(invalid(
                    at(),
                    alloc::format!(
                        "writes tensor {o} '{}', which already has a value",
                        tensors[o].name
                    ),
                ));
            }
            defined[o] = true;
        }
        nodes.push(node);
    }
    for &o in &outputs {
        if !defined[o] {
            return Err(invalid(
                Location::Tensor(o, tensors[o].name.clone()),
                "is a graph output but no node writes it",
            ));
        }
    }

    let metadata = model
        .metadata()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| (kv.key().to_string(), kv.value().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Graph {
        producer: model.producer().unwrap_or_default().to_string(),
        metadata,
        tensors,
        nodes,
        inputs,
        outputs,
    })
}

/// Absolute byte range of every blob, each checked to lie in the data section at a
/// 64-byte aligned offset.
fn blob_ranges(
    model: &fb::Model,
    data_offset: usize,
    data_len: usize,
) -> Result<Vec<core::ops::Range<usize>>, LoadError> {
    let mut ranges = Vec::with_capacity(model.blobs().len());
    for (index, blob) in model.blobs().iter().enumerate() {
        let (offset, size) = (blob.offset(), blob.size());
        let end = offset.checked_add(size);
        let inside = end.is_some_and(|end| end <= data_len as u64);
        if !inside || offset % crate::format::footer::BLOB_ALIGN as u64 != 0 {
            return Err(invalid(
                Location::Blob(index),
                alloc::format!(
                    "offset {offset} size {size} is not a 64-byte aligned range of the {data_len}-byte data section"
                ),
            ));
        }
        let start = data_offset + offset as usize;
        ranges.push(start..start + size as usize);
    }
    Ok(ranges)
}

fn tensor(
    index: usize,
    t: &fb::Tensor,
    blobs: &[core::ops::Range<usize>],
    bytes: &[u8],
) -> Result<Tensor, LoadError> {
    let name = t.name().to_string();
    let at = || Location::Tensor(index, name.clone());
    let shape: Vec<usize> = t.shape().iter().map(|d| d as usize).collect();
    if shape.len() > MAX_RANK {
        return Err(invalid(
            at(),
            alloc::format!("rank {} exceeds the limit of {MAX_RANK}", shape.len()),
        ));
    }
    if shape.contains(&0) {
        return Err(invalid(at(), "zero-sized dimensions are not supported"));
    }
    if element_count(&shape).is_none_or(|n| n > MAX_ELEMENTS) {
        return Err(invalid(
            at(),
            alloc::format!("shape {shape:?} is too large"),
        ));
    }
    if t.dtype() != fb::DType::F32 {
        return Err(invalid(
            at(),
            alloc::format!("unknown element type {}", t.dtype().0),
        ));
    }
    let constant = match t.constant() {
        Some(c) => {
            Some(constant::constant(&c, &shape, blobs, bytes).map_err(|r| invalid(at(), r))?)
        }
        None => None,
    };
    Ok(Tensor {
        name,
        shape,
        constant,
    })
}

/// Graph inputs or outputs: in range, activations, no duplicates.
fn graph_ends(
    indices: impl Iterator<Item = u32>,
    tensors: &[Tensor],
    kind: &str,
) -> Result<Vec<usize>, LoadError> {
    let mut seen = vec![false; tensors.len()];
    let mut out = Vec::new();
    for i in indices {
        let i = i as usize;
        let t = tensors.get(i).ok_or_else(|| {
            invalid(
                Location::Model,
                alloc::format!(
                    "graph {kind} refers to tensor {i}, but there are {}",
                    tensors.len()
                ),
            )
        })?;
        if t.constant.is_some() {
            return Err(invalid(
                Location::Tensor(i, t.name.clone()),
                alloc::format!("a constant cannot be a graph {kind}"),
            ));
        }
        if core::mem::replace(&mut seen[i], true) {
            return Err(invalid(
                Location::Tensor(i, t.name.clone()),
                alloc::format!("listed twice as a graph {kind}"),
            ));
        }
        out.push(i);
    }
    Ok(out)
}
