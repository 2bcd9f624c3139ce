//! Whole-graph tests: the executor against the runtime (a second, independent
//! implementation, through an exported file), gradients against finite differences, and
//! errors for malformed graphs.

use candle_core::{Device, Tensor, Var};
use lopper_runtime::graph::{
    Activation, BinaryKind, Conv2d, ConvTranspose2d, CoordinateTransform, Gather, LayerNorm, Lrn,
    NearestMode, Op as Rt, Pad, PadMode, Pool2d, PoolKind, Reduce, ReduceKind, Resize, ResizeMode,
    Slice,
};
use lopper_runtime::{Model, Session};

use super::{eval, EvalError};
use crate::export::{export, ExportOptions};
use crate::ir::{Graph, Op, ValueId};

/// Deterministic values in [-1, 1) from a small linear congruential generator.
fn noise(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(data: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// A constant of `shape` filled with noise.
fn weight(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> ValueId {
    let len = shape.iter().product();
    g.constant(name, tensor(noise(seed, len), shape))
}

/// Appends `op` reading `inputs`, writing a new value of `shape`, with `act` fused.
fn node(
    g: &mut Graph,
    name: &str,
    op: Rt,
    inputs: Vec<ValueId>,
    shape: &[usize],
    act: Activation,
) -> ValueId {
    let out = g.activation(name, shape.to_vec());
    g.push(name, Op::Runtime(op), inputs, vec![out]);
    g.nodes.last_mut().unwrap().activation = act;
    out
}

fn pool(kind: PoolKind, kernel: usize, stride: usize, pads: [usize; 4]) -> Pool2d {
    Pool2d {
        kind,
        kernel: [kernel; 2],
        stride: [stride; 2],
        dilation: [1, 1],
        pads,
        ceil_mode: true,
        count_include_pad: false,
    }
}

/// Conv (asymmetric pads, stride, groups, fused ReLU) -> overlapping max pool (ceil mode)
/// and average pool (ceil mode, padding excluded) -> concat -> reshape -> linear ->
/// softmax.
fn classifier() -> Graph {
    let mut g = Graph::default();
    let x = g.activation("x", vec![1, 4, 7, 8]);
    g.inputs.push(x);
    let w = weight(&mut g, "conv.w", &[6, 2, 3, 3], 1);
    let b = weight(&mut g, "conv.b", &[6], 2);
    let conv = Conv2d {
        stride: [2, 2],
        dilation: [1, 1],
        pads: [1, 0, 2, 1],
        groups: 2,
    };
    // Height (7 + 1 + 2 - 3) / 2 + 1 = 4, width (8 + 0 + 1 - 3) / 2 + 1 = 4.
    let c = node(
        &mut g,
        "conv",
        Rt::Conv2d(conv),
        vec![x, w, b],
        &[1, 6, 4, 4],
        Activation::Relu,
    );
    // Overlapping 3x3 windows: padded 6, ceil((6 - 3) / 2) + 1 = 3, the last starting on
    // real row 3.
    let max = pool(PoolKind::Max, 3, 2, [1, 1, 1, 1]);
    let m = node(
        &mut g,
        "max",
        Rt::Pool2d(max),
        vec![c],
        &[1, 6, 3, 3],
        Activation::None,
    );
    let avg = pool(PoolKind::Average, 2, 2, [1, 1, 0, 0]);
    let a = node(
        &mut g,
        "avg",
        Rt::Pool2d(avg),
        vec![c],
        &[1, 6, 3, 3],
        Activation::Tanh,
    );
    let cat = node(
        &mut g,
        "cat",
        Rt::Concat { axis: 1 },
        vec![m, a],
        &[1, 12, 3, 3],
        Activation::None,
    );
    let flat = node(
        &mut g,
        "flat",
        Rt::Reshape,
        vec![cat],
        &[1, 108],
        Activation::None,
    );
    let fw = weight(&mut g, "fc.w", &[5, 108], 3);
    let fb = weight(&mut g, "fc.b", &[5], 4);
    let fc = node(
        &mut g,
        "fc",
        Rt::Linear,
        vec![flat, fw, fb],
        &[1, 5],
        Activation::None,
    );
    let y = node(
        &mut g,
        "softmax",
        Rt::Softmax { axis: 1 },
        vec![fc],
        &[1, 5],
        Activation::None,
    );
    g.outputs.push(y);
    g
}

/// Reflect pad -> transposed conv (stride, pads, output padding, groups) -> bilinear
/// resize -> LRN -> layer norm -> max with a broadcast constant -> slice -> gather ->
/// pow -> mean over axes -> global average pool of a second branch, both outputs.
fn decoder() -> Graph {
    let mut g = Graph::default();
    let x = g.activation("x", vec![1, 4, 3, 4]);
    g.inputs.push(x);
    let pad = Pad {
        mode: PadMode::Reflect,
        begin: vec![0, 0, 1, 2],
        end: vec![0, 0, 2, 1],
        value: 0.0,
    };
    let p = node(
        &mut g,
        "pad",
        Rt::Pad(pad),
        vec![x],
        &[1, 4, 6, 7],
        Activation::None,
    );
    let w = weight(&mut g, "up.w", &[4, 3, 3, 2], 5);
    let b = weight(&mut g, "up.b", &[6], 6);
    let up = ConvTranspose2d {
        stride: [2, 3],
        dilation: [1, 2],
        pads: [1, 0, 0, 2],
        output_padding: [1, 1],
        groups: 2,
    };
    // Height 2 * 5 + 1 + 2 + 1 - 1 - 0 = 13, width 3 * 6 + 1 + 2 * 1 + 1 - 0 - 2 = 20.
    let u = node(
        &mut g,
        "up",
        Rt::ConvTranspose2d(up),
        vec![p, w, b],
        &[1, 6, 13, 20],
        Activation::LeakyRelu { alpha: 0.1 },
    );
    let resize = Resize {
        mode: ResizeMode::Linear,
        coordinate_transform: CoordinateTransform::HalfPixel,
        nearest_mode: NearestMode::RoundPreferFloor,
        scales: [0.5, 0.4],
    };
    let r = node(
        &mut g,
        "resize",
        Rt::Resize(resize),
        vec![u],
        &[1, 6, 6, 8],
        Activation::None,
    );
    let lrn = Lrn {
        size: 3,
        alpha: 0.5,
        beta: 0.75,
        bias: 1.0,
    };
    let l = node(
        &mut g,
        "lrn",
        Rt::Lrn(lrn),
        vec![r],
        &[1, 6, 6, 8],
        Activation::None,
    );
    let scale = weight(&mut g, "ln.scale", &[6, 8], 7);
    let shift = weight(&mut g, "ln.bias", &[6, 8], 8);
    let ln = LayerNorm {
        axis: 2,
        epsilon: 1e-5,
    };
    let n = node(
        &mut g,
        "ln",
        Rt::LayerNorm(ln),
        vec![l, scale, shift],
        &[1, 6, 6, 8],
        Activation::Gelu,
    );
    let floor = weight(&mut g, "floor", &[6, 1, 1], 9);
    let mx = node(
        &mut g,
        "max",
        Rt::Binary(BinaryKind::Max),
        vec![n, floor],
        &[1, 6, 6, 8],
        Activation::None,
    );
    let slice = Slice {
        starts: vec![0, 5, 1, 0],
        ends: vec![1, -10, 6, 8],
        steps: vec![1, -2, 2, 1],
    };
    let s = node(
        &mut g,
        "slice",
        Rt::Slice(slice),
        vec![mx],
        &[1, 3, 3, 8],
        Activation::None,
    );
    let gather = Gather {
        axis: 3,
        indices: vec![7, 0, 3, 3],
        indices_shape: vec![2, 2],
    };
    let ga = node(
        &mut g,
        "gather",
        Rt::Gather(gather),
        vec![s],
        &[1, 3, 3, 2, 2],
        Activation::Abs,
    );
    let two = g.constant("two", tensor(vec![2.0], &[1]));
    let sq = node(
        &mut g,
        "square",
        Rt::Binary(BinaryKind::Pow),
        vec![ga, two],
        &[1, 3, 3, 2, 2],
        Activation::Sqrt,
    );
    let mean = Reduce {
        kind: ReduceKind::Mean,
        axes: vec![4, 2],
        keepdims: false,
    };
    let y1 = node(
        &mut g,
        "mean",
        Rt::Reduce(mean),
        vec![sq],
        &[1, 3, 2],
        Activation::Softplus,
    );
    let gap = node(
        &mut g,
        "gap",
        Rt::GlobalAveragePool,
        vec![r],
        &[1, 6, 1, 1],
        Activation::Elu { alpha: 0.5 },
    );
    g.outputs.extend([y1, gap]);
    g
}

/// Transpose -> batched matmul -> scale and shift -> softmax -> matmul -> standalone
/// activation -> min with a broadcast constant -> edge and constant padding -> reductions.
fn attention() -> Graph {
    let mut g = Graph::default();
    let x = g.activation("x", vec![2, 3, 4]);
    g.inputs.push(x);
    let none = Activation::None;
    let t = node(
        &mut g,
        "t",
        Rt::Transpose {
            perm: vec![0, 2, 1],
        },
        vec![x],
        &[2, 4, 3],
        none,
    );
    let s = node(&mut g, "scores", Rt::MatMul, vec![x, t], &[2, 3, 3], none);
    let d = g.constant("d", tensor(vec![2.0], &[1]));
    let s = node(
        &mut g,
        "scale",
        Rt::Binary(BinaryKind::Div),
        vec![s, d],
        &[2, 3, 3],
        none,
    );
    let shift = weight(&mut g, "shift", &[3], 20);
    let s = node(
        &mut g,
        "shift",
        Rt::Binary(BinaryKind::Sub),
        vec![s, shift],
        &[2, 3, 3],
        none,
    );
    let p = node(
        &mut g,
        "softmax",
        Rt::Softmax { axis: 2 },
        vec![s],
        &[2, 3, 3],
        none,
    );
    let v = node(&mut g, "mix", Rt::MatMul, vec![p, x], &[2, 3, 4], none);
    let u = node(
        &mut g,
        "act",
        Rt::Unary,
        vec![v],
        &[2, 3, 4],
        Activation::HardSwish,
    );
    let cap = g.constant("cap", tensor(vec![0.3, 2.0, 0.05, 1.0], &[1, 1, 4]));
    let m = node(
        &mut g,
        "min",
        Rt::Binary(BinaryKind::Min),
        vec![u, cap],
        &[2, 3, 4],
        none,
    );
    let edge = Pad {
        mode: PadMode::Edge,
        begin: vec![0, 2, 0],
        end: vec![0, 0, 1],
        value: 0.0,
    };
    let e = node(&mut g, "edge", Rt::Pad(edge), vec![m], &[2, 5, 5], none);
    let constant = Pad {
        mode: PadMode::Constant,
        begin: vec![0, 1, 0],
        end: vec![1, 0, 0],
        value: -5.0,
    };
    let c = node(
        &mut g,
        "const",
        Rt::Pad(constant),
        vec![e],
        &[3, 6, 5],
        Activation::Sigmoid,
    );
    let reduce = |kind, axes: Vec<usize>, keepdims| {
        Rt::Reduce(Reduce {
            kind,
            axes,
            keepdims,
        })
    };
    let r1 = node(
        &mut g,
        "rmax",
        reduce(ReduceKind::Max, vec![1], true),
        vec![c],
        &[3, 1, 5],
        none,
    );
    let r2 = node(
        &mut g,
        "rmin",
        reduce(ReduceKind::Min, vec![2], false),
        vec![c],
        &[3, 6],
        none,
    );
    let r3 = node(
        &mut g,
        "rsum",
        reduce(ReduceKind::Sum, vec![0, 2], false),
        vec![c],
        &[6],
        none,
    );
    g.outputs.extend([r1, r2, r3]);
    g
}

/// Runs `graph` on `input` with both the candle executor and the runtime (through an
/// exported file) and checks every output agrees within `1e-5`.
fn agree_with_runtime(graph: &Graph, input: Vec<f32>) {
    let shape = graph.values[graph.inputs[0]].shape.clone();
    let ours = eval(graph, &[tensor(input.clone(), &shape)]).unwrap();
    let bytes = export(graph, &ExportOptions::default()).unwrap();
    let model = Model::from_vec(bytes).unwrap();
    let mut session = Session::new(&model).unwrap();
    session.set_input(0, &input).unwrap();
    session.run();
    for (i, ours) in ours.iter().enumerate() {
        let ours: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
        let theirs = session.output(i).unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(theirs) {
            assert!(
                (a - b).abs() <= 1e-5,
                "output {i}: {ours:?} vs runtime {theirs:?}"
            );
        }
    }
}

#[test]
fn classifier_matches_runtime() {
    agree_with_runtime(&classifier(), noise(10, 4 * 7 * 8));
    agree_with_runtime(&classifier(), noise(11, 4 * 7 * 8));
}

#[test]
fn decoder_matches_runtime() {
    agree_with_runtime(&decoder(), noise(12, 4 * 3 * 4));
}

#[test]
fn attention_matches_runtime() {
    agree_with_runtime(&attention(), noise(16, 24));
}

#[test]
fn softmax_output_sums_to_one() {
    let g = classifier();
    let y = eval(&g, &[tensor(noise(13, 4 * 7 * 8), &[1, 4, 7, 8])]).unwrap();
    let sum: f32 = y[0].sum_all().unwrap().to_scalar().unwrap();
    assert!((sum - 1.0).abs() < 1e-6);
}

/// Sum of the graph's first output weighted by fixed noise: a scalar loss.
fn loss(graph: &Graph, input: &Tensor) -> Tensor {
    let y = &eval(graph, std::slice::from_ref(input)).unwrap()[0];
    let w = tensor(noise(99, y.elem_count()), y.dims());
    y.mul(&w).unwrap().sum_all().unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    // The conv weight becomes a Var inside the graph; overlapping max pooling and the
    // composed ops must pass gradients through.
    let mut g = classifier();
    let conv_w = g.values.iter().position(|v| v.name == "conv.w").unwrap();
    let var = Var::from_tensor(g.values[conv_w].constant.as_ref().unwrap()).unwrap();
    g.values[conv_w].constant = Some(var.as_tensor().clone());
    let input = tensor(noise(14, 4 * 7 * 8), &[1, 4, 7, 8]);
    let grads = loss(&g, &input).backward().unwrap();
    let grad: Vec<f32> = grads
        .get(var.as_tensor())
        .expect("the conv weight gets a gradient")
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();

    let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    // Small enough that no ReLU or max-pool kink is crossed, large enough for f32.
    let eps = 3e-3;
    let mut checked = 0;
    for i in (0..base.len()).step_by(7) {
        let at = |delta: f32| {
            let mut w = base.clone();
            w[i] += delta;
            let mut g2 = g.clone();
            g2.values[conv_w].constant = Some(tensor(w, &[6, 2, 3, 3]));
            loss(&g2, &input).to_scalar::<f32>().unwrap()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (numeric - grad[i]).abs() <= 5e-4 + 1e-2 * numeric.abs(),
            "weight {i}: autograd {} vs finite difference {numeric}",
            grad[i]
        );
        checked += 1;
    }
    assert!(checked > 5 && grad.iter().any(|&v| v != 0.0));
}

#[test]
fn every_op_family_backpropagates() {
    // The decoder's input as a Var: every op on the path must support backward.
    let g = decoder();
    let input = Var::from_tensor(&tensor(noise(15, 48), &[1, 4, 3, 4])).unwrap();
    let outputs = eval(&g, &[input.as_tensor().clone()]).unwrap();
    let total = outputs[0]
        .sum_all()
        .unwrap()
        .add(&outputs[1].sum_all().unwrap())
        .unwrap();
    let grads = total.backward().unwrap();
    let grad: Vec<f32> = grads
        .get(input.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(grad.iter().all(|v| v.is_finite()) && grad.iter().any(|&v| v != 0.0));
}

#[test]
fn batch_norm_node_runs() {
    // x = [1, 3] in one channel: mean 2, var 1, eps 0 -> (-1, 1), scale 3, bias 1 ->
    // (-2, 4), then the fused ReLU.
    let mut g = Graph::default();
    let x = g.activation("x", vec![1, 1, 1, 2]);
    g.inputs.push(x);
    let params: Vec<ValueId> = [3.0, 1.0, 2.0, 1.0]
        .iter()
        .enumerate()
        .map(|(i, &v)| g.constant(&format!("p{i}"), tensor(vec![v], &[1])))
        .collect();
    let y = g.activation("y", vec![1, 1, 1, 2]);
    let mut inputs = vec![x];
    inputs.extend(params);
    g.push("bn", Op::BatchNorm { epsilon: 0.0 }, inputs, vec![y]);
    g.nodes[0].activation = Activation::Relu;
    g.outputs.push(y);
    let out = eval(&g, &[tensor(vec![1.0, 3.0], &[1, 1, 1, 2])]).unwrap();
    let out: Vec<f32> = out[0].flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(out, [0.0, 4.0]);
}

#[test]
fn integer_constants_and_pass_through_outputs() {
    // An I64 constant is read as f32; a graph output may be the input itself.
    let mut g = Graph::default();
    let x = g.activation("x", vec![2]);
    g.inputs.push(x);
    let k = g.constant("k", Tensor::new(&[3i64, -1], &Device::Cpu).unwrap());
    let y = node(
        &mut g,
        "mul",
        Rt::Binary(BinaryKind::Mul),
        vec![x, k],
        &[2],
        Activation::None,
    );
    g.outputs.extend([y, x]);
    let out = eval(&g, &[tensor(vec![2.0, 5.0], &[2])]).unwrap();
    assert_eq!(out[0].to_vec1::<f32>().unwrap(), [6.0, -5.0]);
    assert_eq!(out[1].to_vec1::<f32>().unwrap(), [2.0, 5.0]);
}

#[test]
fn malformed_graphs_are_errors() {
    let g = classifier();
    let good = tensor(noise(1, 4 * 7 * 8), &[1, 4, 7, 8]);
    assert!(matches!(
        eval(&g, &[]),
        Err(EvalError::InputCount {
            expected: 1,
            got: 0
        })
    ));
    let wrong = tensor(noise(1, 4 * 7 * 8), &[1, 4, 8, 7]);
    assert!(matches!(eval(&g, &[wrong]), Err(EvalError::Input { .. })));

    // A declared output shape that the op does not produce.
    let mut bad = g.clone();
    let out = bad.nodes[1].outputs[0];
    bad.values[out].shape = vec![1, 6, 2, 2];
    match eval(&bad, std::slice::from_ref(&good)) {
        Err(EvalError::Invalid { node, op, .. }) => {
            assert_eq!((node.as_str(), op), ("max", "MaxPool"));
        }
        other => panic!("{other:?}"),
    }

    // A node reading a value nobody computes, and one reading a value that does not exist.
    let mut bad = g.clone();
    let orphan = bad.activation("orphan", vec![1, 5]);
    bad.nodes.last_mut().unwrap().inputs[0] = orphan;
    assert!(matches!(
        eval(&bad, std::slice::from_ref(&good)),
        Err(EvalError::Invalid { .. })
    ));
    let mut bad = g.clone();
    bad.nodes[0].inputs[1] = 999;
    assert!(matches!(
        eval(&bad, std::slice::from_ref(&good)),
        Err(EvalError::Invalid { .. })
    ));

    // Wrong operand count, and a kernel that candle would reject.
    let mut bad = g.clone();
    bad.nodes[0].inputs.truncate(1);
    assert!(matches!(
        eval(&bad, std::slice::from_ref(&good)),
        Err(EvalError::Invalid { .. })
    ));
    let mut bad = g.clone();
    bad.nodes[0].inputs.swap(1, 2);
    assert!(eval(&bad, std::slice::from_ref(&good)).is_err());

    // An output that is never computed.
    let mut bad = g;
    let ghost = bad.activation("ghost", vec![1]);
    bad.outputs.push(ghost);
    assert!(matches!(
        eval(&bad, &[good]),
        Err(EvalError::Output { name }) if name == "ghost"
    ));
}
