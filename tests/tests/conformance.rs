//! The ONNX backend test data (Debian's `libonnx-testdata`: node, pytorch-converted,
//! pytorch-operator, simple): every case is converted and run in the runtime, and its
//! outputs compared with the reference outputs (rtol 1e-4, atol 1e-5). Prints passed /
//! failed / unsupported per op, and the reason for everything not passed. Cases made only
//! of the core ops on 2-D/4-D float data must all pass.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::DType;
use lopper_converter::import::ImportError;
use lopper_converter::pipeline::ConvertError;
use lopper_runtime::graph::Storage;
use lopper_tests::{close, convert_and_run, data_dir, max_diff, read_case, values};

/// Ops whose 2-D/4-D float cases must all pass.
const CORE: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "BatchNormalization",
    "Add",
    "Mul",
    "Concat",
    "Flatten",
    "Reshape",
    "Softmax",
    "Relu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Transpose",
    "Pad",
];

#[derive(Debug)]
enum Outcome {
    Pass,
    Fail(String),
    Unsupported(String),
}

/// Converts and runs one case; `storage` is the weight storage, `tol` (atol, rtol).
fn run_case(dir: &Path, storage: Storage, tol: (f32, f32)) -> Outcome {
    let case = match read_case(dir) {
        Ok(c) => c,
        Err(e) => return Outcome::Unsupported(format!("cannot read the case: {e:#}")),
    };
    if case.float64 {
        return Outcome::Unsupported("float64 data (the runtime computes in f32)".into());
    }
    if case.outputs.iter().any(|t| t.dtype() != DType::F32)
        || case
            .inputs
            .iter()
            .any(|(_, t)| t.dtype() != DType::F32 && t.dtype() != DType::I64)
    {
        return Outcome::Unsupported("non-float outputs or inputs".into());
    }
    let floats: HashMap<String, Vec<f32>> = case
        .inputs
        .iter()
        .filter(|(_, t)| t.dtype() == DType::F32)
        .map(|(n, t)| (n.clone(), values(t).expect("f32 tensor")))
        .collect();
    let ints = case.inputs.iter().filter(|(_, t)| t.dtype() == DType::I64);
    let mut freeze: HashMap<_, _> = ints.map(|(n, t)| (n.clone(), t.clone())).collect();
    let mut result = convert_and_run(
        &case.model,
        freeze.clone(),
        HashMap::new(),
        &floats,
        storage,
    );
    // Weights fed as inputs (Gemm's B, BatchNorm's statistics...) become constants.
    let needs_constants = |r: &anyhow::Result<_>| matches!(r, Err(e) if format!("{e:#}").contains("must be a constant") || format!("{e:#}").contains("must be constants"));
    if needs_constants(&result) {
        freeze.extend(
            case.inputs
                .iter()
                .skip(1)
                .map(|(n, t)| (n.clone(), t.clone())),
        );
        result = convert_and_run(&case.model, freeze, HashMap::new(), &floats, storage);
    }
    let got = match result {
        Ok(got) => got,
        Err(e) => {
            return match e.downcast_ref::<ConvertError>() {
                Some(ConvertError::Import(ImportError::Nodes(p))) => Outcome::Unsupported(
                    p.iter()
                        .map(|p| format!("{} {}", p.op, p.reason))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Some(ConvertError::Import(ImportError::Graph { reason, .. })) => {
                    Outcome::Unsupported(reason.clone())
                }
                _ => Outcome::Fail(format!("{e:#}")),
            }
        }
    };
    for (i, (g, want)) in got.iter().zip(&case.outputs).enumerate() {
        let want = values(want).expect("f32 tensor");
        if !close(g, &want, tol.0, tol.1) {
            let (abs, rel) = max_diff(g, &want);
            return Outcome::Fail(format!(
                "output {i}: max abs diff {abs:e}, max rel diff {rel:e} ({} vs {} values)",
                g.len(),
                want.len()
            ));
        }
    }
    Outcome::Pass
}

/// Op types of a case's model, and whether it counts as a core case (only core ops, float
/// inputs and outputs of rank 2 or 4).
fn classify(dir: &Path) -> (Vec<String>, bool) {
    let Ok(model) = lopper_converter::onnx::load(&dir.join("model.onnx")) else {
        return (vec!["(unreadable)".into()], false);
    };
    let graph = model.graph.unwrap_or_default();
    let mut ops: Vec<String> = graph.node.iter().map(|n| n.op_type().to_string()).collect();
    ops.sort();
    ops.dedup();
    let core_ops = !ops.is_empty() && ops.iter().all(|o| CORE.contains(&o.as_str()));
    let ranks_ok = read_case(dir).is_ok_and(|c| {
        let float_ranks = c
            .inputs
            .iter()
            .map(|(_, t)| t)
            .chain(&c.outputs)
            .filter(|t| t.dtype() == DType::F32)
            .map(|t| t.rank());
        !c.float64
            && c.outputs.iter().all(|t| t.dtype() == DType::F32)
            && float_ranks.into_iter().all(|r| r == 2 || r == 4)
    });
    (ops, core_ops && ranks_ok)
}

fn run_suite(storage: Storage, tol: (f32, f32)) {
    let root = data_dir("LOPPER_ONNX_TESTDATA", "/usr/share/libonnx-testdata/data");
    let mut per_op: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    let mut not_passed = Vec::new();
    let mut core_failures = Vec::new();
    let mut core_passed = 0;
    for suite in ["node", "pytorch-converted", "pytorch-operator", "simple"] {
        let mut dirs: Vec<_> = std::fs::read_dir(root.join(suite))
            .expect("suite folder")
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let (ops, core) = classify(&dir);
            let outcome = run_case(&dir, storage, tol);
            let slot = match outcome {
                Outcome::Pass => 0,
                Outcome::Fail(_) => 1,
                Outcome::Unsupported(_) => 2,
            };
            for op in &ops {
                per_op.entry(op.clone()).or_default()[slot] += 1;
            }
            let name = format!(
                "{suite}/{}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            );
            match outcome {
                Outcome::Pass if core => core_passed += 1,
                Outcome::Pass => {}
                Outcome::Fail(why) | Outcome::Unsupported(why) => {
                    if core {
                        core_failures.push(format!("{name}: {why}"));
                    }
                    not_passed.push(format!(
                        "{} {name} [{}]: {why}",
                        ["pass", "FAIL", "unsupported"][slot],
                        ops.join(",")
                    ));
                }
            }
        }
    }
    println!(
        "\n{:<28} {:>7} {:>7} {:>12}",
        "op", "passed", "failed", "unsupported"
    );
    let mut totals = [0; 3];
    for (op, [p, f, u]) in &per_op {
        println!("{op:<28} {p:>7} {f:>7} {u:>12}");
        totals[0] += p;
        totals[1] += f;
        totals[2] += u;
    }
    println!(
        "{:<28} {:>7} {:>7} {:>12}   (a case counts once for each op it uses)",
        "all ops", totals[0], totals[1], totals[2]
    );
    println!("\nnot passed, with reasons:");
    for line in &not_passed {
        println!("  {line}");
    }
    println!(
        "\ncore cases (only {} on 2-D/4-D float data): {core_passed} passed, {} not",
        CORE.join("/"),
        core_failures.len()
    );
    assert!(
        core_failures.is_empty(),
        "core cases that must pass:\n{}",
        core_failures.join("\n")
    );
    assert!(
        core_passed >= 90,
        "only {core_passed} core cases ran: is the test data complete?"
    );
}

#[test]
fn onnx_backend_cases_f32() {
    run_suite(Storage::F32, (1e-5, 1e-4));
}

/// With f16 weights: each weight moves by up to 2^-11 of its magnitude, and the small
/// test tensors sum at most a few hundred products, so outputs stay within 1e-2 absolute
/// plus 1e-2 relative.
#[test]
fn onnx_backend_cases_f16() {
    run_suite(Storage::F16, (1e-2, 1e-2));
}
