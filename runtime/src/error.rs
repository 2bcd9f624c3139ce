//! Errors of loading and running. Every message names what is wrong and where.

use alloc::string::String;
use core::fmt;

/// Where in a model a problem was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The model as a whole (graph inputs, outputs, header fields).
    Model,
    /// A data blob, by index.
    Blob(usize),
    /// A tensor, by index and name.
    Tensor(usize, String),
    /// A node, by index and name.
    Node(usize, String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Model => write!(f, "model"),
            Location::Blob(i) => write!(f, "blob {i}"),
            Location::Tensor(i, name) => write!(f, "tensor {i} '{name}'"),
            Location::Node(i, name) => write!(f, "node {i} '{name}'"),
        }
    }
}

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Shorter than the smallest possible file.
    #[error("file is {len} bytes, too short for a .lopper file (at least {min})")]
    TooShort {
        /// Length of the input.
        len: usize,
        /// Smallest valid length.
        min: usize,
    },
    /// The footer does not end with the magic bytes.
    #[error("no \"LOPR\" footer in the last 4 bytes (byte offset {offset}): not a .lopper file, or truncated")]
    NoFooter {
        /// Byte offset where the magic should be.
        offset: usize,
    },
    /// The content does not hash to the stored checksum.
    #[error("checksum mismatch: footer says {stored:#010x}, content hashes to {computed:#010x}; the file is corrupted")]
    Checksum {
        /// Checksum stored in the footer.
        stored: u32,
        /// Checksum of the content.
        computed: u32,
    },
    /// The footer's data offset is impossible.
    #[error("data section offset {offset} is not a multiple of 64 or lies beyond the payload ({payload} bytes)")]
    DataOffset {
        /// Offset from the footer.
        offset: u64,
        /// Bytes before the footer.
        payload: usize,
    },
    /// The input does not start with the `LOPR` identifier.
    #[error("no \"LOPR\" identifier at byte offset 4: not a .lopper file")]
    Identifier,
    /// The FlatBuffers verifier refused the structure.
    #[error("invalid flatbuffer structure: {0}")]
    Flatbuffer(flatbuffers::InvalidFlatbuffer),
    /// A version this runtime cannot read.
    #[error("format version {found} is not supported; this runtime reads version {supported}")]
    Version {
        /// Version in the file.
        found: u32,
        /// Version this runtime reads.
        supported: u32,
    },
    /// The bytes do not start at an address the weights can be read from in place.
    #[error("model bytes start at an address that is not {align}-byte aligned; use Model::from_vec, which copies, or align the buffer")]
    Misaligned {
        /// Required alignment.
        align: usize,
    },
    /// The structure is readable but its meaning is wrong.
    #[error("{at}: {reason}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read.
    #[cfg(feature = "std")]
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
}

/// Why a session could not be created or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// No graph input or output has that name.
    #[error("the model has no {kind} named '{name}'")]
    UnknownName {
        /// "input" or "output".
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// Index past the number of inputs or outputs.
    #[error("{kind} index {index} is out of range: the model has {count}")]
    IndexOutOfRange {
        /// "input" or "output".
        kind: &'static str,
        /// The index asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// Data of the wrong length for a tensor.
    #[error("input '{name}' needs {expected} values, got {got}")]
    InputLength {
        /// Input name.
        name: String,
        /// Element count of its shape.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The activation arena could not be allocated.
    #[error("cannot allocate the {bytes}-byte activation arena")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: usize,
    },
    /// The arena would not fit in memory.
    #[error("the activation arena needs more than usize::MAX bytes")]
    ArenaTooLarge,
}
