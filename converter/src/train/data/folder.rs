//! Folders of images with one sub-folder per class (`DIR/cat/1.png`, `DIR/dog/7.jpg`).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader};

use super::{io_error, DataError, Dataset, Result};

/// File name extensions read as images (case-insensitive).
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The channels folder images are turned into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ColorMode {
    /// One channel; colour images are converted to luma.
    Gray,
    /// Three channels, red, green, blue; grayscale images are repeated.
    Rgb,
    /// Gray when every image is grayscale, otherwise RGB.
    #[default]
    Auto,
}

/// How [`load_folder`] reads images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// The channels to produce.
    pub color: ColorMode,
    /// Resize every image to `(width, height)` (bilinear); without it all images must
    /// already have one size.
    pub resize: Option<(u32, u32)>,
}

/// Loads `dir`, whose sub-folders are the classes (sorted by name; label `i` is the `i`-th)
/// holding `.png`, `.jpg` or `.jpeg` images (sorted by file name; other files and hidden
/// entries are skipped). Pixels are scaled to `[0, 1]` (alpha is dropped).
pub fn load_folder(dir: &Path, options: FolderOptions) -> Result<Dataset> {
    let classes = entries(dir, "data folder", true)?;
    if classes.is_empty() {
        return Err(DataError::Format {
            path: dir.to_path_buf(),
            reason: "has no class sub-folders; put each class's images in DIR/CLASS/".to_string(),
        });
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in (0u32..).zip(&classes) {
        let images = entries(class, "class folder", false)?;
        if images.is_empty() {
            return Err(DataError::Format {
                path: class.clone(),
                reason: "holds no .png, .jpg or .jpeg images".to_string(),
            });
        }
        labels.extend(std::iter::repeat_n(label, images.len()));
        files.extend(images);
    }

    let mut decoded = Vec::with_capacity(files.len());
    for file in &files {
        let image = decode(file)?;
        let image = match options.resize {
            Some((w, h)) if (image.width(), image.height()) != (w, h) => {
                image.resize_exact(w, h, FilterType::Triangle)
            }
            _ => image,
        };
        if let Some(first) = decoded.first() {
            let first: &DynamicImage = first;
            let first_size = (first.width(), first.height());
            let size = (image.width(), image.height());
            if size != first_size {
                return Err(DataError::ImageSize {
                    file: file.clone(),
                    size,
                    first: files[0].clone(),
                    first_size,
                });
            }
        }
        decoded.push(image);
    }

    let rgb = match options.color {
        ColorMode::Gray => false,
        ColorMode::Rgb => true,
        ColorMode::Auto => decoded.iter().any(|image| image.color().has_color()),
    };
    let (w, h) = (decoded[0].width() as usize, decoded[0].height() as usize);
    let channels = if rgb { 3 } else { 1 };
    let mut pixels = Vec::with_capacity(decoded.len() * channels * h * w);
    for image in &decoded {
        if rgb {
            let interleaved = image.to_rgb32f().into_raw();
            for c in 0..3 {
                pixels.extend(interleaved.iter().skip(c).step_by(3));
            }
        } else {
            pixels.extend(image.to_luma32f().into_raw());
        }
    }
    let class_names = classes
        .iter()
        .map(|class| file_name(class))
        .collect::<Vec<_>>();
    Dataset::from_pixels(
        format!("folder:{}", dir.display()),
        pixels,
        [decoded.len(), channels, h, w],
        labels,
        class_names,
    )
}

/// The sub-folders (`folders`) or image files of `dir`, sorted, without hidden entries.
fn entries(dir: &Path, what: &'static str, folders: bool) -> Result<Vec<PathBuf>> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::Format {
            path: dir.to_path_buf(),
            reason: format!("is a file, but a {what} was expected"),
        });
    }
    let read_error = |source| io_error(dir, what, source);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if file_name(&path).starts_with('.') {
            continue;
        }
        let keep = if folders {
            path.is_dir()
        } else {
            path.is_file()
                && path.extension().is_some_and(|ext| {
                    IMAGE_EXTENSIONS
                        .iter()
                        .any(|known| ext.eq_ignore_ascii_case(known))
                })
        };
        if keep {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The last component of `path`, lossily as text.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Decodes one image, telling the format by its contents.
fn decode(path: &Path) -> Result<DynamicImage> {
    let reader = ImageReader::open(path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|source| io_error(path, "image", source))?;
    reader.decode().map_err(|source| DataError::Image {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, RgbImage};

    use super::*;
    use crate::train::data::scratch_dir;

    /// Whether `a` and `b` agree to 1e-6.
    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    /// A `w`x`h` gray PNG whose pixels are all `value`.
    fn gray_png(path: &Path, w: u32, h: u32, value: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        GrayImage::from_pixel(w, h, image::Luma([value]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn loads_classes_sorted_with_labels() {
        let dir = scratch_dir("folder-gray");
        gray_png(&dir.join("zebra/a.png"), 4, 3, 255);
        gray_png(&dir.join("ant/b.png"), 4, 3, 0);
        gray_png(&dir.join("ant/a.png"), 4, 3, 51);
        std::fs::write(dir.join("ant/notes.txt"), "not an image").unwrap();
        std::fs::write(dir.join("ant/.hidden.png"), "skipped").unwrap();
        std::fs::write(dir.join("README"), "top-level files are ignored").unwrap();

        let data = load_folder(&dir, FolderOptions::default()).unwrap();
        assert_eq!(data.class_names(), ["ant", "zebra"]);
        assert_eq!(data.labels(), [0, 0, 1]);
        assert_eq!(data.images().dims(), [3, 1, 3, 4]);
        let means: Vec<f32> = data
            .images()
            .flatten_from(1)
            .unwrap()
            .mean(1)
            .unwrap()
            .to_vec1()
            .unwrap();
        // ant/a.png (51 / 255), ant/b.png, zebra/a.png
        assert!(close(&means, &[0.2, 0.0, 1.0]), "{means:?}");

        // The same folder as three channels.
        let options = FolderOptions {
            color: ColorMode::Rgb,
            resize: None,
        };
        let data = load_folder(&dir, options).unwrap();
        assert_eq!(data.images().dims(), [3, 3, 3, 4]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn colour_jpeg_and_resize() {
        let dir = scratch_dir("folder-rgb");
        std::fs::create_dir_all(dir.join("red")).unwrap();
        RgbImage::from_pixel(8, 6, image::Rgb([255, 0, 0]))
            .save(dir.join("red/1.JPG"))
            .unwrap();
        gray_png(&dir.join("gray/1.png"), 4, 3, 128);

        // Different sizes without a resize are an error naming both files and sizes.
        let err = load_folder(&dir, FolderOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: image is 8x6, but {} is 4x3; all images must have one size (or resize them)",
                dir.join("red/1.JPG").display(),
                dir.join("gray/1.png").display()
            )
        );

        // Resized, and RGB because one image has colour.
        let options = FolderOptions {
            color: ColorMode::Auto,
            resize: Some((4, 3)),
        };
        let data = load_folder(&dir, options).unwrap();
        assert_eq!(data.class_names(), ["gray", "red"]);
        assert_eq!(data.images().dims(), [2, 3, 3, 4]);
        let red: Vec<f32> = data
            .images()
            .get(1)
            .unwrap()
            .mean((1, 2))
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(red[0] > 0.95 && red[1] < 0.05 && red[2] < 0.05, "{red:?}"); // JPEG is lossy
        let gray: Vec<f32> = data
            .images()
            .get(0)
            .unwrap()
            .mean((1, 2))
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(close(&gray, &[128.0 / 255.0; 3]), "{gray:?}");

        // Forced gray: one channel.
        let options = FolderOptions {
            color: ColorMode::Gray,
            resize: Some((2, 2)),
        };
        assert_eq!(
            load_folder(&dir, options).unwrap().images().dims(),
            [2, 1, 2, 2]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_folders_are_named() {
        let dir = scratch_dir("folder-errors");
        let missing = dir.join("missing");
        let err = load_folder(&missing, FolderOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("data folder {} does not exist", missing.display())
        );

        let err = load_folder(&dir, FolderOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: has no class sub-folders; put each class's images in DIR/CLASS/",
                dir.display()
            )
        );

        std::fs::create_dir_all(dir.join("empty")).unwrap();
        let err = load_folder(&dir, FolderOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: holds no .png, .jpg or .jpeg images",
                dir.join("empty").display()
            )
        );

        std::fs::write(dir.join("empty/broken.png"), "not a png").unwrap();
        let err = load_folder(&dir, FolderOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "cannot decode image {}",
                dir.join("empty/broken.png").display()
            )),
            "{err}"
        );

        let file = dir.join("empty/broken.png");
        let err = load_folder(&file, FolderOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: is a file, but a data folder was expected",
                file.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
