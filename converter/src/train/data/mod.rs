//! Data sets for training and evaluation.
//!
//! Every loader produces one in-memory representation, [`Dataset`]: an f32 image tensor
//! `[N, C, H, W]` on the CPU with one class label per image. Loaders read IDX files (the
//! MNIST / Fashion-MNIST layout, raw or gzip), folders of PNG / JPEG images with one
//! sub-folder per class, `.npy` pairs and the embedded UCI handwritten digits; [`open`]
//! picks one from a command-line spec. [`split`] makes a stratified validation set,
//! [`shuffled_indices`] orders each epoch, and [`Normalize`] standardises pixels.
//!
//! Every problem with the data (a missing file, counts that disagree, images of different
//! sizes, images that do not fit the model) is a [`DataError`] raised while loading or by
//! [`check_input_shape`], before any training starts.

mod dataset;
mod digits;
mod folder;
mod idx;
mod normalize;
mod npy;
mod shuffle;
mod spec;
mod split;

use std::path::{Path, PathBuf};

pub use dataset::{check_input_shape, Dataset};
pub use digits::digits;
pub use folder::{load_folder, ColorMode, FolderOptions};
pub use idx::{fashion_mnist, load_idx, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR};
pub use normalize::{ChannelStats, Normalize};
pub use npy::load_npy;
pub use shuffle::shuffled_indices;
pub use spec::{open, DataSpec, SPEC_FORMS};
pub use split::{split, split_indices};

/// Why a data set could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder that does not exist.
    #[error("{what} {} does not exist{hint}", path.display())]
    Missing {
        /// What was looked for ("file", "data folder", ...).
        what: &'static str,
        /// The path that was tried.
        path: PathBuf,
        /// How to get it, or empty.
        hint: &'static str,
    },
    /// A file or folder that exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An IDX file that does not start with the magic number of its kind.
    #[error(
        "{}: not an IDX {kind} file: its first bytes are {found}, expected {expected}",
        path.display()
    )]
    IdxMagic {
        /// The file.
        path: PathBuf,
        /// "images" or "labels".
        kind: &'static str,
        /// The bytes found, in hex (after gzip decompression when the file is gzipped).
        found: String,
        /// The bytes expected, in hex.
        expected: String,
    },
    /// A file whose contents are malformed, or a folder laid out wrongly.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A different number of labels than images.
    #[error("{what}: {images} images but {labels} labels; every image needs exactly one label")]
    LabelCount {
        /// The data set or files.
        what: String,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A label that is not a class index.
    #[error("{what}: image {index} has label {label}, outside the classes 0..{classes}")]
    Label {
        /// The data set.
        what: String,
        /// Position of the image.
        index: usize,
        /// Its label.
        label: u32,
        /// Number of classes.
        classes: usize,
    },
    /// Two images of different sizes in one folder.
    #[error(
        "{}: image is {}x{}, but {} is {}x{}; all images must have one size (or resize them)",
        file.display(),
        size.0,
        size.1,
        first.display(),
        first_size.0,
        first_size.1
    )]
    ImageSize {
        /// The image that differs.
        file: PathBuf,
        /// Its width and height.
        size: (u32, u32),
        /// The first image loaded.
        first: PathBuf,
        /// Its width and height.
        first_size: (u32, u32),
    },
    /// An image file that cannot be decoded.
    #[error("cannot decode image {}: {source}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's reason.
        source: image::ImageError,
    },
    /// A `.npy` file that cannot be read as an array.
    #[error("{0:#}")]
    Npy(anyhow::Error),
    /// Images whose size does not match the model's input.
    #[error("{what}: images are {found}, the model wants {wanted}")]
    InputShape {
        /// The data set.
        what: String,
        /// Image shape `CxHxW`.
        found: String,
        /// The model's input shape per sample.
        wanted: String,
    },
    /// A data spec that is not one of the accepted forms.
    #[error("data spec '{spec}': {reason}; the accepted forms are {}", SPEC_FORMS)]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A parameter that cannot be used (a validation fraction, normalisation statistics,
    /// a batch index).
    #[error("{0}")]
    Invalid(String),
    /// candle refused a tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result of data set operations.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Reads a whole file; a missing file is [`DataError::Missing`] naming it.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| io_error(path, "file", source))
}

/// Maps an I/O error on `path` to [`DataError::Missing`] or [`DataError::Io`].
fn io_error(path: &Path, what: &'static str, source: std::io::Error) -> DataError {
    if source.kind() == std::io::ErrorKind::NotFound {
        DataError::Missing {
            what,
            path: path.to_path_buf(),
            hint: "",
        }
    } else {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A fresh, empty scratch folder for one test.
#[cfg(test)]
fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lopper-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
