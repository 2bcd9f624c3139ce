//! IDX files, the layout of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! An IDX file is `00 00 08 D` (unsigned bytes, `D` dimensions), `D` big-endian u32 sizes,
//! then the bytes row-major: images are `[N, H, W]` (`idx3-ubyte`), labels `[N]`
//! (`idx1-ubyte`).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::dataset::numbered_classes;
use super::{read_file, DataError, Dataset, Result};

/// The folder `apt-get install dataset-fashion-mnist` fills.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST class names, indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The IDX element type code of unsigned bytes.
const UNSIGNED_BYTE: u8 = 0x08;

/// Loads an IDX pair: images `[N, H, W]` (`idx3-ubyte`) and labels `[N]` (`idx1-ubyte`),
/// each raw or gzipped (told by its first bytes). Pixels are scaled to `[0, 1]`; the
/// classes are `0..=max label`.
pub fn load_idx(images: &Path, labels: &Path) -> Result<Dataset> {
    let name = format!("idx:{}", images.display());
    load_pair(images, labels, name, None)
}

/// Loads the Fashion-MNIST training (`train`) or test set from `dir` (see
/// [`FASHION_MNIST_DIR`]): `train-images-idx3-ubyte.gz` and `train-labels-idx1-ubyte.gz`,
/// or `t10k-...`; the same names without `.gz` are read when only they exist.
pub fn fashion_mnist(dir: &Path, train: bool) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            what: "Fashion-MNIST folder",
            path: dir.to_path_buf(),
            hint: " (install it with `apt-get install dataset-fashion-mnist`, or name the \
                   folder holding train-images-idx3-ubyte.gz)",
        });
    }
    let (prefix, part) = if train {
        ("train", "train")
    } else {
        ("t10k", "test")
    };
    let images = existing(dir, &format!("{prefix}-images-idx3-ubyte"));
    let labels = existing(dir, &format!("{prefix}-labels-idx1-ubyte"));
    load_pair(
        &images,
        &labels,
        format!("fashion-mnist ({part})"),
        Some(&FASHION_MNIST_CLASSES),
    )
}

/// `dir/stem.gz`, or `dir/stem` when only the uncompressed file exists.
fn existing(dir: &Path, stem: &str) -> PathBuf {
    let gz = dir.join(format!("{stem}.gz"));
    let raw = dir.join(stem);
    if !gz.exists() && raw.exists() {
        raw
    } else {
        gz
    }
}

/// Reads and pairs the two files; `class_names` fixes the classes, else they are numbered.
fn load_pair(
    images_path: &Path,
    labels_path: &Path,
    name: String,
    class_names: Option<&[&str]>,
) -> Result<Dataset> {
    let images = read_idx(images_path, "images", 3)?;
    let labels = read_idx(labels_path, "labels", 1)?;
    let [n, h, w] = [images.dims[0], images.dims[1], images.dims[2]];
    if labels.dims[0] != n {
        return Err(DataError::LabelCount {
            what: format!("{} and {}", images_path.display(), labels_path.display()),
            images: n,
            labels: labels.dims[0],
        });
    }
    let labels: Vec<u32> = labels.data.into_iter().map(u32::from).collect();
    let class_names = match class_names {
        Some(names) => names.iter().map(ToString::to_string).collect(),
        None => numbered_classes(labels.iter().max().map_or(0, |&max| max as usize + 1)),
    };
    let pixels = images
        .data
        .into_iter()
        .map(|b| f32::from(b) / 255.0)
        .collect();
    Dataset::from_pixels(name, pixels, [n, 1, h, w], labels, class_names)
}

/// The dimensions and bytes of one IDX file.
struct Idx {
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes with `rank` dimensions (`kind` names it in errors).
fn read_idx(path: &Path, kind: &'static str, rank: u8) -> Result<Idx> {
    let mut bytes = read_file(path)?;
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .read_to_end(&mut plain)
            .map_err(|e| DataError::Format {
                path: path.to_path_buf(),
                reason: format!("starts like gzip but cannot be decompressed: {e}"),
            })?;
        bytes = plain;
    }
    let expected = [0, 0, UNSIGNED_BYTE, rank];
    if bytes.get(..4) != Some(&expected[..]) {
        return Err(DataError::IdxMagic {
            path: path.to_path_buf(),
            kind,
            found: hex(&bytes[..bytes.len().min(4)]),
            expected: hex(&expected),
        });
    }
    let header = 4 + 4 * usize::from(rank);
    let format_error = |reason: String| DataError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let Some(size_bytes) = bytes.get(4..header) else {
        return Err(format_error(format!(
            "the IDX header needs {header} bytes, the file has {}",
            bytes.len()
        )));
    };
    let dims: Vec<usize> = size_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let data = &bytes[header..];
    if count != Some(data.len()) {
        let dims_text: Vec<String> = dims.iter().map(ToString::to_string).collect();
        return Err(format_error(format!(
            "the IDX header says {} = {} bytes of data, the file has {}",
            dims_text.join(" x "),
            count.map_or("too many".to_string(), |c| c.to_string()),
            data.len()
        )));
    }
    Ok(Idx {
        dims,
        data: data.to_vec(),
    })
}

/// Bytes as "00 00 08 03" ("no bytes" when empty).
fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "no bytes (the file is empty)".to_string();
    }
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::train::data::scratch_dir;

    /// An IDX file of unsigned bytes with `dims`.
    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend(data);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Three 2x3 images with pixels `i * 50 + p` and labels 2, 0, 1.
    fn three_images() -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..3u8)
            .flat_map(|i| (0..6u8).map(move |p| i * 50 + p))
            .collect();
        (idx_bytes(&[3, 2, 3], &pixels), idx_bytes(&[3], &[2, 0, 1]))
    }

    #[test]
    fn round_trip_raw_and_gzipped() {
        let dir = scratch_dir("idx-round-trip");
        let (images, labels) = three_images();
        for gz in [false, true] {
            let (images, labels) = if gz {
                (gzip(&images), gzip(&labels))
            } else {
                (images.clone(), labels.clone())
            };
            let images_path = dir.join(format!("images-{gz}"));
            let labels_path = dir.join(format!("labels-{gz}"));
            std::fs::write(&images_path, images).unwrap();
            std::fs::write(&labels_path, labels).unwrap();
            let data = load_idx(&images_path, &labels_path).unwrap();
            assert_eq!(data.images().dims(), [3, 1, 2, 3]);
            assert_eq!(data.labels(), [2, 0, 1]);
            assert_eq!(data.classes(), 3);
            let values: Vec<f32> = data.images().flatten_all().unwrap().to_vec1().unwrap();
            let expected: Vec<f32> = (0..3)
                .flat_map(|i| (0..6).map(move |p| (i * 50 + p) as f32 / 255.0))
                .collect();
            assert_eq!(values, expected);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_named() {
        let dir = scratch_dir("idx-errors");
        let (images, labels) = three_images();
        let images_path = dir.join("images");
        std::fs::write(&images_path, &images).unwrap();

        // Labels where images should be: the magic says 1 dimension.
        let labels_path = dir.join("labels");
        std::fs::write(&labels_path, &labels).unwrap();
        let err = load_idx(&labels_path, &labels_path)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: not an IDX images file: its first bytes are 00 00 08 01, expected 00 00 08 03",
                labels_path.display()
            )
        );

        // A zip file, and an empty file.
        let zip = dir.join("labels.zip");
        std::fs::write(&zip, b"PK\x03\x04rest").unwrap();
        let err = load_idx(&images_path, &zip).unwrap_err().to_string();
        assert!(
            err.contains("its first bytes are 50 4b 03 04, expected 00 00 08 01"),
            "{err}"
        );
        assert!(err.starts_with(&zip.display().to_string()), "{err}");
        std::fs::write(&zip, b"").unwrap();
        let err = load_idx(&images_path, &zip).unwrap_err().to_string();
        assert!(err.contains("no bytes (the file is empty)"), "{err}");

        // Two labels for three images.
        let two = dir.join("two-labels");
        std::fs::write(&two, idx_bytes(&[2], &[0, 1])).unwrap();
        let err = load_idx(&images_path, &two).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{} and {}: 3 images but 2 labels; every image needs exactly one label",
                images_path.display(),
                two.display()
            )
        );

        // Truncated pixels, a truncated header, a broken gzip stream.
        let short = dir.join("short");
        std::fs::write(&short, &images[..images.len() - 1]).unwrap();
        let err = load_idx(&short, &labels_path).unwrap_err().to_string();
        assert!(
            err.ends_with("the IDX header says 3 x 2 x 3 = 18 bytes of data, the file has 17"),
            "{err}"
        );
        std::fs::write(&short, &images[..9]).unwrap();
        let err = load_idx(&short, &labels_path).unwrap_err().to_string();
        assert!(
            err.ends_with("the IDX header needs 16 bytes, the file has 9"),
            "{err}"
        );
        std::fs::write(&short, &gzip(&images)[..12]).unwrap();
        let err = load_idx(&short, &labels_path).unwrap_err().to_string();
        assert!(
            err.contains("starts like gzip but cannot be decompressed"),
            "{err}"
        );

        // A missing file.
        let missing = dir.join("missing");
        let err = load_idx(&images_path, &missing).unwrap_err().to_string();
        assert_eq!(err, format!("file {} does not exist", missing.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fashion_mnist_missing_folder() {
        let err = fashion_mnist(Path::new("/nonexistent/fashion"), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("Fashion-MNIST folder /nonexistent/fashion does not exist (install it with `apt-get install dataset-fashion-mnist`"),
            "{err}"
        );
    }

    #[test]
    fn fashion_mnist_when_installed() {
        let dir = Path::new(FASHION_MNIST_DIR);
        if !dir.is_dir() {
            println!("skipped: {FASHION_MNIST_DIR} is not installed (apt-get install dataset-fashion-mnist)");
            return;
        }
        for (train, count) in [(true, 60_000), (false, 10_000)] {
            let data = fashion_mnist(dir, train).unwrap();
            assert_eq!(data.len(), count);
            assert_eq!(data.images().dims(), [count, 1, 28, 28]);
            assert_eq!(data.classes(), 10);
            assert_eq!(data.class_names()[9], "Ankle boot");
            assert_eq!(data.class_counts(), vec![count / 10; 10]);
            let max = data.images().max_all().unwrap().to_scalar::<f32>().unwrap();
            let min = data.images().min_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!((min, max), (0.0, 1.0));
        }
    }
}
