//! Helpers for the workspace-level tests: where the external test data lives, and running
//! an ONNX model through convert -> runtime against reference outputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use lopper_converter::export::ExportOptions;
use lopper_converter::import::ImportOptions;
use lopper_converter::npy;
use lopper_converter::onnx::load_tensor;
use lopper_converter::pipeline::{convert_file, ConvertOptions};
use lopper_runtime::graph::Storage;
use lopper_runtime::{Model, Session};

/// A folder named by environment variable `var` (set by `scripts/test-all.sh`), or the
/// default. Fails with instructions when it does not exist.
pub fn data_dir(var: &str, default: &str) -> PathBuf {
    let dir = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        dir.exists(),
        "test data {} not found; run scripts/test-all.sh (it installs it) or set {var}",
        dir.display()
    );
    dir
}

/// Values of a tensor as f32.
pub fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Largest absolute and relative differences between `got` and `want`.
pub fn max_diff(got: &[f32], want: &[f32]) -> (f32, f32) {
    got.iter()
        .zip(want)
        .fold((0.0f32, 0.0f32), |(a, r), (g, w)| {
            let d = (g - w).abs();
            (a.max(d), r.max(d / w.abs().max(1e-6)))
        })
}

/// Whether every element is within `atol + rtol * |want|`.
pub fn close(got: &[f32], want: &[f32], atol: f32, rtol: f32) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= atol + rtol * w.abs() || (g.is_nan() && w.is_nan()))
}

/// Converts `model` (freezing `freeze` inputs to constants) and runs it in the runtime on
/// `inputs` (by graph-input name), returning the outputs in graph order.
pub fn convert_and_run(
    model: &Path,
    freeze: HashMap<String, Tensor>,
    input_shapes: HashMap<String, Vec<usize>>,
    inputs: &HashMap<String, Vec<f32>>,
    storage: Storage,
) -> Result<Vec<Vec<f32>>> {
    let options = ConvertOptions {
        import: ImportOptions {
            freeze,
            input_shapes,
            ..ImportOptions::default()
        },
        export: ExportOptions {
            storage,
            ..ExportOptions::default()
        },
    };
    let converted = convert_file(model, &options)?;
    let model = Model::from_vec(converted.bytes)?;
    let mut session = Session::new(&model)?;
    for info in model.inputs() {
        let data = inputs
            .get(info.name)
            .with_context(|| format!("no data for input '{}'", info.name))?;
        let index = session.input_index(info.name)?;
        session.set_input(index, data)?;
    }
    session.run();
    (0..model.outputs().len())
        .map(|i| Ok(session.output(i)?.to_vec()))
        .collect()
}

/// The inputs and expected outputs of an ONNX test case folder (`test_data_set_0`).
pub struct Case {
    /// `model.onnx`.
    pub model: PathBuf,
    /// `input_N.pb` tensors with the graph input names they feed.
    pub inputs: Vec<(String, Tensor)>,
    /// `output_N.pb` tensors.
    pub outputs: Vec<Tensor>,
    /// Whether the model's inputs or outputs are float64 (read as f32 here).
    pub float64: bool,
}

/// Reads a test case folder.
pub fn read_case(dir: &Path) -> Result<Case> {
    let model_path = dir.join("model.onnx");
    let model = lopper_converter::onnx::load(&model_path)?;
    let graph = model.graph.as_ref().context("no graph")?;
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let names: Vec<String> = graph
        .input
        .iter()
        .map(|i| i.name().to_string())
        .filter(|n| !initializers.contains(&n.as_str()))
        .collect();
    let float64 = graph.input.iter().chain(&graph.output).any(|v| {
        matches!(
            v.r#type.as_ref().and_then(|t| t.value.as_ref()),
            Some(lopper_converter::onnx::proto::type_proto::Value::TensorType(t)) if t.elem_type() == 11
        )
    });
    let set = dir.join("test_data_set_0");
    let mut inputs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = set.join(format!("input_{i}.pb"));
        if !path.exists() {
            break;
        }
        inputs.push((name.clone(), load_tensor(&path)?));
    }
    let mut outputs = Vec::new();
    for i in 0.. {
        let path = set.join(format!("output_{i}.pb"));
        if !path.exists() {
            break;
        }
        outputs.push(load_tensor(&path)?);
    }
    if outputs.is_empty() {
        bail!("no outputs in {}", set.display());
    }
    Ok(Case {
        model: model_path,
        inputs,
        outputs,
        float64,
    })
}

/// Runs `model` in onnxruntime (through `LOPPER_PYTHON`, a Python with onnxruntime, set by
/// `scripts/test-all.sh`) on one input and returns output 0.
pub fn onnxruntime(model: &Path, input_name: &str, input: &[f32], shape: &[usize]) -> Vec<f32> {
    let python = std::env::var("LOPPER_PYTHON")
        .expect("LOPPER_PYTHON: a Python with onnxruntime; scripts/test-all.sh sets it");
    let dir = std::env::temp_dir().join(format!(
        "lopper-ort-{}-{}",
        std::process::id(),
        model.file_stem().unwrap_or_default().to_string_lossy()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input_path = dir.join("input.npy");
    std::fs::write(&input_path, npy::encode(input, shape).expect("npy")).expect("write input");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ort_run.py");
    let status = std::process::Command::new(python)
        .arg(script)
        .arg(model)
        .arg(&dir)
        .arg(format!("{input_name}={}", input_path.display()))
        .status()
        .expect("python runs");
    assert!(
        status.success(),
        "onnxruntime failed on {}",
        model.display()
    );
    let (out, _) = npy::read(&dir.join("output_0.npy")).expect("output");
    std::fs::remove_dir_all(&dir).expect("clean up");
    out
}
