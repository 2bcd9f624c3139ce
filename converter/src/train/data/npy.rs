//! `.npy` pairs: inputs `[N, ...]` and integer labels `[N]`.

use std::path::Path;

use super::dataset::numbered_classes;
use super::{DataError, Dataset, Result};

/// Loads inputs (float32, float64 or integer `[N, C, H, W]`, `[N, H, W]` as one channel, or
/// `[N, F]` as `1x1xF`; values kept as they are) and labels (integer class indices `[N]` or
/// `[N, 1]`, stored as any integer or float type). The classes are `0..=max label`.
pub fn load_npy(inputs: &Path, labels: &Path) -> Result<Dataset> {
    for path in [inputs, labels] {
        if !path.exists() {
            return Err(DataError::Missing {
                what: "file",
                path: path.to_path_buf(),
                hint: "",
            });
        }
    }
    let (values, shape) = crate::npy::read(inputs).map_err(DataError::Npy)?;
    let (label_values, label_shape) = crate::npy::read(labels).map_err(DataError::Npy)?;
    let format_error = |path: &Path, reason: String| DataError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let shape4 = match *shape.as_slice() {
        [n, c, h, w] => [n, c, h, w],
        [n, h, w] => [n, 1, h, w],
        [n, f] => [n, 1, 1, f],
        _ => {
            return Err(format_error(
                inputs,
                format!("inputs must be [N, F], [N, H, W] or [N, C, H, W], got {shape:?}"),
            ))
        }
    };
    if !matches!(*label_shape.as_slice(), [_] | [_, 1]) {
        return Err(format_error(
            labels,
            format!("labels must be [N] or [N, 1], got {label_shape:?}"),
        ));
    }
    let mut class_labels = Vec::with_capacity(label_values.len());
    for (index, &value) in label_values.iter().enumerate() {
        // Class indices are small: f32 holds every integer below 2^24 exactly.
        let is_index = (0.0..16_777_216.0).contains(&value) && value.fract() == 0.0;
        if !is_index {
            return Err(format_error(
                labels,
                format!("label {value} at index {index} is not a class index (0, 1, 2, ...)"),
            ));
        }
        class_labels.push(value as u32);
    }
    if class_labels.len() != shape4[0] {
        return Err(DataError::LabelCount {
            what: format!("{} and {}", inputs.display(), labels.display()),
            images: shape4[0],
            labels: class_labels.len(),
        });
    }
    let classes = class_labels.iter().max().map_or(0, |&max| max as usize + 1);
    Dataset::from_pixels(
        format!("npy:{}", inputs.display()),
        values,
        shape4,
        class_labels,
        numbered_classes(classes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::encode;
    use crate::train::data::scratch_dir;

    #[test]
    fn pairs_load_in_every_rank() {
        let dir = scratch_dir("npy-pairs");
        let labels = dir.join("labels.npy");
        std::fs::write(&labels, encode(&[1.0, 0.0, 3.0], &[3]).unwrap()).unwrap();
        let values: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect();
        for (shape, image) in [
            (&[3, 4][..], [1, 1, 4]),
            (&[3, 2, 2], [1, 2, 2]),
            (&[3, 1, 2, 2], [1, 2, 2]),
        ] {
            let inputs = dir.join("inputs.npy");
            std::fs::write(&inputs, encode(&values, shape).unwrap()).unwrap();
            let data = load_npy(&inputs, &labels).unwrap();
            assert_eq!(data.image_shape(), image);
            assert_eq!(data.labels(), [1, 0, 3]);
            assert_eq!(data.classes(), 4);
            let read: Vec<f32> = data.images().flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(read, values);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_pairs_are_named() {
        let dir = scratch_dir("npy-errors");
        let inputs = dir.join("inputs.npy");
        let labels = dir.join("labels.npy");
        std::fs::write(&inputs, encode(&[0.0; 12], &[3, 2, 2]).unwrap()).unwrap();

        std::fs::write(&labels, encode(&[0.0, 1.0], &[2]).unwrap()).unwrap();
        let err = load_npy(&inputs, &labels).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{} and {}: 3 images but 2 labels; every image needs exactly one label",
                inputs.display(),
                labels.display()
            )
        );

        std::fs::write(&labels, encode(&[0.0, 1.5, 2.0], &[3]).unwrap()).unwrap();
        let err = load_npy(&inputs, &labels).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: label 1.5 at index 1 is not a class index (0, 1, 2, ...)",
                labels.display()
            )
        );

        std::fs::write(&labels, encode(&[0.0; 6], &[3, 2]).unwrap()).unwrap();
        let err = load_npy(&inputs, &labels).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: labels must be [N] or [N, 1], got [3, 2]",
                labels.display()
            )
        );

        std::fs::write(&labels, encode(&[0.0; 3], &[3]).unwrap()).unwrap();
        std::fs::write(&inputs, encode(&[0.0; 3], &[3]).unwrap()).unwrap();
        let err = load_npy(&inputs, &labels).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: inputs must be [N, F], [N, H, W] or [N, C, H, W], got [3]",
                inputs.display()
            )
        );

        std::fs::write(&inputs, "not npy").unwrap();
        let err = load_npy(&inputs, &labels).unwrap_err().to_string();
        assert!(err.contains("is not a .npy file"), "{err}");

        let missing = dir.join("missing.npy");
        let err = load_npy(&missing, &labels).unwrap_err().to_string();
        assert_eq!(err, format!("file {} does not exist", missing.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
