//! The in-memory data set every loader produces, and the check that it fits a model.

use candle_core::{DType, Device, Tensor};

use super::{DataError, Result};

/// A labelled image data set held in memory: the images as one f32 tensor `[N, C, H, W]`
/// on the CPU and one label in `0..classes()` per image. At least one image.
#[derive(Debug, Clone)]
pub struct Dataset {
    name: String,
    images: Tensor,
    labels: Vec<u32>,
    class_names: Vec<String>,
}

impl Dataset {
    /// Builds a data set, checking that `images` is `[N, C, H, W]` with `N > 0` (it is
    /// converted to f32 on the CPU), that there is one label per image and that every label
    /// indexes `class_names`.
    pub fn new(
        name: impl Into<String>,
        images: Tensor,
        labels: Vec<u32>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let name = name.into();
        let dims = images.dims();
        if dims.len() != 4 {
            return Err(DataError::Invalid(format!(
                "{name}: images must be a tensor [N, C, H, W], got shape {dims:?}"
            )));
        }
        if dims[0] != labels.len() {
            return Err(DataError::LabelCount {
                what: name,
                images: dims[0],
                labels: labels.len(),
            });
        }
        if dims[0] == 0 {
            return Err(DataError::Invalid(format!("{name} has no images")));
        }
        if class_names.is_empty() {
            return Err(DataError::Invalid(format!("{name} has no classes")));
        }
        let classes = class_names.len();
        if let Some((index, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &label)| label as usize >= classes)
        {
            return Err(DataError::Label {
                what: name,
                index,
                label,
                classes,
            });
        }
        let images = images.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        Ok(Self {
            name,
            images,
            labels,
            class_names,
        })
    }

    /// Builds a data set from row-major pixels of `shape` `[N, C, H, W]`.
    pub(crate) fn from_pixels(
        name: impl Into<String>,
        pixels: Vec<f32>,
        shape: [usize; 4],
        labels: Vec<u32>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let images = Tensor::from_vec(pixels, &shape, &Device::Cpu)?;
        Self::new(name, images, labels, class_names)
    }

    /// Where the data came from ("digits", "fashion-mnist (train)", a path, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The images, f32 `[N, C, H, W]` on the CPU.
    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// One label per image, each in `0..classes()`.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// Class names, indexed by label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images (never true: a data set holds at least one image).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one image, `[C, H, W]`.
    pub fn image_shape(&self) -> [usize; 3] {
        let dims = self.images.dims();
        [dims[1], dims[2], dims[3]]
    }

    /// Number of images of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes()];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// The images at `indices` as one tensor `[indices.len(), C, H, W]`, and their labels.
    pub fn batch(&self, indices: &[usize]) -> Result<(Tensor, Vec<u32>)> {
        if indices.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: a batch needs at least one index",
                self.name
            )));
        }
        let mut positions = Vec::with_capacity(indices.len());
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            let (Some(&label), Ok(position)) = (self.labels.get(index), u32::try_from(index))
            else {
                return Err(DataError::Invalid(format!(
                    "{}: index {index} is outside the {} images",
                    self.name,
                    self.len()
                )));
            };
            positions.push(position);
            labels.push(label);
        }
        let positions = Tensor::from_vec(positions, indices.len(), &Device::Cpu)?;
        Ok((self.images.index_select(&positions, 0)?, labels))
    }

    /// A new data set of the images at `indices`, in that order, named `name`.
    pub fn subset(&self, indices: &[usize], name: impl Into<String>) -> Result<Self> {
        let (images, labels) = self.batch(indices)?;
        Self::new(name, images, labels, self.class_names.clone())
    }

    /// The same data with other images of the same count (used by normalisation).
    pub(crate) fn with_images(&self, images: Tensor) -> Result<Self> {
        Self::new(
            self.name.clone(),
            images,
            self.labels.clone(),
            self.class_names.clone(),
        )
    }
}

/// Checks that the images of `data` fit a model input of shape `model_input`, batch
/// dimension first (`[N, C, H, W]`, `[N, F]`, ...). Leading dimensions of 1 are ignored on
/// both sides, so 1x1x64 features fit an input `[N, 64]`. The error reads
/// "images are 1x8x8, the model wants 1x28x28".
pub fn check_input_shape(data: &Dataset, model_input: &[usize]) -> Result<()> {
    let image = data.image_shape();
    let per_sample = model_input.get(1..).unwrap_or_default();
    let squeeze =
        |shape: &[usize]| -> Vec<usize> { shape.iter().copied().skip_while(|&d| d == 1).collect() };
    if !model_input.is_empty() && squeeze(per_sample) == squeeze(&image) {
        return Ok(());
    }
    Err(DataError::InputShape {
        what: data.name.clone(),
        found: shape_text(&image),
        wanted: shape_text(per_sample),
    })
}

/// `[1, 8, 8]` as "1x8x8" (no dimensions as "a scalar per sample").
fn shape_text(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "a scalar per sample".to_string();
    }
    shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Class names "0", "1", ... for `classes` numbered classes.
pub(crate) fn numbered_classes(classes: usize) -> Vec<String> {
    (0..classes).map(|c| c.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four 1x2x2 images whose pixels are their index, labels 0, 1, 1, 2.
    fn tiny() -> Dataset {
        let pixels = (0..4).flat_map(|i| [i as f32; 4]).collect();
        Dataset::from_pixels(
            "tiny",
            pixels,
            [4, 1, 2, 2],
            vec![0, 1, 1, 2],
            numbered_classes(3),
        )
        .unwrap()
    }

    #[test]
    fn accessors_and_batches() {
        let data = tiny();
        assert_eq!(data.len(), 4);
        assert!(!data.is_empty());
        assert_eq!(data.classes(), 3);
        assert_eq!(data.image_shape(), [1, 2, 2]);
        assert_eq!(data.class_counts(), [1, 2, 1]);
        let (images, labels) = data.batch(&[3, 0, 3]).unwrap();
        assert_eq!(images.dims(), [3, 1, 2, 2]);
        assert_eq!(labels, [2, 0, 2]);
        let firsts: Vec<f32> = images
            .flatten_from(1)
            .unwrap()
            .max(1)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(firsts, [3.0, 0.0, 3.0]);
        let subset = data.subset(&[1, 2], "ones").unwrap();
        assert_eq!((subset.name(), subset.labels()), ("ones", &[1, 1][..]));
    }

    #[test]
    fn bad_batches_are_errors() {
        let data = tiny();
        let err = data.batch(&[0, 4]).unwrap_err().to_string();
        assert_eq!(err, "tiny: index 4 is outside the 4 images");
        let err = data.batch(&[]).unwrap_err().to_string();
        assert_eq!(err, "tiny: a batch needs at least one index");
    }

    #[test]
    fn construction_checks_counts_and_labels() {
        let images = Tensor::zeros((3, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let err = Dataset::new("set", images.clone(), vec![0, 1], numbered_classes(2))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "set: 3 images but 2 labels; every image needs exactly one label"
        );
        let err = Dataset::new("set", images.clone(), vec![0, 1, 5], numbered_classes(2))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "set: image 2 has label 5, outside the classes 0..2");
        let flat = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
        let err = Dataset::new("set", flat, vec![0, 1, 1], numbered_classes(2))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "set: images must be a tensor [N, C, H, W], got shape [3, 4]"
        );
        let none = Tensor::zeros((0, 1, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let err = Dataset::new("set", none, vec![], numbered_classes(2))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "set has no images");
        // Other dtypes are converted to f32.
        let bytes = Tensor::zeros((3, 1, 2, 2), DType::U8, &Device::Cpu).unwrap();
        let data = Dataset::new("set", bytes, vec![0, 1, 1], numbered_classes(2)).unwrap();
        assert_eq!(data.images().dtype(), DType::F32);
    }

    #[test]
    fn input_shape_check() {
        let data = Dataset::from_pixels(
            "digits",
            vec![0.0; 2 * 64],
            [2, 1, 8, 8],
            vec![0, 1],
            numbered_classes(2),
        )
        .unwrap();
        for fits in [
            &[1, 1, 8, 8][..],
            &[32, 1, 8, 8],
            &[1, 8, 8],
            &[5, 1, 1, 8, 8],
        ] {
            check_input_shape(&data, fits).unwrap();
        }
        let err = check_input_shape(&data, &[1, 1, 28, 28])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "digits: images are 1x8x8, the model wants 1x28x28");
        let err = check_input_shape(&data, &[1, 3, 8, 8])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "digits: images are 1x8x8, the model wants 3x8x8");
        let err = check_input_shape(&data, &[1, 64]).unwrap_err().to_string();
        assert_eq!(err, "digits: images are 1x8x8, the model wants 64");
        let err = check_input_shape(&data, &[]).unwrap_err().to_string();
        assert_eq!(
            err,
            "digits: images are 1x8x8, the model wants a scalar per sample"
        );
    }
}
