//! Real models: the nine architecture models of the `onnx` wheel against their reference
//! outputs, and the PP-OCR text-direction classifier (a pretrained MobileNetV3-style
//! network) against onnxruntime on the same input; each with f32 and with f16 weights.

use std::collections::HashMap;
use std::path::PathBuf;

use lopper_converter::onnx::load_tensor;
use lopper_runtime::graph::Storage;
use lopper_tests::{convert_and_run, data_dir, max_diff, onnxruntime, values};

/// f16 weights round each weight by up to 2^-11 relative; through tens of layers the
/// outputs move by up to about 1% of their scale, so f16 runs are held to atol and rtol
/// of 1e-2 (f32 runs to the 1e-5 / 1e-4, loosened per model below only where the
/// reference itself was computed with a different summation order).
const F16_TOL: (f32, f32) = (1e-2, 1e-2);

fn light_dir() -> PathBuf {
    data_dir("LOPPER_ONNX_LIGHT", "/nonexistent: set LOPPER_ONNX_LIGHT")
}

/// Converts and runs one `light` model on its all-ones input; returns (max abs, max rel)
/// difference to the reference output, and whether every element is within `tol`.
fn light(name: &str, storage: Storage, tol: (f32, f32)) -> (f32, f32, bool) {
    let dir = light_dir();
    let model_path = dir.join(format!("light_{name}.onnx"));
    let model = lopper_converter::onnx::load(&model_path).expect("model loads");
    let graph = model.graph.expect("graph");
    // Old models list their initializers as inputs too; the data input is the other one.
    let input = graph
        .input
        .iter()
        .find(|i| !graph.initializer.iter().any(|t| t.name() == i.name()))
        .expect("a data input");
    let shape: Vec<usize> = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(lopper_converter::onnx::proto::type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .expect("shape")
            .dim
            .iter()
            .map(|d| match d.value {
                Some(
                    lopper_converter::onnx::proto::tensor_shape_proto::dimension::Value::DimValue(
                        v,
                    ),
                ) => v as usize,
                _ => 1,
            })
            .collect(),
        _ => panic!("input is not a tensor"),
    };
    let ones = vec![1.0f32; shape.iter().product()];
    let inputs = HashMap::from([(input.name().to_string(), ones)]);
    let got = convert_and_run(
        &model_path,
        HashMap::new(),
        HashMap::new(),
        &inputs,
        storage,
    )
    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let want =
        values(&load_tensor(&dir.join(format!("light_{name}_output_0.pb"))).expect("reference"))
            .expect("f32");
    let (abs, rel) = max_diff(&got[0], &want);
    let ok = lopper_tests::close(&got[0], &want, tol.0, tol.1);
    (abs, rel, ok)
}

fn run_light(storage: Storage, tol: (f32, f32)) {
    let names = [
        "bvlc_alexnet",
        "densenet121",
        "inception_v1",
        "inception_v2",
        "resnet50",
        "shufflenet",
        "squeezenet",
        "vgg19",
        "zfnet512",
    ];
    let mut bad = Vec::new();
    println!(
        "\n{:<14} {:>14} {:>14}  ({storage:?} weights, atol {}, rtol {})",
        "model", "max abs diff", "max rel diff", tol.0, tol.1
    );
    for name in names {
        let (abs, rel, ok) = light(name, storage, tol);
        println!(
            "{name:<14} {abs:>14.3e} {rel:>14.3e} {}",
            if ok { "ok" } else { "OUT OF TOLERANCE" }
        );
        if !ok {
            bad.push(name);
        }
    }
    assert!(bad.is_empty(), "out of tolerance: {bad:?}");
}

#[test]
fn light_models_f32() {
    run_light(Storage::F32, (1e-5, 1e-4));
}

#[test]
fn light_models_f16() {
    run_light(Storage::F16, F16_TOL);
}

fn ppocr(storage: Storage, atol: f32) {
    let model = data_dir("LOPPER_PPOCR_CLS", "/nonexistent: set LOPPER_PPOCR_CLS");
    let shape = vec![1, 3, 48, 192];
    // A deterministic image-like input in [-1, 1].
    let input: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let want = onnxruntime(&model, "x", &input, &shape);
    let got = convert_and_run(
        &model,
        HashMap::new(),
        HashMap::from([("x".to_string(), shape.clone())]),
        &HashMap::from([("x".to_string(), input)]),
        storage,
    )
    .unwrap_or_else(|e| panic!("PP-OCR classifier: {e:#}"));
    let (abs, rel) = max_diff(&got[0], &want);
    println!("PP-OCR cls ({storage:?} weights): max abs diff {abs:.3e}, max rel diff {rel:.3e}, outputs {:?} vs onnxruntime {:?}", got[0], want);
    assert!(abs < atol, "max abs diff {abs} >= {atol}");
}

#[test]
fn ppocr_classifier_matches_onnxruntime_f32() {
    ppocr(Storage::F32, 1e-4);
}

#[test]
fn ppocr_classifier_matches_onnxruntime_f16() {
    ppocr(Storage::F16, F16_TOL.0);
}
