//! `lopper run`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use lopper_converter::files::write_atomic;
use lopper_converter::npy;
use lopper_runtime::{Model, Session};

/// Arguments of `lopper run`.
#[derive(clap::Args)]
pub struct Args {
    /// The .lopper model.
    model: PathBuf,
    /// An input as NAME=file.npy (repeat for each input; the name may be omitted for a
    /// model with one input).
    #[arg(long = "input", value_name = "NAME=FILE.npy")]
    inputs: Vec<String>,
    /// Folder for the outputs, one NAME.npy per output (created if missing).
    #[arg(long = "output-dir", value_name = "DIR")]
    output_dir: PathBuf,
}

/// Runs `lopper run`.
pub fn run(args: Args) -> Result<()> {
    let model = Model::open(&args.model)
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    let mut session = Session::new(&model)?;
    let declared = model.inputs();
    let mut given = vec![false; declared.len()];
    for spec in &args.inputs {
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) => (n.to_string(), f),
            None if declared.len() == 1 => (declared[0].name.to_string(), spec.as_str()),
            None => bail!(
                "--input {spec}: name the input (NAME=FILE.npy); the model has {}",
                names(&declared)
            ),
        };
        let index = session
            .input_index(&name)
            .with_context(|| format!("the model's inputs are {}", names(&declared)))?;
        let (values, shape) = npy::read(file.as_ref())?;
        if shape != declared[index].shape {
            bail!(
                "{file}: shape {shape:?}, but input '{name}' needs {:?}",
                declared[index].shape
            );
        }
        session.set_input(index, &values)?;
        given[index] = true;
    }
    if let Some(missing) = given.iter().position(|g| !g) {
        bail!(
            "input '{}' {:?} is not given (--input {}=FILE.npy)",
            declared[missing].name,
            declared[missing].shape,
            declared[missing].name
        );
    }
    session.run();
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;
    for (i, out) in model.outputs().iter().enumerate() {
        let file_name: String = out
            .name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = args.output_dir.join(format!("{file_name}.npy"));
        write_atomic(&path, &npy::encode(session.output(i)?, out.shape)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{} {:?} -> {}", out.name, out.shape, path.display());
    }
    Ok(())
}

fn names(infos: &[lopper_runtime::TensorInfo]) -> String {
    infos
        .iter()
        .map(|i| format!("'{}' {:?}", i.name, i.shape))
        .collect::<Vec<_>>()
        .join(", ")
}
