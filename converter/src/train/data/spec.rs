//! `--data SPEC`: which data set the command line names.

use std::path::PathBuf;
use std::str::FromStr;

use super::{
    digits, fashion_mnist, load_folder, load_idx, load_npy, DataError, Dataset, FolderOptions,
    Result, FASHION_MNIST_DIR,
};

/// The accepted spec forms, as error messages and help texts list them.
pub const SPEC_FORMS: &str = "digits, fashion-mnist[:DIR], fashion-mnist-test[:DIR], \
                              idx:IMAGES,LABELS, folder:DIR, npy:INPUTS,LABELS";

/// A data set named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSpec {
    /// `digits`: the embedded UCI handwritten digits.
    Digits,
    /// `fashion-mnist[:DIR]` (training set) or `fashion-mnist-test[:DIR]` (test set).
    FashionMnist {
        /// The folder, [`FASHION_MNIST_DIR`] by default.
        dir: PathBuf,
        /// Training (60,000 images) or test (10,000) set.
        train: bool,
    },
    /// `idx:IMAGES,LABELS`: an IDX pair.
    Idx {
        /// The `idx3-ubyte` images file.
        images: PathBuf,
        /// The `idx1-ubyte` labels file.
        labels: PathBuf,
    },
    /// `folder:DIR`: one sub-folder of images per class (colour told by the images, no
    /// resizing).
    Folder(PathBuf),
    /// `npy:INPUTS,LABELS`: a `.npy` pair.
    Npy {
        /// The inputs array.
        inputs: PathBuf,
        /// The labels array.
        labels: PathBuf,
    },
}

impl FromStr for DataSpec {
    type Err = DataError;

    /// Parses one of [`SPEC_FORMS`].
    fn from_str(spec: &str) -> Result<Self> {
        let error = |reason: &str| DataError::Spec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (kind, argument) = match spec.split_once(':') {
            Some((kind, argument)) => (kind, Some(argument)),
            None => (spec, None),
        };
        let pair = |what: &str| -> Result<(PathBuf, PathBuf)> {
            match argument.and_then(|a| a.split_once(',')) {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(',') => {
                    Ok((PathBuf::from(a), PathBuf::from(b)))
                }
                _ => Err(error(&format!("{kind} takes two files, {what}"))),
            }
        };
        match kind {
            "digits" => match argument {
                None => Ok(Self::Digits),
                Some(_) => Err(error("digits takes no argument (the data are embedded)")),
            },
            "fashion-mnist" | "fashion-mnist-test" => Ok(Self::FashionMnist {
                dir: match argument {
                    Some("") => return Err(error(&format!("{kind}: name a folder after ':'"))),
                    Some(dir) => PathBuf::from(dir),
                    None => PathBuf::from(FASHION_MNIST_DIR),
                },
                train: kind == "fashion-mnist",
            }),
            "idx" => pair("IMAGES,LABELS").map(|(images, labels)| Self::Idx { images, labels }),
            "npy" => pair("INPUTS,LABELS").map(|(inputs, labels)| Self::Npy { inputs, labels }),
            "folder" => match argument {
                Some(dir) if !dir.is_empty() => Ok(Self::Folder(PathBuf::from(dir))),
                _ => Err(error("folder takes a folder, folder:DIR")),
            },
            _ => Err(error("unknown data set")),
        }
    }
}

impl DataSpec {
    /// Loads the data set this spec names.
    pub fn open(&self) -> Result<Dataset> {
        match self {
            Self::Digits => digits(),
            Self::FashionMnist { dir, train } => fashion_mnist(dir, *train),
            Self::Idx { images, labels } => load_idx(images, labels),
            Self::Folder(dir) => load_folder(dir, FolderOptions::default()),
            Self::Npy { inputs, labels } => load_npy(inputs, labels),
        }
    }
}

/// Parses `spec` (one of [`SPEC_FORMS`]) and loads the data set it names.
pub fn open(spec: &str) -> Result<Dataset> {
    spec.parse::<DataSpec>()?.open()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::train::data::scratch_dir;

    /// `KIND:A,B` for two paths.
    fn spec_for(kind: &str, a: &Path, b: &Path) -> String {
        format!("{kind}:{},{}", a.display(), b.display())
    }

    #[test]
    fn every_form_parses() {
        let parse = |s: &str| s.parse::<DataSpec>().unwrap();
        assert_eq!(parse("digits"), DataSpec::Digits);
        assert_eq!(
            parse("fashion-mnist"),
            DataSpec::FashionMnist {
                dir: PathBuf::from(FASHION_MNIST_DIR),
                train: true
            }
        );
        assert_eq!(
            parse("fashion-mnist-test:/data/fm"),
            DataSpec::FashionMnist {
                dir: PathBuf::from("/data/fm"),
                train: false
            }
        );
        assert_eq!(
            parse("idx:a/images.gz,a/labels.gz"),
            DataSpec::Idx {
                images: PathBuf::from("a/images.gz"),
                labels: PathBuf::from("a/labels.gz")
            }
        );
        assert_eq!(
            parse("folder:pics"),
            DataSpec::Folder(PathBuf::from("pics"))
        );
        assert_eq!(
            parse("npy:x.npy,y.npy"),
            DataSpec::Npy {
                inputs: PathBuf::from("x.npy"),
                labels: PathBuf::from("y.npy")
            }
        );
    }

    #[test]
    fn bad_specs_list_the_forms() {
        let forms = "the accepted forms are digits, fashion-mnist[:DIR], \
                     fashion-mnist-test[:DIR], idx:IMAGES,LABELS, folder:DIR, npy:INPUTS,LABELS";
        for (spec, reason) in [
            ("mnist", "unknown data set"),
            (
                "digits:x",
                "digits takes no argument (the data are embedded)",
            ),
            ("idx:only-one", "idx takes two files, IMAGES,LABELS"),
            ("npy:a,b,c", "npy takes two files, INPUTS,LABELS"),
            ("folder:", "folder takes a folder, folder:DIR"),
            ("fashion-mnist:", "fashion-mnist: name a folder after ':'"),
        ] {
            let err = spec.parse::<DataSpec>().unwrap_err().to_string();
            assert_eq!(err, format!("data spec '{spec}': {reason}; {forms}"));
        }
    }

    #[test]
    fn open_loads_what_the_spec_names() {
        let data = open("digits").unwrap();
        assert_eq!(data.len(), 1797);

        let dir = scratch_dir("spec-open");
        let inputs = dir.join("x.npy");
        let labels = dir.join("y.npy");
        std::fs::write(&inputs, crate::npy::encode(&[0.5; 8], &[2, 4]).unwrap()).unwrap();
        std::fs::write(&labels, crate::npy::encode(&[1.0, 0.0], &[2]).unwrap()).unwrap();
        let data = open(&spec_for("npy", &inputs, &labels)).unwrap();
        assert_eq!((data.len(), data.image_shape()), (2, [1, 1, 4]));

        let missing = dir.join("nothing");
        let err = open(&format!("folder:{}", missing.display()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("data folder {} does not exist", missing.display())
        );
        let err = open(&spec_for("idx", &missing, &labels))
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("file {} does not exist", missing.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
