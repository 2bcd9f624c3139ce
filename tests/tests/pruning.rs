//! Pruning real models: 50% of the channels of four `light` architectures and the PP-OCR
//! classifier (they must run in the runtime with consistent shapes, shrink, and the emitted
//! ONNX must compute what the `.lopper` file computes, in onnxruntime), and unstructured
//! 90%, 4x1-block 90% and 2:4 on the classifier, checked against the candle IR.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use lopper_converter::export::ExportOptions;
use lopper_converter::import::ImportOptions;
use lopper_converter::ir::eval;
use lopper_converter::pipeline::{prune_file, ConvertOptions, Pruned};
use lopper_converter::prune::criteria::Criterion;
use lopper_converter::prune::layout::Objective;
use lopper_converter::prune::mask::Granularity;
use lopper_converter::prune::request::{Method, PruneRequest};
use lopper_runtime::{Model, Session};
use lopper_tests::{data_dir, max_diff, onnxruntime};

fn request(method: Method, amount: f32) -> PruneRequest {
    PruneRequest {
        method,
        criterion: Criterion::L1,
        amount,
        global: false,
        round_to: 1,
        exclude: Vec::new(),
        overrides: HashMap::new(),
        protect_defaults: true,
    }
}

fn options(input_shapes: HashMap<String, Vec<usize>>) -> ConvertOptions {
    ConvertOptions {
        import: ImportOptions {
            input_shapes,
            ..ImportOptions::default()
        },
        export: ExportOptions::default(),
    }
}

/// Runs a `.lopper` file's bytes on `input`.
fn run(bytes: &[u8], input: &[f32]) -> Vec<f32> {
    let model = Model::from_vec(bytes.to_vec()).expect("the pruned file loads");
    let mut session = Session::new(&model).expect("plans");
    session.set_input(0, input).expect("input fits");
    session.run();
    session.output(0).expect("output").to_vec()
}

fn input_for(bytes: &[u8]) -> (String, Vec<usize>, Vec<f32>) {
    let model = Model::from_vec(bytes.to_vec()).unwrap();
    let info = model.inputs()[0];
    let n: usize = info.shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    (info.name.to_string(), info.shape.to_vec(), data)
}

/// Prunes 50% of the channels, checks shapes run, the file shrinks, and onnxruntime on
/// the emitted ONNX agrees with the runtime.
fn half_channels(name: &str, path: &Path, shapes: HashMap<String, Vec<usize>>) -> Pruned {
    let pruned = prune_file(
        path,
        &options(shapes),
        &request(Method::Channels, 0.5),
        "test".into(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let r = &pruned.report;
    assert!(
        r.file_bytes[1] < r.file_bytes[0] * 3 / 4,
        "{name}: {:?}",
        r.file_bytes
    );
    let (input_name, shape, input) = input_for(&pruned.bytes);
    let got = run(&pruned.bytes, &input);
    let dir = std::env::temp_dir().join(format!("lopper-prune-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let onnx = dir.join(format!("{name}.onnx"));
    lopper_converter::export_onnx::write_onnx(&pruned.graph, &onnx).expect("emits ONNX");
    let onnx_bytes = std::fs::metadata(&onnx).unwrap().len();
    let want = onnxruntime(&onnx, &input_name, &input, &shape);
    std::fs::remove_dir_all(&dir).unwrap();
    let (abs, _) = max_diff(&got, &want);
    println!(
        "{name:<14} params {:>9} > {:>9} ({:5.1}%)  MACs {:>6.1}M > {:>6.1}M ({:5.1}%)  file {:>10} > {:>10} bytes ({:5.1}%)  ONNX {onnx_bytes} bytes  onnxruntime vs runtime {abs:.2e}",
        r.params[0],
        r.params[1],
        100.0 * r.params[1] as f64 / r.params[0] as f64,
        r.macs[0] as f64 / 1e6,
        r.macs[1] as f64 / 1e6,
        100.0 * r.macs[1] as f64 / r.macs[0] as f64,
        r.file_bytes[0],
        r.file_bytes[1],
        100.0 * r.file_bytes[1] as f64 / r.file_bytes[0] as f64,
    );
    assert!(abs < 1e-4, "{name}: onnxruntime differs by {abs}");
    pruned
}

fn ppocr() -> (PathBuf, HashMap<String, Vec<usize>>) {
    let path = data_dir("LOPPER_PPOCR_CLS", "/nonexistent: set LOPPER_PPOCR_CLS");
    (
        path,
        HashMap::from([("x".to_string(), vec![1, 3, 48, 192])]),
    )
}

#[test]
fn half_of_the_channels_of_real_models() {
    let light = data_dir("LOPPER_ONNX_LIGHT", "/nonexistent: set LOPPER_ONNX_LIGHT");
    for name in ["resnet50", "densenet121", "inception_v1", "squeezenet"] {
        half_channels(
            name,
            &light.join(format!("light_{name}.onnx")),
            HashMap::new(),
        );
    }
    let (path, shapes) = ppocr();
    half_channels("ppocr_cls", &path, shapes);
}

#[test]
fn sparse_weights_on_the_classifier_match_the_ir() {
    let (path, shapes) = ppocr();
    let cases = [
        (
            "unstructured 90%",
            Method::Weights(Granularity::Unstructured),
            0.9,
        ),
        (
            "4x1 blocks 90%",
            Method::Weights(Granularity::Block { rows: 4, cols: 1 }),
            0.9,
        ),
        ("2:4", Method::Weights(Granularity::NM { n: 2, m: 4 }), 0.5),
    ];
    let objectives = [("speed", Objective::Speed), ("size", Objective::Size)];
    for ((label, method, amount), (goal, objective)) in cases
        .into_iter()
        .flat_map(|c| objectives.into_iter().map(move |o| (c, o)))
    {
        let mut options = options(shapes.clone());
        options.export.objective = objective;
        let label = format!("{label} ({goal})");
        let pruned = prune_file(&path, &options, &request(method, amount), label.clone())
            .unwrap_or_else(|e| panic!("{label}: {e:#}"));
        let (_, shape, input) = input_for(&pruned.bytes);
        let got = run(&pruned.bytes, &input);
        let x = Tensor::from_vec(input, shape, &Device::Cpu).unwrap();
        let want: Vec<f32> = eval(&pruned.graph, &[x]).unwrap()[0]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (abs, _) = max_diff(&got, &want);
        let r = &pruned.report;
        let layouts: Vec<&str> = r.layers.iter().map(|l| l.layout.as_str()).collect();
        println!(
            "{label:<25} nonzero {:>7} of {:>7} params  file {:>7} > {:>7} bytes ({:5.1}%)  runtime vs IR {abs:.2e}  layouts: {} csr, {} bsr, {} 2:4",
            r.nonzero_after,
            r.params[1],
            r.file_bytes[0],
            r.file_bytes[1],
            100.0 * r.file_bytes[1] as f64 / r.file_bytes[0] as f64,
            layouts.iter().filter(|l| l.starts_with("csr")).count(),
            layouts.iter().filter(|l| l.starts_with("bsr")).count(),
            layouts.iter().filter(|l| l.starts_with("2:4")).count(),
        );
        assert!(abs < 1e-4, "{label}: runtime differs from the IR by {abs}");
        assert!(r.nonzero_after < r.params[1]);
    }
}

/// Zeroing the chosen channels and removing them compute the same outputs on real graphs:
/// residual (ResNet50), concat (SqueezeNet), flatten -> linear (AlexNet), depthwise + SE
/// (the PP-OCR classifier). Both variants are compacted, exported and run in the runtime.
#[test]
fn structural_pruning_is_exact_on_real_graphs() {
    use lopper_converter::compact::compact;
    use lopper_converter::export::export;
    use lopper_converter::prune::depgraph::build;
    use lopper_converter::prune::structural::{apply, select, ChannelRequest, Mode};

    let light = data_dir("LOPPER_ONNX_LIGHT", "/nonexistent: set LOPPER_ONNX_LIGHT");
    let (ppocr_path, ppocr_shapes) = ppocr();
    let models = [
        (
            "resnet50",
            light.join("light_resnet50.onnx"),
            HashMap::new(),
        ),
        (
            "squeezenet",
            light.join("light_squeezenet.onnx"),
            HashMap::new(),
        ),
        (
            "bvlc_alexnet",
            light.join("light_bvlc_alexnet.onnx"),
            HashMap::new(),
        ),
        ("ppocr_cls", ppocr_path, ppocr_shapes),
    ];
    for (name, path, shapes) in models {
        let model = lopper_converter::onnx::load(&path).unwrap();
        let graph = lopper_converter::import::import(
            &model,
            &ImportOptions {
                input_shapes: shapes,
                ..ImportOptions::default()
            },
        )
        .unwrap();
        let dep = build(&graph);
        // Scores that differ between channels and layers, so each group loses different ones.
        let scores: Vec<f32> = (0..dep.classes.len())
            .map(|c| ((c * 7919) % 1009) as f32)
            .collect();
        let request = ChannelRequest {
            ratio: 0.5,
            global: false,
            round_to: 1,
            protect: Vec::new(),
        };
        let (remove, _) = select(&graph, &dep, &scores, &request).unwrap();
        let removed_count = remove.iter().filter(|&&r| r).count();
        assert!(removed_count > 0, "{name}: nothing to prune");
        let mut outputs = Vec::new();
        for mode in [Mode::Zero, Mode::Remove] {
            let mut g = graph.clone();
            apply(&mut g, &dep, &remove, mode).unwrap();
            compact(&mut g).unwrap();
            let bytes = export(&g, &ExportOptions::default()).unwrap();
            let (_, _, input) = input_for(&bytes);
            outputs.push((bytes.len(), run(&bytes, &input)));
        }
        // The pruning is real: the pruned model computes something else than the original.
        let mut original = graph.clone();
        compact(&mut original).unwrap();
        let bytes = export(&original, &ExportOptions::default()).unwrap();
        let (_, _, input) = input_for(&bytes);
        let (changed, _) = max_diff(&run(&bytes, &input), &outputs[1].1);
        let (abs, rel) = max_diff(&outputs[0].1, &outputs[1].1);
        println!("{name:<13} {removed_count:>5} channels removed: zeroed vs removed max abs {abs:.2e}, rel {rel:.2e}; vs unpruned {changed:.2e}; file {} > {} bytes", outputs[0].0, outputs[1].0);
        assert!(abs < 1e-4, "{name}: removing differs from zeroing by {abs}");
        assert!(outputs[1].0 < outputs[0].0);
        if name == "ppocr_cls" {
            assert!(changed > 1e-6, "pruning half the channels changed nothing");
        }
    }
}
