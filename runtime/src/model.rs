//! A verified model: the file's bytes (borrowed, owned or memory-mapped) and the graph
//! decoded from them. Weights stay in the bytes and are read in place.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::error::LoadError;
use crate::graph::{matrix_dims, ConstantData, LayoutData, Node, Storage, Tensor};
use crate::verify::verify;
use crate::weights::{Sparsity, Values, WeightMatrix};

/// Alignment the model bytes must start at so weights can be read in place.
pub const MIN_ALIGN: usize = 8;

/// The graph of a verified model.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Tool that wrote the file.
    pub producer: String,
    /// Free-form key/value metadata (the pruning report among them).
    pub metadata: Vec<(String, String)>,
    /// Every tensor; constants carry the byte ranges of their data.
    pub tensors: Vec<Tensor>,
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// Tensor indices the caller feeds.
    pub inputs: Vec<usize>,
    /// Tensor indices the caller reads.
    pub outputs: Vec<usize>,
}

enum Bytes<'a> {
    Borrowed(&'a [u8]),
    /// Copied into u64 words for alignment; the second field is the length in bytes.
    Owned(Vec<u64>, usize),
    #[cfg(feature = "std")]
    Mapped(memmap2::Mmap),
}

impl Bytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) => b,
            Bytes::Owned(words, len) => &bytemuck::cast_slice(words)[..*len],
            #[cfg(feature = "std")]
            Bytes::Mapped(map) => map,
        }
    }
}

/// A `.lopper` model, verified on load. `Model<'static>` owns its bytes (or its mapping)
/// and can be shared across threads and FFI.
pub struct Model<'a> {
    bytes: Bytes<'a>,
    graph: Graph,
}

/// Name, shape and element type of a graph input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'m> {
    /// Name from the source model.
    pub name: &'m str,
    /// Dimensions (NCHW for images).
    pub shape: &'m [usize],
    /// Element type; always `"f32"` in this format version.
    pub dtype: &'static str,
}

impl<'a> Model<'a> {
    /// Verifies `bytes` and reads weights from them in place. The slice must start at a
    /// [`MIN_ALIGN`]-aligned address.
    pub fn from_slice(bytes: &'a [u8]) -> Result<Model<'a>, LoadError> {
        if bytes.as_ptr().align_offset(MIN_ALIGN) != 0 {
            return Err(LoadError::Misaligned { align: MIN_ALIGN });
        }
        let graph = verify(bytes)?;
        Ok(Model {
            bytes: Bytes::Borrowed(bytes),
            graph,
        })
    }

    /// The decoded graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Metadata value for `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.graph
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Graph inputs, in order.
    pub fn inputs(&self) -> Vec<TensorInfo<'_>> {
        self.infos(&self.graph.inputs)
    }

    /// Graph outputs, in order.
    pub fn outputs(&self) -> Vec<TensorInfo<'_>> {
        self.infos(&self.graph.outputs)
    }

    fn infos(&self, indices: &[usize]) -> Vec<TensorInfo<'_>> {
        indices
            .iter()
            .map(|&i| TensorInfo {
                name: &self.graph.tensors[i].name,
                shape: &self.graph.tensors[i].shape,
                dtype: "f32",
            })
            .collect()
    }

    /// The values of a dense f32 constant, read in place.
    pub fn constant_f32(&self, tensor: usize) -> Option<&[f32]> {
        let data = self.graph.tensors.get(tensor)?.constant.as_ref()?;
        match (&data.layout, data.storage) {
            (LayoutData::Dense, Storage::F32) => Some(self.cast(&data.values)),
            _ => None,
        }
    }

    /// A constant as a weight matrix (one row per `shape[0]`), read in place.
    pub fn weight(&self, tensor: usize) -> Option<WeightMatrix<'_>> {
        let t = self.graph.tensors.get(tensor)?;
        let data: &ConstantData = t.constant.as_ref()?;
        let (rows, cols) = matrix_dims(&t.shape)?;
        let values = match data.storage {
            Storage::F32 => Values::F32(self.cast(&data.values)),
            Storage::F16 => Values::F16(self.cast(&data.values)),
            Storage::I8 => Values::I8 {
                q: self.cast(&data.values),
                scales: self.cast(data.scales.as_ref()?),
            },
        };
        let sparsity = match &data.layout {
            LayoutData::Dense => Sparsity::Dense,
            LayoutData::Csr { row_ptr, col_idx } => Sparsity::Csr {
                row_ptr: self.cast(row_ptr),
                col_idx: self.cast(col_idx),
            },
            LayoutData::Bsr {
                block,
                row_ptr,
                col_idx,
            } => Sparsity::Bsr {
                block: *block,
                row_ptr: self.cast(row_ptr),
                col_idx: self.cast(col_idx),
            },
            LayoutData::NM { n, m, indices } => Sparsity::NM {
                n: *n,
                m: *m,
                indices: self.cast(indices),
            },
        };
        Some(WeightMatrix {
            rows,
            cols,
            values,
            sparsity,
        })
    }

    /// A verified byte range as a typed slice. Verification checked that every range is
    /// inside the file, a whole number of elements and aligned for its type.
    fn cast<T: bytemuck::AnyBitPattern>(&self, range: &Range<usize>) -> &[T] {
        bytemuck::cast_slice(&self.bytes()[range.clone()])
    }
}

impl Model<'static> {
    /// Verifies and keeps owned bytes. They are copied once into aligned storage.
    pub fn from_vec(bytes: Vec<u8>) -> Result<Model<'static>, LoadError> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
        let owned = Bytes::Owned(words, bytes.len());
        let graph = verify(owned.as_slice())?;
        Ok(Model {
            bytes: owned,
            graph,
        })
    }

    /// Memory-maps a file and verifies it; weights are read from the mapping in place.
    /// The file must not be modified while the model is alive.
    #[cfg(feature = "std")]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Model<'static>, LoadError> {
        let path = path.as_ref();
        let io = |error| LoadError::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only and private to this model; the documented
        // contract of `open` is that nobody modifies the file while the model lives, which
        // is what memmap2 requires for the bytes to stay valid.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let mapped = Bytes::Mapped(map);
        let graph = verify(mapped.as_slice())?;
        Ok(Model {
            bytes: mapped,
            graph,
        })
    }
}
