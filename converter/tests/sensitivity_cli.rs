//! End-to-end tests of `lopper sensitivity` on the small CNN of `common`: curves as a table
//! and as JSON, calibration data from .npy files, an allocation written as a recipe that
//! `lopper prune` accepts, and clear errors.

mod common;

use std::path::PathBuf;

use common::*;
use lopper_converter::npy;
use serde_json::Value;

/// A temporary folder holding `small_cnn.onnx`.
fn with_model(label: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(label);
    let onnx = dir.join("small_cnn.onnx");
    write_model(&small_cnn(), &onnx);
    (dir, onnx)
}

/// Runs `lopper sensitivity ONNX ARGS... --json` and parses stdout.
fn sensitivity_json(onnx: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["sensitivity".to_string(), onnx.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.push("--json".into());
    let run = lopper(&all);
    serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout))
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .expect("an array")
        .iter()
        .map(|l| l["name"].as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn magnitude_curves_allocation_and_recipe_round_trip() {
    let (dir, onnx) = with_model("sens-magnitude");
    let recipe = dir.join("recipe.toml");
    let report = sensitivity_json(
        &onnx,
        &[
            "--grid",
            "0.5,0.25",
            "--inputs",
            "2",
            "--target",
            "params",
            "--budget",
            "0.2",
            "--recipe-out",
            recipe.to_str().unwrap(),
        ],
    );
    assert_eq!(report["method"], "magnitude");
    assert_eq!(report["metric"], "output-distance");
    assert_eq!(report["inputs"], 2);
    assert_eq!(report["grid"], serde_json::json!([0.25, 0.5]));
    assert_eq!(names(&report, "layers"), [CONV1, CONV2, FC]);
    for layer in report["layers"].as_array().unwrap() {
        let points = layer["points"].as_array().unwrap();
        assert_eq!(points.len(), 2, "{layer:#}");
        let metric = |i: usize| points[i]["metric"].as_f64().unwrap();
        assert!(metric(0) >= 0.0 && metric(0).is_finite(), "{layer:#}");
        assert!(metric(1) > 0.0 && metric(1).is_finite(), "{layer:#}");
        assert!(points[1]["params_removed"].as_u64().unwrap() > 0);
    }
    // conv1: 4 x 3 x 3 x 3 = 108 weights and 4 biases; half the weights is 54.
    let conv1 = &report["layers"][0];
    assert_eq!(conv1["params"], 112);
    assert_eq!(conv1["points"][1]["params_removed"], 54);
    let allocation = &report["allocation"];
    assert!(
        allocation["removed"].as_f64().unwrap() >= 0.2 - 1e-6,
        "{allocation:#}"
    );
    assert_eq!(allocation["sparsity"].as_array().unwrap().len(), 3);

    let text = std::fs::read_to_string(&recipe).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let sparsity = table["sparsity"].as_table().expect("a [sparsity] table");
    assert_eq!(sparsity.len(), 3, "{text}");
    for (i, name) in [CONV1, CONV2, FC].into_iter().enumerate() {
        assert_eq!(
            sparsity[name].as_float().unwrap(),
            allocation["sparsity"][i][1].as_f64().unwrap(),
            "{text}"
        );
    }
    // The recipe is what `lopper prune --recipe` reads.
    let out = dir.join("pruned.lopper");
    lopper([
        "prune",
        onnx.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--method",
        "magnitude",
        "--sparsity",
        "0",
        "--no-protect",
        "--recipe",
        recipe.to_str().unwrap(),
    ])
    .ok();
    assert!(out.exists());
}

#[test]
fn the_table_names_every_layer_and_progress_goes_to_stderr() {
    let (_dir, onnx) = with_model("sens-table");
    let run = lopper([
        "sensitivity",
        onnx.to_str().unwrap(),
        "--grid",
        "0.3,0.6",
        "--inputs",
        "1",
    ]);
    let stdout = run.ok();
    let header = stdout.lines().nth(1).expect("a header line");
    for column in ["layer", "params", "MACs", "30%", "60%"] {
        assert!(header.contains(column), "{stdout}");
    }
    for name in [CONV1, CONV2, FC] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no row for {name}:\n{stdout}"
        );
    }
    assert!(run.stderr.contains("layer 1/3: conv1"), "{}", run.stderr);
    assert!(run.stderr.contains("layer 3/3: fc"), "{}", run.stderr);
}

#[test]
fn channel_groups_are_analysed_as_one() {
    let (_dir, onnx) = with_model("sens-channel");
    let report = sensitivity_json(&onnx, &["--method", "channel", "--grid", "0.25,0.5"]);
    // conv1 and conv2 meet in the residual Add: one group; fc's outputs are the graph's.
    assert_eq!(names(&report, "layers"), [CONV1]);
    assert_eq!(
        report["layers"][0]["members"],
        serde_json::json!([CONV1, CONV2])
    );
    let points = report["layers"][0]["points"].as_array().unwrap();
    assert!(points[0]["macs_removed"].as_u64().unwrap() > 0);
    assert!(points[1]["macs_removed"].as_u64() > points[0]["macs_removed"].as_u64());
}

#[test]
fn calibration_data_comes_from_npy_files() {
    let (dir, onnx) = with_model("sens-npy");
    let x = dir.join("x.npy");
    let shape = [3, IN_CHANNELS, HEIGHT, WIDTH];
    let values = Rng::new(3).values(shape.iter().product(), -1.0, 1.0);
    std::fs::write(&x, npy::encode(&values, &shape).unwrap()).unwrap();
    let spec = format!("{INPUT}={}", x.display());
    let report = sensitivity_json(&onnx, &["--input", &spec, "--grid", "0.5"]);
    assert_eq!(report["inputs"], 3);
    // The name may be left out for a model with one input.
    let report = sensitivity_json(&onnx, &["--input", x.to_str().unwrap(), "--grid", "0.5"]);
    assert_eq!(report["inputs"], 3);

    let bad = dir.join("bad.npy");
    let shape = [2, IN_CHANNELS, HEIGHT, WIDTH - 1];
    std::fs::write(
        &bad,
        npy::encode(&vec![0.0; 2 * 3 * 8 * 7], &shape).unwrap(),
    )
    .unwrap();
    let err = lopper([
        "sensitivity",
        onnx.to_str().unwrap(),
        "--input",
        &format!("{INPUT}={}", bad.display()),
    ])
    .fails()
    .to_string();
    assert!(
        err.contains("[2, 3, 8, 7]") && err.contains("[1, 3, 8, 8]"),
        "{err}"
    );
}

#[test]
fn bad_requests_are_refused_clearly() {
    let (dir, onnx) = with_model("sens-errors");
    let model = onnx.to_str().unwrap();
    let err = lopper(["sensitivity", model, "--grid", "0.5,1.0"])
        .fails()
        .to_string();
    assert!(err.contains("sparsity 1 is outside [0, 1)"), "{err}");
    // The budget is checked against the curves, after the progress lines.
    let run = lopper([
        "sensitivity",
        model,
        "--grid",
        "0.1,0.2",
        "--target",
        "params",
        "--budget",
        "0.9",
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: cannot remove 90.0% of the parameters")
            && last.ends_with("add larger grid values"),
        "{}",
        run.stderr
    );
    // An impossible budget fails before the analysis.
    let err = lopper(["sensitivity", model, "--target", "macs", "--budget", "1.5"])
        .fails()
        .to_string();
    assert!(err.contains("--budget 1.5"), "{err}");
    let err = lopper([
        "sensitivity",
        model,
        "--method",
        "channel",
        "--target",
        "macs",
        "--budget",
        "0.1",
        "--recipe-out",
        dir.join("r.toml").to_str().unwrap(),
    ])
    .fails()
    .to_string();
    assert!(err.contains("--recipe-out needs a weight method"), "{err}");
    let err = lopper(["sensitivity", model, "--method", "nm:2:4"])
        .fails()
        .to_string();
    assert!(err.contains("unknown --method nm:2:4"), "{err}");
    // --budget without --target is a usage error.
    let run = lopper(["sensitivity", model, "--budget", "0.5"]);
    assert!(
        !run.success && run.stderr.contains("--target"),
        "{}",
        run.stderr
    );
}
