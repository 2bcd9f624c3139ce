//! The ONNX writer checked independently, in onnxruntime: the PP-OCR classifier (real
//! weights) and six `light` architectures (given varied weights, since theirs are
//! constant), converted and compacted, emitted as ONNX, must compute in onnxruntime what
//! their `.lopper` files compute in the runtime; and graphs holding every IR op and
//! activation must compute in onnxruntime what the candle IR computes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use lopper_converter::export::{export, ExportOptions};
use lopper_converter::export_onnx::write_onnx;
use lopper_converter::import::ImportOptions;
use lopper_converter::ir::{eval, Graph, Op, ValueId};
use lopper_converter::npy;
use lopper_converter::pipeline::{convert_file, ConvertOptions, Converted};
use lopper_runtime::graph::{
    Activation, BinaryKind, Conv2d, ConvTranspose2d, CoordinateTransform, Gather, LayerNorm, Lrn,
    NearestMode, Op as Rt, Pad, PadMode, Pool2d, PoolKind, Reduce, ReduceKind, Resize, ResizeMode,
    Slice,
};
use lopper_runtime::{Model, Session};
use lopper_tests::{data_dir, max_diff, values};

/// A fresh folder for one test's files.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lopper-export-onnx-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `model` in onnxruntime on one input and returns its first `outputs` outputs.
fn onnxruntime(model: &Path, input: (&str, &[f32], &[usize]), outputs: usize) -> Vec<Vec<f32>> {
    let python = std::env::var("LOPPER_PYTHON")
        .expect("LOPPER_PYTHON: a Python with onnxruntime; scripts/test-all.sh sets it");
    let dir = model.parent().expect("model folder").join("ort");
    std::fs::create_dir_all(&dir).expect("output folder");
    let (name, data, shape) = input;
    let input_path = dir.join("input.npy");
    std::fs::write(&input_path, npy::encode(data, shape).expect("npy")).expect("write input");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ort_run.py");
    let status = Command::new(python)
        .arg(script)
        .arg(model)
        .arg(&dir)
        .arg(format!("{name}={}", input_path.display()))
        .status()
        .expect("python runs");
    assert!(
        status.success(),
        "onnxruntime failed on {}",
        model.display()
    );
    let results = (0..outputs)
        .map(|i| {
            npy::read(&dir.join(format!("output_{i}.npy")))
                .expect("output")
                .0
        })
        .collect();
    std::fs::remove_dir_all(&dir).expect("clean up");
    results
}

/// Runs `.lopper` bytes in the runtime on its single input.
fn runtime(bytes: Vec<u8>, input: &[f32]) -> Vec<f32> {
    let model = Model::from_vec(bytes).expect("the file loads");
    let mut session = Session::new(&model).expect("plans");
    session.set_input(0, input).expect("input fits");
    session.run();
    session.output(0).expect("output").to_vec()
}

/// A deterministic image-like input in [-1, 1].
fn image(count: usize) -> Vec<f32> {
    (0..count)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect()
}

/// A pseudo-random value in [-1, 1) for `i` (splitmix64).
fn noise(i: u64) -> f32 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Gives every constant weight and bias of the convolutions and linear layers varied
/// values (uniform with He scaling for weights, within 0.1 for biases), so that a wrong
/// axis order or misplaced channel shows in the outputs. The `light` models hold constant
/// weights, whose outputs are uniform whatever the graph does.
fn reweight(graph: &mut Graph) {
    let operands: Vec<(usize, ValueId)> = graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.op,
                Op::Runtime(Rt::Conv2d(_) | Rt::ConvTranspose2d(_) | Rt::Linear)
            )
        })
        .flat_map(|n| n.inputs.iter().copied().enumerate().skip(1))
        .collect();
    for (slot, v) in operands {
        let value = &mut graph.values[v];
        if value.constant.is_none() {
            continue;
        }
        let fan_in = value.shape.iter().skip(1).product::<usize>().max(1);
        let scale = if slot == 1 {
            (6.0 / fan_in as f32).sqrt()
        } else {
            0.1
        };
        let count = value.shape.iter().product::<usize>();
        let values = (0..count as u64)
            .map(|i| noise(v as u64 * 1_000_003 + i) * scale)
            .collect();
        let t = Tensor::from_vec(values, value.shape.as_slice(), &Device::Cpu);
        value.constant = Some(t.expect("tensor"));
    }
}

/// Makes the input of a final Softmax the graph output: with varied weights the logits
/// of deep networks grow large and the probabilities saturate to one-hot, which would
/// hide differences.
fn drop_final_softmax(graph: &mut Graph) {
    let last = graph.nodes.iter().position(|n| {
        n.outputs == [graph.outputs[0]]
            && n.activation == Activation::None
            && matches!(n.op, Op::Runtime(Rt::Softmax { .. }))
    });
    if let Some(k) = last {
        graph.outputs[0] = graph.nodes[k].inputs[0];
        graph.nodes.remove(k);
    }
}

/// Emits `graph` as ONNX and returns onnxruntime's output 0 on `data`, and the emitted
/// file's size.
fn emitted(tag: &str, graph: &Graph, data: &[f32]) -> (Vec<f32>, u64) {
    let &[input] = graph.inputs.as_slice() else {
        panic!("{tag}: expected one input");
    };
    let (name, shape) = (&graph.values[input].name, &graph.values[input].shape);
    let dir = temp_dir(tag);
    let onnx = dir.join(format!("{tag}.onnx"));
    write_onnx(graph, &onnx).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let size = std::fs::metadata(&onnx).expect("emitted").len();
    let out = onnxruntime(&onnx, (name, data, shape), 1).remove(0);
    std::fs::remove_dir_all(&dir).expect("clean up");
    (out, size)
}

fn convert(tag: &str, model: &Path, input_shapes: HashMap<String, Vec<usize>>) -> Converted {
    let options = ConvertOptions {
        import: ImportOptions {
            input_shapes,
            ..ImportOptions::default()
        },
        ..ConvertOptions::default()
    };
    convert_file(model, &options).unwrap_or_else(|e| panic!("{tag}: {e:#}"))
}

#[test]
fn ppocr_classifier_emitted_onnx_matches_the_runtime() {
    let model = data_dir("LOPPER_PPOCR_CLS", "/nonexistent: set LOPPER_PPOCR_CLS");
    let shape = [1, 3, 48, 192];
    let converted = convert(
        "ppocr_cls",
        &model,
        HashMap::from([("x".into(), shape.to_vec())]),
    );
    let data = image(shape.iter().product());
    let (got, size) = emitted("ppocr_cls", &converted.graph, &data);
    let want = runtime(converted.bytes, &data);
    let (diff, _) = max_diff(&got, &want);
    // The original model in onnxruntime, for comparison.
    let dir = temp_dir("ppocr_original");
    let original_path = dir.join("original.onnx");
    std::fs::copy(&model, &original_path).expect("copy");
    let original = onnxruntime(&original_path, ("x", &data, &shape), 1).remove(0);
    std::fs::remove_dir_all(&dir).expect("clean up");
    let (to_original, _) = max_diff(&got, &original);
    println!(
        "PP-OCR cls: onnxruntime on the emitted ONNX vs the runtime: max abs diff {diff:.3e}; \
         vs onnxruntime on the original: {to_original:.3e}; outputs {got:?}; ONNX {} -> {size} \
         bytes",
        std::fs::metadata(&model).expect("model").len()
    );
    assert!(diff < 1e-4, "max abs diff {diff}");
    assert!(
        to_original < 1e-4,
        "max abs diff to the original {to_original}"
    );
}

#[test]
fn light_models_emitted_onnx_matches_the_runtime() {
    let dir = data_dir("LOPPER_ONNX_LIGHT", "/nonexistent: set LOPPER_ONNX_LIGHT");
    // Not AlexNet, VGG19 and ZFNet512: their folded weights make ONNX files of 240 to
    // 570 MB, and they add no op the others lack.
    let names = [
        "densenet121",
        "inception_v1",
        "inception_v2",
        "resnet50",
        "shufflenet",
        "squeezenet",
    ];
    let mut bad = Vec::new();
    println!(
        "\n{:<14} {:>12} {:>12} {:>12}  (varied weights, logits; runtime vs onnxruntime \
         on the emitted ONNX)",
        "model", "max abs diff", "max |logit|", "ONNX bytes"
    );
    for name in names {
        let model = dir.join(format!("light_{name}.onnx"));
        let mut graph = convert(name, &model, HashMap::new()).graph;
        reweight(&mut graph);
        drop_final_softmax(&mut graph);
        let bytes = export(&graph, &ExportOptions::default()).expect("exports");
        let data = image(graph.values[graph.inputs[0]].shape.iter().product());
        let (got, size) = emitted(name, &graph, &data);
        let want = runtime(bytes, &data);
        let (diff, _) = max_diff(&got, &want);
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let spread = want.iter().fold(f32::MIN, |m, &v| m.max(v))
            - want.iter().fold(f32::MAX, |m, &v| m.min(v));
        println!("{name:<14} {diff:>12.3e} {scale:>12.3e} {size:>12}");
        if diff >= 1e-4 * scale.max(1.0) || spread <= 1e-3 * scale {
            bad.push((name, diff, scale));
        }
    }
    assert!(
        bad.is_empty(),
        "onnxruntime differs from the runtime by more than 1e-4 of the output scale, or \
         the output is flat: {bad:?}"
    );
}

/// Deterministic values in [-1, 1) for a tensor of `shape`.
fn data(shape: &[usize], seed: usize) -> Tensor {
    let count = shape.iter().product::<usize>();
    let values: Vec<f32> = (0..count)
        .map(|i| ((i * 37 + seed * 101) % 97) as f32 / 48.5 - 1.0)
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor")
}

/// Builds a test graph with made-up names and deterministic constants.
#[derive(Default)]
struct Build {
    g: Graph,
}

impl Build {
    fn input(&mut self, name: &str, shape: &[usize]) -> ValueId {
        let v = self.g.activation(name, shape.to_vec());
        self.g.inputs.push(v);
        v
    }

    fn constant(&mut self, shape: &[usize]) -> ValueId {
        let seed = self.g.values.len();
        self.g.constant(&format!("c{seed}"), data(shape, seed))
    }

    /// A constant in [0.5, 1.5).
    fn positive(&mut self, shape: &[usize]) -> ValueId {
        let seed = self.g.values.len();
        let t = data(shape, seed).abs().and_then(|t| t.affine(1.0, 0.5));
        self.g.constant(&format!("p{seed}"), t.expect("tensor"))
    }

    fn scalar(&mut self, value: f32) -> ValueId {
        let t = Tensor::new(value, &Device::Cpu).expect("tensor");
        self.g.constant(&format!("s{}", self.g.values.len()), t)
    }

    fn node(&mut self, op: Op, inputs: &[ValueId], shape: &[usize], act: Activation) -> ValueId {
        let k = self.g.nodes.len();
        let y = self.g.activation(&format!("y{k}"), shape.to_vec());
        self.g.push(&format!("n{k}"), op, inputs.to_vec(), vec![y]);
        self.g.nodes[k].activation = act;
        y
    }

    /// Adds a node whose output is a graph output.
    fn out(&mut self, op: Rt, inputs: &[ValueId], shape: &[usize], act: Activation) -> ValueId {
        let y = self.node(Op::Runtime(op), inputs, shape, act);
        self.g.outputs.push(y);
        y
    }

    fn op(&mut self, op: Rt, inputs: &[ValueId], shape: &[usize]) -> ValueId {
        self.node(Op::Runtime(op), inputs, shape, Activation::None)
    }
}

/// Every IR op and activation on one `[1, 4, 6, 6]` input, each on its own output.
fn every_op() -> Graph {
    use Activation as A;
    use CoordinateTransform as T;
    use NearestMode as N;
    let none = A::None;
    let mut b = Build::default();
    let s = [1, 4, 6, 6];
    let x = b.input("x", &s);
    let pos = b.op(Rt::Unary, &[x], &s);
    b.g.nodes[0].activation = A::Sigmoid;
    let four = b.scalar(4.0);
    let wide = b.op(Rt::Binary(BinaryKind::Mul), &[x, four], &s);

    // Convolutions: transposed (H 2 * 5 + 1 + 3 - 1 = 13, W 2 * 5 + 3 - 1 = 12), grouped
    // transposed (5 + 2 = 7), depthwise dilated with asymmetric pads and Relu6, and a
    // plain one with bias and Relu.
    let ct = ConvTranspose2d {
        stride: [2, 2],
        pads: [1, 1, 0, 0],
        output_padding: [1, 0],
        ..ConvTranspose2d::default()
    };
    let (w, bias) = (b.constant(&[4, 2, 3, 3]), b.constant(&[2]));
    let leaky = A::LeakyRelu { alpha: 0.1 };
    b.out(
        Rt::ConvTranspose2d(ct),
        &[x, w, bias],
        &[1, 2, 13, 12],
        leaky,
    );
    let grouped = ConvTranspose2d {
        groups: 2,
        ..ConvTranspose2d::default()
    };
    let w = b.constant(&[4, 1, 2, 2]);
    b.out(Rt::ConvTranspose2d(grouped), &[x, w], &[1, 2, 7, 7], none);
    let dw = Conv2d {
        dilation: [2, 2],
        pads: [2, 1, 2, 1],
        groups: 4,
        ..Conv2d::default()
    };
    let w = b.constant(&[4, 1, 3, 3]);
    let relu6 = A::Clip { min: 0.0, max: 6.0 };
    b.out(Rt::Conv2d(dw), &[wide, w], &[1, 4, 6, 4], relu6);
    let conv = Conv2d {
        stride: [2, 1],
        pads: [1, 0, 2, 1],
        ..Conv2d::default()
    };
    let (w, bias) = (b.constant(&[3, 4, 3, 3]), b.constant(&[3]));
    // H (6 + 3 - 3) / 2 + 1 = 4, W 6 + 1 - 3 + 1 = 5.
    b.out(Rt::Conv2d(conv), &[x, w, bias], &[1, 3, 4, 5], A::Relu);

    // Resizes with scales ONNX floors to the output size, and 11 -> 13, which only
    // `sizes` expresses.
    let resize = |mode, coordinate_transform, nearest_mode, scales| {
        Rt::Resize(Resize {
            mode,
            coordinate_transform,
            nearest_mode,
            scales,
        })
    };
    use ResizeMode::{Linear, Nearest};
    let cases = [
        (Nearest, T::Asymmetric, N::Floor, [2.0, 2.0], [12, 12]),
        (
            Linear,
            T::HalfPixel,
            N::RoundPreferFloor,
            [1.5, 2.0],
            [9, 12],
        ),
        (
            Linear,
            T::AlignCorners,
            N::Floor,
            [8.0 / 6.0, 8.0 / 6.0],
            [8, 8],
        ),
        (
            Nearest,
            T::TfHalfPixelForNearest,
            N::RoundPreferCeil,
            [0.5, 0.5],
            [3, 3],
        ),
        (Nearest, T::PytorchHalfPixel, N::Ceil, [2.0, 1.5], [12, 9]),
    ];
    for (mode, transform, nearest, scales, [h, w]) in cases {
        b.out(
            resize(mode, transform, nearest, scales),
            &[x],
            &[1, 4, h, w],
            A::Sigmoid,
        );
    }
    let edge = Pad {
        mode: PadMode::Edge,
        begin: vec![0, 0, 2, 3],
        end: vec![0, 0, 3, 2],
        value: 0.0,
    };
    let x11 = b.op(Rt::Pad(edge), &[x], &[1, 4, 11, 11]);
    let op = resize(Linear, T::HalfPixel, N::Floor, [13.0 / 11.0; 2]);
    b.out(op, &[x11], &[1, 4, 13, 13], none);

    let lrn = Lrn {
        size: 3,
        alpha: 0.5,
        beta: 0.75,
        bias: 1.0,
    };
    b.out(Rt::Lrn(lrn), &[x], &s, A::Tanh);
    let reductions = [
        (ReduceKind::Sum, vec![2, 3], true, vec![1, 4, 1, 1]),
        (ReduceKind::Mean, vec![1], false, vec![1, 6, 6]),
        (ReduceKind::Max, vec![3], true, vec![1, 4, 6, 1]),
        (ReduceKind::Min, vec![0, 2], false, vec![4, 6]),
        (ReduceKind::Sum, vec![], true, s.to_vec()),
    ];
    for (kind, axes, keepdims, shape) in reductions {
        let r = Reduce {
            kind,
            axes,
            keepdims,
        };
        b.out(Rt::Reduce(r), &[x], &shape, none);
    }
    // A backward slice through index 0 (end -1), and open ends.
    let back = Slice {
        starts: vec![0, 3, 1, 5],
        ends: vec![1, -1, 6, -1],
        steps: vec![1, -1, 2, -2],
    };
    b.out(Rt::Slice(back), &[x], &[1, 4, 3, 3], A::Abs);
    let open = Slice {
        starts: vec![0, 1, 0, 0],
        ends: vec![i64::MAX, 3, i64::MAX, 4],
        steps: vec![1; 4],
    };
    b.out(Rt::Slice(open), &[x], &[1, 2, 6, 4], none);
    let matrix = Gather {
        axis: 1,
        indices: vec![2, 0, 1, 1],
        indices_shape: vec![2, 2],
    };
    b.out(Rt::Gather(matrix), &[x], &[1, 2, 2, 6, 6], none);
    let single = Gather {
        axis: 3,
        indices: vec![4],
        indices_shape: vec![],
    };
    b.out(Rt::Gather(single), &[x], &[1, 4, 6], none);
    for (mode, value) in [(PadMode::Reflect, 0.0), (PadMode::Constant, 0.5)] {
        let p = Pad {
            mode,
            begin: vec![0, 0, 1, 2],
            end: vec![0, 0, 2, 1],
            value,
        };
        b.out(Rt::Pad(p), &[x], &[1, 4, 9, 9], none);
    }

    let params = [
        b.constant(&[4]),
        b.constant(&[4]),
        b.constant(&[4]),
        b.positive(&[4]),
    ];
    let mut inputs = vec![x];
    inputs.extend(params);
    let bn = Op::BatchNorm { epsilon: 1e-3 };
    let y = b.node(bn, &inputs, &s, A::Elu { alpha: 0.7 });
    b.g.outputs.push(y);
    b.out(
        Rt::Transpose {
            perm: vec![0, 2, 3, 1],
        },
        &[x],
        &[1, 6, 6, 4],
        none,
    );

    let (c411, c6, p116) = (
        b.constant(&[4, 1, 1]),
        b.constant(&[6]),
        b.positive(&[1, 1, 6]),
    );
    let (exponent, c1416, quarter) = (b.scalar(2.5), b.constant(&[1, 4, 1, 6]), b.scalar(0.25));
    let binaries = [
        (BinaryKind::Add, x, c411),
        (BinaryKind::Sub, c6, x),
        (BinaryKind::Mul, x, pos),
        (BinaryKind::Div, x, p116),
        (BinaryKind::Pow, pos, exponent),
        (BinaryKind::Max, x, c1416),
        (BinaryKind::Min, x, quarter),
    ];
    for (kind, l, r) in binaries {
        b.out(Rt::Binary(kind), &[l, r], &s, none);
    }
    let activations = [
        (x, A::None),
        (x, A::Relu),
        (
            x,
            A::Clip {
                min: -0.5,
                max: 0.7,
            },
        ),
        (
            x,
            A::HardSigmoid {
                alpha: 0.3,
                beta: 0.4,
            },
        ),
        (wide, A::HardSwish),
        (x, A::LeakyRelu { alpha: 0.2 }),
        (pos, A::Sqrt),
        (x, A::Exp),
        (x, A::Neg),
        (x, A::Erf),
        (wide, A::Gelu),
        (pos, A::Reciprocal),
        (wide, A::Softplus),
        (wide, A::Elu { alpha: 1.3 }),
    ];
    for (input, act) in activations {
        b.out(Rt::Unary, &[input], &s, act);
    }

    // Pools: 3x3 / 2 with padding counted; 2x2 / 2 in ceil mode whose last window would
    // start in the padding (so it is dropped, as onnxruntime's kernel does; ONNX shape
    // inference keeps it, so onnxruntime warns that the declared output shape differs from
    // the inferred one); 3x3 / 2 in ceil mode with a partial last window; dilated max in
    // ceil mode; global average.
    let pool = |kind, kernel, stride, dilation, pads, ceil_mode, count_include_pad| {
        Rt::Pool2d(Pool2d {
            kind,
            kernel,
            stride,
            dilation,
            pads,
            ceil_mode,
            count_include_pad,
        })
    };
    let avg = PoolKind::Average;
    b.out(
        pool(avg, [3, 3], [2, 2], [1, 1], [1; 4], false, true),
        &[x],
        &[1, 4, 3, 3],
        none,
    );
    let op = pool(avg, [2, 2], [2, 2], [1, 1], [0, 0, 1, 1], true, false);
    b.out(op, &[x], &[1, 4, 3, 3], none);
    // (6 - 3) / 2 rounded up, + 1 = 3 windows, the last covering rows 4 and 5 only.
    let op = pool(PoolKind::Max, [3, 3], [2, 2], [1, 1], [0; 4], true, false);
    b.out(op, &[x], &[1, 4, 3, 3], none);
    let op = pool(avg, [3, 3], [2, 2], [1, 1], [0; 4], true, false);
    b.out(op, &[x], &[1, 4, 3, 3], none);
    let op = pool(PoolKind::Max, [2, 2], [1, 2], [2, 1], [0; 4], true, false);
    b.out(op, &[x], &[1, 4, 4, 3], none);
    b.out(Rt::GlobalAveragePool, &[x], &[1, 4, 1, 1], none);

    b.out(Rt::MatMul, &[x, x], &s, none);
    // Linear on 4-D input with a constant weight (MatMul + Add), on 2-D input (Gemm) with
    // constant and run-time weights, and on 4-D input with a run-time weight.
    let (w, bias) = (b.constant(&[5, 6]), b.constant(&[5]));
    b.out(Rt::Linear, &[x, w, bias], &[1, 4, 6, 5], none);
    b.out(Rt::Linear, &[x, w], &[1, 4, 6, 5], none);
    let r = b.op(Rt::Reshape, &[x], &[24, 6]);
    b.out(Rt::Linear, &[r, w, bias], &[24, 5], none);
    b.out(Rt::Linear, &[r, r], &[24, 24], none);
    b.out(Rt::Linear, &[x, r], &[1, 4, 6, 24], none);
    b.out(Rt::Softmax { axis: 2 }, &[x], &s, none);
    b.out(Rt::Concat { axis: 3 }, &[x, pos], &[1, 4, 6, 12], none);
    b.g
}

/// Writes `g` (one `[1, 4, 6, 6]` input "x") as ONNX, runs it in onnxruntime and checks
/// every output against the candle IR (atol and rtol 1e-5) and prints the largest difference.
fn matches_onnxruntime(tag: &str, g: &Graph) {
    let input = data(&[1, 4, 6, 6], 0);
    let want = eval(g, std::slice::from_ref(&input)).expect("the IR runs");
    let dir = temp_dir(tag);
    let onnx = dir.join(format!("{tag}.onnx"));
    write_onnx(g, &onnx).expect("writes");
    let model = lopper_converter::onnx::load(&onnx).expect("reads back");
    let x = values(&input).expect("f32");
    let got = onnxruntime(&onnx, ("x", &x, &[1, 4, 6, 6]), want.len());
    std::fs::remove_dir_all(&dir).expect("clean up");
    let mut worst = (0.0f32, String::new());
    let mut bad = Vec::new();
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        let node = g
            .nodes
            .iter()
            .find(|n| n.outputs == [g.outputs[i]])
            .expect("every output has a producer");
        let what = format!("{} ({}, {:?})", node.name, node.op.name(), node.activation);
        let want = values(want).expect("f32");
        assert_eq!(got.len(), want.len(), "{what}: output sizes differ");
        let (abs, _) = max_diff(got, &want);
        if !lopper_tests::close(got, &want, 1e-5, 1e-5) {
            bad.push(format!("{what}: {abs:.3e}"));
        }
        if abs > worst.0 {
            worst = (abs, what);
        }
    }
    println!(
        "{tag} (opset {}): {} outputs, largest onnxruntime vs IR difference {:.3e} at {}",
        model.opset_import[0].version(),
        want.len(),
        worst.0,
        worst.1
    );
    assert!(bad.is_empty(), "{tag}: out of tolerance: {bad:?}");
}

#[test]
fn every_op_matches_onnxruntime() {
    matches_onnxruntime("every_op", &every_op());
}

#[test]
fn layer_norm_at_opset_17_matches_onnxruntime() {
    let mut b = Build::default();
    let s = [1, 4, 6, 6];
    let x = b.input("x", &s);
    let (scale, shift) = (b.constant(&[6, 6]), b.constant(&[6, 6]));
    let ln = LayerNorm {
        axis: 2,
        epsilon: 1e-5,
    };
    b.out(Rt::LayerNorm(ln), &[x, scale, shift], &s, Activation::Gelu);
    let scale = b.constant(&[6]);
    let ln = LayerNorm {
        axis: 3,
        epsilon: 1e-3,
    };
    let y = b.op(Rt::LayerNorm(ln), &[x, scale], &s);
    let four = b.scalar(4.0);
    let wide = b.op(Rt::Binary(BinaryKind::Mul), &[y, four], &s);
    // HardSwish is an ONNX op from opset 14, so here it is one node.
    b.out(Rt::Unary, &[wide], &s, Activation::HardSwish);
    matches_onnxruntime("layer_norm", &b.g);
}
