//! `lopper run`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use lopper_converter::files::write_atomic;
use lopper_converter::ir::eval;
use lopper_converter::npy;
use lopper_converter::pipeline::{convert_file, ConvertOptions};
use lopper_runtime::{Model, Session};

/// Arguments of `lopper run`.
#[derive(clap::Args)]
pub struct Args {
    /// A .lopper model, or an .onnx model (converted in memory first).
    model: PathBuf,
    /// An input as NAME=file.npy (repeat for each input; the name may be omitted for a
    /// model with one input).
    #[arg(long = "input", value_name = "NAME=FILE.npy")]
    inputs: Vec<String>,
    /// Folder for the outputs, one NAME.npy per output (created if missing).
    #[arg(long = "output-dir", value_name = "DIR")]
    output_dir: PathBuf,
    /// Also run the model's IR in candle (the reference executor) and print the largest
    /// absolute and relative differences; needs an .onnx model.
    #[arg(long)]
    reference: bool,
    #[command(flatten)]
    shapes: super::ShapeArgs,
}

/// Runs `lopper run`.
pub fn run(args: Args) -> Result<()> {
    let is_onnx = args
        .model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let mut reference_graph = None;
    let model = if is_onnx {
        let options = ConvertOptions {
            import: args.shapes.import_options(),
            ..ConvertOptions::default()
        };
        let converted = convert_file(&args.model, &options)
            .with_context(|| format!("cannot convert {}", args.model.display()))?;
        reference_graph = Some(converted.graph);
        Model::from_vec(converted.bytes)?
    } else if args.reference {
        bail!("--reference runs the IR built from the ONNX model: give the .onnx file");
    } else if args.shapes.given() {
        bail!("--input-shape and --batch apply to .onnx models; a .lopper file has fixed shapes (see `lopper inspect`)");
    } else {
        Model::open(&args.model).with_context(|| format!("cannot load {}", args.model.display()))?
    };
    let mut session = Session::new(&model)?;
    let declared = model.inputs();
    let mut given = vec![false; declared.len()];
    let mut feeds = vec![Vec::new(); declared.len()];
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
        if given[index] {
            bail!("input '{name}' is given twice");
        }
        let (values, shape) = npy::read(file.as_ref())?;
        if shape != declared[index].shape {
            bail!(
                "{file}: shape {shape:?}, but input '{name}' needs {:?}",
                declared[index].shape
            );
        }
        session.set_input(index, &values)?;
        given[index] = true;
        feeds[index] = values;
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
    if let (true, Some(graph)) = (args.reference, &reference_graph) {
        let inputs = declared
            .iter()
            .zip(&feeds)
            .map(|(info, values)| Tensor::from_vec(values.clone(), info.shape, &Device::Cpu))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let expected = eval(graph, &inputs)?;
        for (i, (out, want)) in model.outputs().iter().zip(&expected).enumerate() {
            let want: Vec<f32> = want.flatten_all()?.to_vec1()?;
            let got = session.output(i)?;
            let (abs, rel) = got
                .iter()
                .zip(&want)
                .fold((0.0f32, 0.0f32), |(a, r), (g, w)| {
                    let d = (g - w).abs();
                    (a.max(d), r.max(d / w.abs().max(1e-6)))
                });
            println!(
                "{}: runtime vs candle reference: max abs diff {abs:.3e}, max rel diff {rel:.3e}",
                out.name
            );
        }
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
