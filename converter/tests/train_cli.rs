//! End-to-end tests of `lopper train`, `lopper eval` and `lopper demo` on the embedded
//! digits: training reaches a real accuracy, the runtime's accuracy on a `.lopper` file
//! equals the IR's on the same model, bad data is refused before training, and the demo
//! produces its models and report.

mod common;

use common::*;
use serde_json::Value;

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// Trains the seed network on the digits for 3 epochs into `onnx`; returns stdout.
fn train_seed(onnx: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--data",
        "digits",
        "-o",
        onnx.to_str().unwrap(),
        "--epochs",
        "3",
        "--lr",
        "0.05",
    ];
    args.extend(extra);
    lopper(args).ok().to_string()
}

fn number(v: &Value, path: &[&str]) -> f64 {
    let mut at = v;
    for key in path {
        at = match key.parse::<usize>() {
            Ok(i) => &at[i],
            Err(_) => &at[*key],
        };
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v:#}"))
}

#[test]
fn train_then_eval_in_the_ir_and_the_runtime() {
    let dir = TempDir::new("train-eval");
    let onnx = dir.join("seed.onnx");
    let report = json(&train_seed(&onnx, &["--json"]));
    let validation = number(&report, &["validation", "top1"]);
    assert!(validation > 0.8, "validation top-1 {validation}");
    assert_eq!(report["training"]["epochs"].as_array().unwrap().len(), 3);

    let lopper_file = dir.join("seed.lopper");
    lopper([
        "convert",
        onnx.to_str().unwrap(),
        "-o",
        lopper_file.to_str().unwrap(),
    ])
    .ok();
    let ir = json(lopper(["eval", onnx.to_str().unwrap(), "--data", "digits", "--json"]).ok());
    let rt = json(
        lopper([
            "eval",
            lopper_file.to_str().unwrap(),
            "--data",
            "digits",
            "--json",
        ])
        .ok(),
    );
    assert_eq!(number(&ir, &["count"]), 1797.0);
    assert!(number(&ir, &["top1"]) > 0.8);
    assert_eq!(number(&ir, &["top1"]), number(&rt, &["top1"]));
    assert_eq!(number(&ir, &["top5"]), number(&rt, &["top5"]));
    assert!((number(&ir, &["loss"]) - number(&rt, &["loss"])).abs() < 1e-4);

    // Sensitivity measured as accuracy lost on labelled data.
    let s = json(
        lopper([
            "sensitivity",
            onnx.to_str().unwrap(),
            "--data",
            "digits",
            "--limit",
            "300",
            "--grid",
            "0.5,0.95",
            "--json",
        ])
        .ok(),
    );
    let sens = &s;
    assert_eq!(sens["metric"], "accuracy-drop");
    assert_eq!(number(sens, &["inputs"]), 300.0);
    assert!(number(sens, &["dense_top1"]) > 0.8);
    let layers = sens["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "conv1, conv2 and dense: {sens:#}");
    let drops: Vec<f64> = layers
        .iter()
        .flat_map(|l| {
            l["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["metric"].as_f64().unwrap())
        })
        .collect();
    assert!(drops.iter().all(|&d| (0.0..=1.0).contains(&d)), "{drops:?}");
    assert!(
        drops.iter().any(|&d| d > 0.01),
        "pruning 95% of a layer must cost accuracy: {drops:?}"
    );

    // Training continues from the ONNX file and writes a .lopper directly.
    let more = dir.join("more.lopper");
    let text = lopper([
        "train",
        onnx.to_str().unwrap(),
        "--data",
        "digits",
        "-o",
        more.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    assert!(text.ok().contains("validation top-1"), "{}", text.stdout);
    assert!(more.exists());
}

#[test]
fn bad_data_is_refused_before_training() {
    let dir = TempDir::new("train-bad-data");
    let out = dir.join("out.onnx");
    let missing = dir.join("no-such-folder");
    let err = lopper([
        "train",
        "--data",
        &format!("folder:{}", missing.display()),
        "-o",
        out.to_str().unwrap(),
    ])
    .fails()
    .to_string();
    assert!(err.contains("no-such-folder"), "{err}");

    // The small CNN of `common` takes 3x8x8 images; the digits are 1x8x8.
    let onnx = dir.join("small_cnn.onnx");
    write_model(&small_cnn(), &onnx);
    let err = lopper([
        "train",
        onnx.to_str().unwrap(),
        "--data",
        "digits",
        "-o",
        out.to_str().unwrap(),
    ])
    .fails()
    .to_string();
    assert!(err.contains("1x8x8") && err.contains("3x8x8"), "{err}");
    let err = lopper(["eval", onnx.to_str().unwrap(), "--data", "digits"])
        .fails()
        .to_string();
    assert!(err.contains("1x8x8"), "{err}");

    // Label counts that disagree.
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    std::fs::write(
        &x,
        lopper_converter::npy::encode(&vec![0.5; 4 * 64], &[4, 1, 8, 8]).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &y,
        lopper_converter::npy::encode(&[0.0, 1.0, 2.0], &[3]).unwrap(),
    )
    .unwrap();
    let err = lopper([
        "train",
        "--data",
        &format!("npy:{},{}", x.display(), y.display()),
        "-o",
        out.to_str().unwrap(),
    ])
    .fails()
    .to_string();
    assert!(err.contains("4 images but 3 labels"), "{err}");

    let err = lopper([
        "train",
        "--data",
        "digits",
        "-o",
        dir.join("model.txt").to_str().unwrap(),
    ])
    .fails()
    .to_string();
    assert!(err.contains(".onnx or .lopper"), "{err}");
    assert!(
        !out.exists(),
        "no output may be written when training cannot start"
    );
}

#[test]
fn the_demo_writes_its_models_and_report() {
    let dir = TempDir::new("demo");
    let out = dir.join("demo");
    let run = lopper([
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "3",
        "--fine-tune-epochs",
        "1",
        "--iters",
        "3",
        "--json",
    ]);
    let report = json(run.ok());
    let models = report["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dense", "sparse-90", "block4x1-90", "channels-50"]);
    let dense = &models[0];
    for m in models {
        assert!(std::path::Path::new(m["file"].as_str().unwrap()).exists());
        assert_eq!(
            m["prediction_mismatches"], 0,
            "runtime and IR disagree: {m:#}"
        );
        assert_eq!(m["top1"], m["top1_ir"]);
        assert!(number(m, &["latency", "p50_ms"]) > 0.0);
    }
    assert!(number(dense, &["top1"]) > 0.7, "{dense:#}");
    // 90% of conv2 and dense pruned: about a tenth of their weights remain.
    let kept = number(&models[1], &["nonzero_params"]) / number(dense, &["nonzero_params"]);
    assert!(kept < 0.15, "sparse model keeps {kept} of the parameters");
    assert!(number(&models[1], &["file_bytes"]) < number(dense, &["file_bytes"]) * 0.6);
    assert!(number(&models[3], &["file_bytes"]) < number(dense, &["file_bytes"]) * 0.5);
    assert!(out.join("report.json").exists());

    let (sparse, dense_file) = (out.join("sparse-90.lopper"), out.join("dense.lopper"));
    let bench = json(
        lopper([
            "bench",
            sparse.to_str().unwrap(),
            "--vs",
            dense_file.to_str().unwrap(),
            "--iters",
            "5",
            "--threads",
            "2",
            "--json",
        ])
        .ok(),
    );
    let ratio = number(&bench, &["p50_ms"]) / number(&bench, &["vs_p50_ms"]);
    assert!((number(&bench, &["ratio"]) - ratio).abs() < 1e-12);
    assert!(number(&bench, &["min_ms"]) <= number(&bench, &["p50_ms"]));
    assert!(number(&bench, &["p50_ms"]) <= number(&bench, &["max_ms"]));
    let text = lopper(["bench", sparse.to_str().unwrap(), "--iters", "3"]);
    assert!(text.ok().contains("p50 ms"), "{}", text.stdout);
    // --profile: one entry per node in execution order, each with its op and a median.
    let args = [
        "bench",
        sparse.to_str().unwrap(),
        "--iters",
        "3",
        "--profile",
    ];
    let profiled = json(lopper(args.into_iter().chain(["--json"])).ok());
    let nodes = profiled["profile"].as_array().expect("a profile array");
    let ops: Vec<&str> = nodes.iter().filter_map(|n| n["op"].as_str()).collect();
    assert!(
        ops.contains(&"Conv2d") && ops.contains(&"MaxPool"),
        "{ops:?}"
    );
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(number(node, &["index"]), i as f64);
        assert!(number(node, &["p50_ms"]) >= 0.0);
    }
    let text = lopper(args.into_iter().chain(["2"]));
    let table = text.ok();
    assert!(
        table.contains("profile of the first model") && table.contains("Conv2d"),
        "{table}"
    );
    let missing = dir.join("missing.lopper");
    let err = lopper(["bench", missing.to_str().unwrap()])
        .fails()
        .to_string();
    assert!(err.contains("missing.lopper"), "{err}");
}

#[test]
fn prune_fine_tunes_on_data_with_every_schedule() {
    let dir = TempDir::new("prune-fine-tune");
    let onnx = dir.join("seed.onnx");
    train_seed(&onnx, &[]);
    let out = dir.join("pruned.lopper");
    for (method, amount, schedule) in [
        ("magnitude", "--sparsity=0.8", "polynomial"),
        ("magnitude", "--sparsity=0.8", "oneshot"),
        ("channel", "--channels=0.5", "iterative:2"),
    ] {
        let run = lopper([
            "prune",
            onnx.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--method",
            method,
            amount,
            "--data",
            "digits",
            "--epochs",
            "1",
            "--schedule",
            schedule,
            "--lr",
            "0.01",
            "--json",
        ]);
        let report = json(run.ok());
        let a = &report["accuracy"];
        let (dense, last, runtime) = (
            number(a, &["dense_top1"]),
            number(a, &["final_top1"]),
            number(a, &["runtime_top1"]),
        );
        assert!(dense > 0.8, "{schedule}: {a:#}");
        assert!(
            last > dense - 0.1,
            "{method} {schedule}: fine-tuned {last} vs dense {dense}"
        );
        assert_eq!(
            last, runtime,
            "{method} {schedule}: the runtime must agree with the IR"
        );
        assert_eq!(a["pruned_top1"].is_null(), schedule != "oneshot");
        if method == "magnitude" {
            let nonzero = number(&report, &["nonzero_after"]) / number(&report, &["params", "1"]);
            assert!(nonzero < 0.35, "{schedule}: {nonzero} of the weights left");
        } else {
            // Half of conv2's filters go (the first layer is protected by default), and with
            // them half of conv2's weights and of the classifier's inputs.
            assert!(number(&report, &["params", "1"]) < number(&report, &["params", "0"]) * 0.55);
        }
    }
    // Layouts timed on this machine hold the same weights: the same predictions.
    let eval_top1 = |file: &std::path::Path| {
        number(
            &json(lopper(["eval", file.to_str().unwrap(), "--data", "digits", "--json"]).ok()),
            &["top1"],
        )
    };
    let (modelled, tuned) = (dir.join("modelled.lopper"), dir.join("tuned.lopper"));
    for (file, extra) in [(&modelled, None), (&tuned, Some("--tune"))] {
        let mut args = vec![
            "prune",
            onnx.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
            "--method",
            "block:4x1",
            "--sparsity",
            "0.9",
        ];
        args.extend(extra);
        lopper(args).ok();
    }
    assert_eq!(eval_top1(&modelled), eval_top1(&tuned));
    let err = lopper([
        "prune",
        onnx.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--method",
        "channel",
        "--channels",
        "0.5",
        "--schedule",
        "polynomial",
    ])
    .fails()
    .to_string();
    assert!(err.contains("--data"), "{err}");
}
