//! The UCI handwritten digits, embedded: 1,797 images of 8x8 pixels, 10 classes.
//!
//! Source and licence: `converter/data/README.md`.

use std::io::Read;
use std::path::Path;

use super::dataset::numbered_classes;
use super::{DataError, Dataset, Result};

/// scikit-learn's copy of the data: one row per image, 64 pixels in `0..=16`, then the label.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../data/digits.csv.gz");

/// Side of the square images.
const SIDE: usize = 8;

/// The largest pixel value (the count of set pixels in a 4x4 block).
const MAX_PIXEL: f32 = 16.0;

/// The embedded digits: `[1797, 1, 8, 8]` with pixels scaled to `[0, 1]`, labels `0..=9`.
pub fn digits() -> Result<Dataset> {
    let source = Path::new("converter/data/digits.csv.gz (embedded)");
    let format_error = |reason: String| DataError::Format {
        path: source.to_path_buf(),
        reason,
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| format_error(format!("cannot decompress: {e}")))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (row, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let Some((label, values)) = fields.split_last() else {
            continue;
        };
        let bad_row = || format_error(format!("row {} is not 64 pixels and a label", row + 1));
        if values.len() != SIDE * SIDE {
            return Err(bad_row());
        }
        for value in values {
            let value: f32 = value.trim().parse().map_err(|_| bad_row())?;
            pixels.push(value / MAX_PIXEL);
        }
        labels.push(label.trim().parse::<u32>().map_err(|_| bad_row())?);
    }
    let n = labels.len();
    Dataset::from_pixels(
        "digits",
        pixels,
        [n, 1, SIDE, SIDE],
        labels,
        numbered_classes(10),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_set() {
        let data = digits().unwrap();
        assert_eq!(data.images().dims(), [1797, 1, 8, 8]);
        assert_eq!(data.classes(), 10);
        // The class counts scikit-learn's and UCI's documentation give for this set.
        assert_eq!(
            data.class_counts(),
            [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        let min = data.images().min_all().unwrap().to_scalar::<f32>().unwrap();
        let max = data.images().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!((min, max), (0.0, 1.0));
        // The first image is a zero; its first row is 0 0 5 13 9 1 0 0.
        assert_eq!(data.labels()[0], 0);
        let row: Vec<f32> = data
            .images()
            .get(0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let expected: Vec<f32> = [0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]
            .iter()
            .map(|v| v / 16.0)
            .collect();
        assert_eq!(row[..8], expected);
    }
}
