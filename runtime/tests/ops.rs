//! Every op through the whole pipeline (writer -> file -> verify -> plan -> run), each
//! against numbers worked out by hand in the comments.

#![allow(clippy::excessive_precision)] // reference values quoted at full precision

mod common;

use common::{assert_close, run_node, Operand::*};
use lopper_runtime::format::Encoding;
use lopper_runtime::graph::{
    Activation, BinaryKind, Conv2d, ConvTranspose2d, CoordinateTransform, Gather, LayerNorm,
    LayoutKind, Lrn, NearestMode, Op, Pad, PadMode, Pool2d, PoolKind, Reduce, ReduceKind, Resize,
    ResizeMode, Slice, Storage,
};

fn x1_9() -> Vec<f32> {
    (1..=9).map(|v| v as f32).collect()
}

#[test]
fn conv2d_valid_with_bias() {
    // x = [1 2 3; 4 5 6; 7 8 9], w = [1 2; 3 4], b = 0.5:
    // 1+4+12+20, 2+6+15+24, 4+10+21+32, 5+12+24+36, each + 0.5.
    let y = run_node(
        Op::Conv2d(Conv2d::default()),
        Activation::None,
        &[
            Input(&[1, 1, 3, 3], &x1_9()),
            Const(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]),
            Const(&[1], &[0.5]),
        ],
        &[1, 1, 2, 2],
    );
    assert_eq!(y, [37.5, 47.5, 67.5, 77.5]);
}

#[test]
fn conv2d_asymmetric_padding_and_stride() {
    // Pad top 1 and right 1: rows [0 0 0 0; 1 2 3 0; 4 5 6 0; 7 8 9 0], stride 2:
    // [0 0; 1 2]·w = 11, [0 0; 3 0]·w = 9, [4 5; 7 8]·w = 67, [6 0; 9 0]·w = 33.
    let attrs = Conv2d {
        stride: [2, 2],
        pads: [1, 0, 0, 1],
        ..Conv2d::default()
    };
    let y = run_node(
        Op::Conv2d(attrs),
        Activation::None,
        &[
            Input(&[1, 1, 3, 3], &x1_9()),
            Const(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]),
        ],
        &[1, 1, 2, 2],
    );
    assert_eq!(y, [11.0, 9.0, 67.0, 33.0]);
}

#[test]
fn conv2d_dilation() {
    // x[r][c] = 5r + c on 5x5; a 2x2 kernel with dilation 2 reads x[i][j], x[i][j+2],
    // x[i+2][j], x[i+2][j+2]: 1, 2, 3, 4 times those = 50i + 10j + 82.
    let x: Vec<f32> = (0..25).map(|v| v as f32).collect();
    let attrs = Conv2d {
        dilation: [2, 2],
        ..Conv2d::default()
    };
    let y = run_node(
        Op::Conv2d(attrs),
        Activation::None,
        &[
            Input(&[1, 1, 5, 5], &x),
            Const(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]),
        ],
        &[1, 1, 3, 3],
    );
    let expected: Vec<f32> = (0..9)
        .map(|k| (50 * (k / 3) + 10 * (k % 3) + 82) as f32)
        .collect();
    assert_eq!(y, expected);
}

#[test]
fn conv2d_groups_depthwise_and_fused_relu() {
    // Depthwise 1x1: channel 0 times 2, channel 1 times -1, then Relu.
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let attrs = Conv2d {
        groups: 2,
        ..Conv2d::default()
    };
    let y = run_node(
        Op::Conv2d(attrs),
        Activation::Relu,
        &[Input(&[1, 2, 2, 2], &x), Const(&[2, 1, 1, 1], &[2.0, -1.0])],
        &[1, 2, 2, 2],
    );
    assert_eq!(y, [2.0, 4.0, 6.0, 8.0, 0.0, 0.0, 0.0, 0.0]);

    // Two groups, two outputs each: outputs 0, 1 read channel 0; outputs 2, 3 channel 1.
    let y = run_node(
        Op::Conv2d(attrs),
        Activation::None,
        &[
            Input(&[1, 2, 2, 2], &x),
            Const(&[4, 1, 1, 1], &[1.0, 2.0, 3.0, 4.0]),
        ],
        &[1, 4, 2, 2],
    );
    let expected = [
        1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 6.0, 8.0, 15.0, 18.0, 21.0, 24.0, 20.0, 24.0, 28.0, 32.0,
    ];
    assert_eq!(y, expected);
}

#[test]
fn linear_with_bias_and_leaky_relu() {
    // W = [1 0 -1; .5 .5 .5], b = [1, -1]; x0 = [1 2 3] -> [-1, 2]; x1 = [4 5 6] -> [-1, 6.5].
    let y = run_node(
        Op::Linear,
        Activation::LeakyRelu { alpha: 0.1 },
        &[
            Input(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            Const(&[2, 3], &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]),
            Const(&[2], &[1.0, -1.0]),
        ],
        &[2, 2],
    );
    assert_close(&y, &[-0.1, 2.0, -0.1, 6.5], 1e-6, 0.0);
}

#[test]
fn matmul_broadcasts_batch() {
    // A0 = [1 2 3; 4 5 6], A1 = [1 0 0; 0 1 0], B = [1 2; 3 4; 5 6].
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let y = run_node(
        Op::MatMul,
        Activation::None,
        &[Input(&[2, 2, 3], &a), Input(&[3, 2], &b)],
        &[2, 2, 2],
    );
    assert_eq!(y, [22.0, 28.0, 49.0, 64.0, 1.0, 2.0, 3.0, 4.0]);
}

fn pool(kind: PoolKind, kernel: usize, stride: usize, pads: [usize; 4]) -> Pool2d {
    Pool2d {
        kind,
        kernel: [kernel; 2],
        stride: [stride; 2],
        dilation: [1, 1],
        pads,
        ceil_mode: false,
        count_include_pad: false,
    }
}

#[test]
fn max_pool_plain_ceil_and_padded() {
    let x16: Vec<f32> = (1..=16).map(|v| v as f32).collect();
    let p = pool(PoolKind::Max, 2, 2, [0; 4]);
    let y = run_node(
        Op::Pool2d(p),
        Activation::None,
        &[Input(&[1, 1, 4, 4], &x16)],
        &[1, 1, 2, 2],
    );
    assert_eq!(y, [6.0, 8.0, 14.0, 16.0]);

    // 5x5, ceil mode: windows on rows {0,1}, {2,3}, {4} and the same columns.
    let x25: Vec<f32> = (1..=25).map(|v| v as f32).collect();
    let p = Pool2d {
        ceil_mode: true,
        ..pool(PoolKind::Max, 2, 2, [0; 4])
    };
    let y = run_node(
        Op::Pool2d(p),
        Activation::None,
        &[Input(&[1, 1, 5, 5], &x25)],
        &[1, 1, 3, 3],
    );
    assert_eq!(y, [7.0, 9.0, 10.0, 17.0, 19.0, 20.0, 22.0, 24.0, 25.0]);

    // Negative input with padding: padded cells must not win with 0.
    let neg: Vec<f32> = x1_9().iter().map(|v| -v).collect();
    let p = pool(PoolKind::Max, 2, 2, [1, 1, 0, 0]);
    let y = run_node(
        Op::Pool2d(p),
        Activation::None,
        &[Input(&[1, 1, 3, 3], &neg)],
        &[1, 1, 2, 2],
    );
    // Windows: {x00}, {x01, x02}, {x10, x20}, {x11, x12, x21, x22}.
    assert_eq!(y, [-1.0, -2.0, -4.0, -5.0]);
}

#[test]
fn average_pool_counts_padding_only_when_asked() {
    // 3x3 with bottom/right padding 1, 2x2 windows, stride 2:
    // {1,2,4,5} = 3; {3,6,pad,pad}; {7,8,pad,pad}; {9,pad,pad,pad}.
    let p = pool(PoolKind::Average, 2, 2, [0, 0, 1, 1]);
    let y = run_node(
        Op::Pool2d(p),
        Activation::None,
        &[Input(&[1, 1, 3, 3], &x1_9())],
        &[1, 1, 2, 2],
    );
    assert_eq!(y, [3.0, 4.5, 7.5, 9.0]);
    let p = Pool2d {
        count_include_pad: true,
        ..p
    };
    let y = run_node(
        Op::Pool2d(p),
        Activation::None,
        &[Input(&[1, 1, 3, 3], &x1_9())],
        &[1, 1, 2, 2],
    );
    assert_eq!(y, [3.0, 2.25, 3.75, 2.25]);

    // Ceil mode without padding: the overhanging cells are not padding and never count.
    let p = Pool2d {
        ceil_mode: true,
        count_include_pad: true,
        ..pool(PoolKind::Average, 2, 2, [0; 4])
    };
    let y = run_node(
        Op::Pool2d(p),
        Activation::None,
        &[Input(&[1, 1, 3, 3], &x1_9())],
        &[1, 1, 2, 2],
    );
    assert_eq!(y, [3.0, 4.5, 7.5, 9.0]);
}

#[test]
fn global_average_pool() {
    let x = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
    let y = run_node(
        Op::GlobalAveragePool,
        Activation::None,
        &[Input(&[1, 2, 2, 2], &x)],
        &[1, 2, 1, 1],
    );
    assert_eq!(y, [2.5, 25.0]);
}

#[test]
fn binary_ops_broadcast() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let run = |kind, b_shape: &[usize], b: &[f32]| {
        run_node(
            Op::Binary(kind),
            Activation::None,
            &[Input(&[2, 3], &a), Const(b_shape, b)],
            &[2, 3],
        )
    };
    assert_eq!(
        run(BinaryKind::Add, &[3], &[10.0, 20.0, 30.0]),
        [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]
    );
    assert_eq!(
        run(BinaryKind::Sub, &[3], &[10.0, 20.0, 30.0]),
        [-9.0, -18.0, -27.0, -6.0, -15.0, -24.0]
    );
    assert_eq!(
        run(BinaryKind::Mul, &[2, 1], &[2.0, -1.0]),
        [2.0, 4.0, 6.0, -4.0, -5.0, -6.0]
    );
    assert_eq!(
        run(BinaryKind::Div, &[], &[2.0]),
        [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    );

    // Both operands computed at run time, broadcasting on both sides: [2,1] + [1,3].
    let y = run_node(
        Op::Binary(BinaryKind::Add),
        Activation::None,
        &[
            Input(&[2, 1], &[1.0, 2.0]),
            Input(&[1, 3], &[10.0, 20.0, 30.0]),
        ],
        &[2, 3],
    );
    assert_eq!(y, [11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
}

#[test]
fn concat_reshape_transpose() {
    let y = run_node(
        Op::Concat { axis: 1 },
        Activation::None,
        &[
            Input(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            Const(&[2, 1], &[9.0, 8.0]),
        ],
        &[2, 3],
    );
    assert_eq!(y, [1.0, 2.0, 9.0, 3.0, 4.0, 8.0]);

    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let y = run_node(
        Op::Reshape,
        Activation::None,
        &[Input(&[2, 3], &x)],
        &[3, 2],
    );
    assert_eq!(y, x);

    let y = run_node(
        Op::Transpose { perm: vec![1, 0] },
        Activation::None,
        &[Input(&[2, 3], &x)],
        &[3, 2],
    );
    assert_eq!(y, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
}

#[test]
fn pad_constant_reflect_edge() {
    let pad = |mode, begin: Vec<usize>, end: Vec<usize>| {
        Op::Pad(Pad {
            mode,
            begin,
            end,
            value: 9.0,
        })
    };
    let y = run_node(
        pad(PadMode::Constant, vec![1, 0], vec![0, 1]),
        Activation::None,
        &[Input(&[2, 2], &[1.0, 2.0, 3.0, 4.0])],
        &[3, 3],
    );
    assert_eq!(y, [9.0, 9.0, 9.0, 1.0, 2.0, 9.0, 3.0, 4.0, 9.0]);
    let row = [1.0, 2.0, 3.0];
    let y = run_node(
        pad(PadMode::Reflect, vec![0, 2], vec![0, 1]),
        Activation::None,
        &[Input(&[1, 3], &row)],
        &[1, 6],
    );
    assert_eq!(y, [3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
    let y = run_node(
        pad(PadMode::Edge, vec![0, 1], vec![0, 2]),
        Activation::None,
        &[Input(&[1, 3], &row)],
        &[1, 6],
    );
    assert_eq!(y, [1.0, 1.0, 2.0, 3.0, 3.0, 3.0]);
}

#[test]
fn softmax_last_and_first_axis() {
    let y = run_node(
        Op::Softmax { axis: 1 },
        Activation::None,
        &[Input(&[1, 3], &[1.0, 2.0, 3.0])],
        &[1, 3],
    );
    assert_close(&y, &[0.09003057, 0.24472847, 0.66524096], 1e-6, 0.0);
    let y = run_node(
        Op::Softmax { axis: 0 },
        Activation::None,
        &[Input(&[2, 2], &[1.0, 2.0, 3.0, 4.0])],
        &[2, 2],
    );
    assert_close(
        &y,
        &[0.11920292, 0.11920292, 0.88079708, 0.88079708],
        1e-6,
        0.0,
    );
}

#[test]
fn every_activation_on_its_own() {
    let x = [-2.0, -0.5, 0.0, 0.5, 2.0, 8.0];
    let cases: [(Activation, [f32; 6]); 7] = [
        (Activation::Relu, [0.0, 0.0, 0.0, 0.5, 2.0, 8.0]),
        (
            Activation::Clip { min: 0.0, max: 6.0 },
            [0.0, 0.0, 0.0, 0.5, 2.0, 6.0],
        ),
        (
            Activation::Sigmoid,
            [
                0.11920292, 0.37754067, 0.5, 0.62245933, 0.88079708, 0.99966465,
            ],
        ),
        (
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            [0.1, 0.4, 0.5, 0.6, 0.9, 1.0],
        ),
        (
            Activation::HardSwish,
            [-0.33333334, -0.20833333, 0.0, 0.29166667, 1.6666666, 8.0],
        ),
        (
            Activation::LeakyRelu { alpha: 0.1 },
            [-0.2, -0.05, 0.0, 0.5, 2.0, 8.0],
        ),
        (
            Activation::Tanh,
            [
                -0.96402758,
                -0.46211716,
                0.0,
                0.46211716,
                0.96402758,
                0.99999977,
            ],
        ),
    ];
    for (act, expected) in cases {
        let y = run_node(Op::Unary, act, &[Input(&[1, 6], &x)], &[1, 6]);
        assert_close(&y, &expected, 1e-6, 1e-6);
    }
}

#[test]
fn conv2d_and_linear_with_weights_computed_at_run_time() {
    // The conv2d_valid_with_bias case with weight and bias fed as graph inputs.
    let y = run_node(
        Op::Conv2d(Conv2d::default()),
        Activation::None,
        &[
            Input(&[1, 1, 3, 3], &x1_9()),
            Input(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]),
            Input(&[1], &[0.5]),
        ],
        &[1, 1, 2, 2],
    );
    assert_eq!(y, [37.5, 47.5, 67.5, 77.5]);

    // Depthwise with a run-time weight and a constant bias: channel 0 times 2 plus 1,
    // channel 1 times -1 plus 1, then Relu.
    let y = run_node(
        Op::Conv2d(Conv2d {
            groups: 2,
            ..Conv2d::default()
        }),
        Activation::Relu,
        &[
            Input(&[1, 2, 1, 2], &[1.0, 2.0, 3.0, -4.0]),
            Input(&[2, 1, 1, 1], &[2.0, -1.0]),
            Const(&[2], &[1.0, 1.0]),
        ],
        &[1, 2, 1, 2],
    );
    assert_eq!(y, [3.0, 5.0, 0.0, 5.0]);

    // The linear_with_bias_and_leaky_relu case with run-time weight and bias.
    let y = run_node(
        Op::Linear,
        Activation::LeakyRelu { alpha: 0.1 },
        &[
            Input(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            Input(&[2, 3], &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]),
            Input(&[2], &[1.0, -1.0]),
        ],
        &[2, 2],
    );
    assert_close(&y, &[-0.1, 2.0, -0.1, 6.5], 1e-6, 0.0);
}

#[test]
fn conv_transpose_stride_pads_and_output_padding() {
    // x = [1 2; 3 4], k = [1 2; 3 4], stride 2: each input writes x * k into its own 2x2
    // block, [1 2 2 4; 3 4 6 8; 3 6 4 8; 9 12 12 16]; pads 1 crop the middle [4 6; 6 4].
    let x = [1.0, 2.0, 3.0, 4.0];
    let k = [1.0, 2.0, 3.0, 4.0];
    let attrs = ConvTranspose2d {
        stride: [2, 2],
        pads: [1, 1, 1, 1],
        ..ConvTranspose2d::default()
    };
    let y = run_node(
        Op::ConvTranspose2d(attrs),
        Activation::None,
        &[Input(&[1, 1, 2, 2], &x), Const(&[1, 1, 2, 2], &k)],
        &[1, 1, 2, 2],
    );
    assert_eq!(y, [4.0, 6.0, 6.0, 4.0]);

    // No pads, output padding 1 on the width only, bias -1, Relu: the full 4x4 result
    // minus 1 with a fifth column of 0 (just the bias, clipped).
    let attrs = ConvTranspose2d {
        stride: [2, 2],
        output_padding: [0, 1],
        ..ConvTranspose2d::default()
    };
    let y = run_node(
        Op::ConvTranspose2d(attrs),
        Activation::Relu,
        &[
            Input(&[1, 1, 2, 2], &x),
            Input(&[1, 1, 2, 2], &k),
            Const(&[1], &[-1.0]),
        ],
        &[1, 1, 4, 5],
    );
    let want = [
        0.0, 1.0, 1.0, 3.0, 0.0, //
        2.0, 3.0, 5.0, 7.0, 0.0, //
        2.0, 5.0, 3.0, 7.0, 0.0, //
        8.0, 11.0, 11.0, 15.0, 0.0,
    ];
    assert_eq!(y, want);
}

#[test]
fn conv_transpose_groups_with_sparse_weight() {
    // Two groups; input channel 0 (all 1) feeds outputs 0, 1 and channel 1 (all 2) feeds
    // outputs 2, 3, each through a 1x2 kernel with stride 1 on a 1x2 image. Weight
    // [2, 2, 1, 2] rows: channel 0 -> out 0 [1 0], out 1 [0 -1]; channel 1 -> out 2
    // [0 0], out 3 [3 0]. Output 1x3: out 0 = [1 1 0], out 1 = [0 -1 -1], out 2 = 0,
    // out 3 = [6 6 0]; stored as CSR and as int8 (exact for these values).
    let w = [1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 3.0, 0.0];
    let attrs = ConvTranspose2d {
        groups: 2,
        ..ConvTranspose2d::default()
    };
    let want = [1.0, 1.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0, 0.0, 6.0, 6.0, 0.0];
    for storage in [Storage::F32, Storage::I8] {
        let encoding = Encoding {
            layout: LayoutKind::Csr,
            storage,
        };
        let y = run_node(
            Op::ConvTranspose2d(attrs),
            Activation::None,
            &[
                Input(&[1, 2, 1, 2], &[1.0, 1.0, 2.0, 2.0]),
                Weight(&[2, 2, 1, 2], &w, encoding),
            ],
            &[1, 4, 1, 3],
        );
        assert_close(&y, &want, 1e-6, 0.0);
    }
}

fn resize(mode: ResizeMode, transform: CoordinateTransform, scales: [f32; 2]) -> Op {
    Op::Resize(Resize {
        mode,
        coordinate_transform: transform,
        nearest_mode: NearestMode::RoundPreferFloor,
        scales,
    })
}

#[test]
fn resize_bilinear_and_nearest() {
    // Half pixel x2: source coordinates -0.25, 0.25, 0.75, 1.25 clamp to 0, 0.25, 0.75, 1.
    let y = run_node(
        resize(
            ResizeMode::Linear,
            CoordinateTransform::HalfPixel,
            [2.0, 2.0],
        ),
        Activation::None,
        &[Input(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0])],
        &[1, 1, 4, 4],
    );
    let want = [
        1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
    ];
    assert_close(&y, &want, 1e-6, 0.0);

    // Align corners 2 -> 3 on the width: coordinates 0, 0.5, 1.
    let y = run_node(
        resize(
            ResizeMode::Linear,
            CoordinateTransform::AlignCorners,
            [1.0, 1.5],
        ),
        Activation::None,
        &[Input(&[1, 2, 1, 2], &[1.0, 3.0, 10.0, 20.0])],
        &[1, 2, 1, 3],
    );
    assert_close(&y, &[1.0, 2.0, 3.0, 10.0, 15.0, 20.0], 1e-6, 0.0);

    // Nearest, asymmetric x2 then a fused Neg: each value repeats in a 2x2 block.
    let y = run_node(
        resize(
            ResizeMode::Nearest,
            CoordinateTransform::Asymmetric,
            [2.0, 2.0],
        ),
        Activation::Neg,
        &[Input(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0])],
        &[1, 1, 4, 4],
    );
    let want = [
        -1.0, -1.0, -2.0, -2.0, -1.0, -1.0, -2.0, -2.0, -3.0, -3.0, -4.0, -4.0, -3.0, -3.0, -4.0,
        -4.0,
    ];
    assert_eq!(y, want);
}

#[test]
fn lrn_across_channels() {
    // Channels 1, 2, 3, 4 at one position, size 3, alpha 3 (alpha / size = 1), beta 1,
    // bias 1: window sums 5, 14, 29, 25 give 1/6, 2/15, 3/30, 4/26.
    let p = Lrn {
        size: 3,
        alpha: 3.0,
        beta: 1.0,
        bias: 1.0,
    };
    let y = run_node(
        Op::Lrn(p),
        Activation::None,
        &[Input(&[1, 4, 1, 1], &[1.0, 2.0, 3.0, 4.0])],
        &[1, 4, 1, 1],
    );
    assert_close(&y, &[1.0 / 6.0, 2.0 / 15.0, 0.1, 4.0 / 26.0], 1e-6, 0.0);
}

#[test]
fn reduce_mean_sum_max_min() {
    // [[1, 2, 3], [4, 5, 6]].
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let run = |kind, axes: Vec<usize>, keepdims, out: &[usize]| {
        run_node(
            Op::Reduce(Reduce {
                kind,
                axes,
                keepdims,
            }),
            Activation::None,
            &[Input(&[2, 3], &x)],
            out,
        )
    };
    assert_eq!(run(ReduceKind::Mean, vec![1], true, &[2, 1]), [2.0, 5.0]);
    assert_eq!(run(ReduceKind::Sum, vec![0], false, &[3]), [5.0, 7.0, 9.0]);
    assert_eq!(run(ReduceKind::Max, vec![0, 1], false, &[]), [6.0]);
    assert_eq!(run(ReduceKind::Min, vec![1, 0], true, &[1, 1]), [1.0]);
}

#[test]
fn layer_norm_last_axis_and_two_axes() {
    // [1 2 3 4]: mean 2.5, variance 1.25: normalized [-1.3416408, -0.4472136, 0.4472136,
    // 1.3416408], times scale [1 2 1 0.5] plus bias [0 1 0 0].
    let y = run_node(
        Op::LayerNorm(LayerNorm {
            axis: 1,
            epsilon: 0.0,
        }),
        Activation::None,
        &[
            Input(&[1, 4], &[1.0, 2.0, 3.0, 4.0]),
            Const(&[4], &[1.0, 2.0, 1.0, 0.5]),
            Const(&[4], &[0.0, 1.0, 0.0, 0.0]),
        ],
        &[1, 4],
    );
    assert_close(
        &y,
        &[-1.3416408, 0.1055728, 0.4472136, 0.6708204],
        1e-6,
        0.0,
    );

    // [2, 2, 2] normalized over the last two axes: each block [a, a + 2, a + 4, a + 6]
    // has variance 5, so it becomes [-3, -1, 1, 3] / sqrt(5 + epsilon) with epsilon 4:
    // [-1, -1/3, 1/3, 1]. Scale fed at run time as [1, 2, 2].
    let x = [0.0, 2.0, 4.0, 6.0, 10.0, 12.0, 14.0, 16.0];
    let y = run_node(
        Op::LayerNorm(LayerNorm {
            axis: 1,
            epsilon: 4.0,
        }),
        Activation::None,
        &[Input(&[2, 2, 2], &x), Input(&[1, 2, 2], &[1.0; 4])],
        &[2, 2, 2],
    );
    let third = 1.0 / 3.0;
    assert_close(
        &y,
        &[-1.0, -third, third, 1.0, -1.0, -third, third, 1.0],
        1e-6,
        0.0,
    );
}

#[test]
fn slice_strided_and_reversed() {
    // x[r][c] = 10r + c on [3, 4]; rows 2 down to past 0, columns 0, 2.
    let x: Vec<f32> = (0..12).map(|v| (10 * (v / 4) + v % 4) as f32).collect();
    let y = run_node(
        Op::Slice(Slice {
            starts: vec![2, 0],
            ends: vec![-1, i64::MAX],
            steps: vec![-1, 2],
        }),
        Activation::None,
        &[Input(&[3, 4], &x)],
        &[3, 2],
    );
    assert_eq!(y, [20.0, 22.0, 10.0, 12.0, 0.0, 2.0]);
}

#[test]
fn gather_rows_and_a_scalar_index() {
    // [[1, 2], [3, 4], [5, 6]] with indices [[0, 1], [1, 2]] on axis 0.
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let y = run_node(
        Op::Gather(Gather {
            axis: 0,
            indices: vec![0, 1, 1, 2],
            indices_shape: vec![2, 2],
        }),
        Activation::None,
        &[Input(&[3, 2], &x)],
        &[2, 2, 2],
    );
    assert_eq!(y, [1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 5.0, 6.0]);
    // A scalar index on axis 1 drops the axis: column 1.
    let y = run_node(
        Op::Gather(Gather {
            axis: 1,
            indices: vec![1],
            indices_shape: vec![],
        }),
        Activation::None,
        &[Input(&[3, 2], &x)],
        &[3],
    );
    assert_eq!(y, [2.0, 4.0, 6.0]);
}

#[test]
fn pow_max_min_broadcast() {
    let a = [3.0, 4.0, -2.0, 9.0];
    let run = |kind| {
        run_node(
            Op::Binary(kind),
            Activation::None,
            &[Input(&[2, 2], &a), Const(&[2], &[2.0, 0.5])],
            &[2, 2],
        )
    };
    // 3^2, 4^0.5, (-2)^2, 9^0.5.
    assert_eq!(run(BinaryKind::Pow), [9.0, 2.0, 4.0, 3.0]);
    assert_eq!(run(BinaryKind::Max), [3.0, 4.0, 2.0, 9.0]);
    assert_eq!(run(BinaryKind::Min), [2.0, 0.5, -2.0, 0.5]);
}

#[test]
fn every_new_activation_on_its_own() {
    let x = [-2.0, -0.5, 0.5, 1.0, 2.0, 4.0];
    // Reference values from Python's math module (double precision).
    let cases: [(Activation, [f32; 6]); 9] = [
        (
            Activation::Sqrt,
            [
                f32::NAN,
                f32::NAN,
                std::f32::consts::FRAC_1_SQRT_2,
                1.0,
                std::f32::consts::SQRT_2,
                2.0,
            ],
        ),
        (
            Activation::Exp,
            [
                0.13533528,
                0.60653066,
                1.64872127,
                std::f32::consts::E,
                7.3890561,
                54.59815003,
            ],
        ),
        (Activation::Abs, [2.0, 0.5, 0.5, 1.0, 2.0, 4.0]),
        (Activation::Neg, [2.0, 0.5, -0.5, -1.0, -2.0, -4.0]),
        (
            Activation::Erf,
            [
                -0.99532227,
                -0.52049988,
                0.52049988,
                0.84270079,
                0.99532227,
                0.99999998,
            ],
        ),
        (
            Activation::Gelu,
            [
                -0.04550026,
                -0.15426877,
                0.34573123,
                0.84134475,
                1.95449974,
                3.99987332,
            ],
        ),
        (Activation::Reciprocal, [-0.5, -2.0, 2.0, 1.0, 0.5, 0.25]),
        (
            Activation::Softplus,
            [
                0.12692801, 0.47407698, 0.97407698, 1.31326169, 2.12692801, 4.01814993,
            ],
        ),
        (
            Activation::Elu { alpha: 2.0 },
            [-1.72932943, -0.78693868, 0.5, 1.0, 2.0, 4.0],
        ),
    ];
    for (act, expected) in cases {
        let y = run_node(Op::Unary, act, &[Input(&[1, 6], &x)], &[1, 6]);
        for (i, (g, e)) in y.iter().zip(&expected).enumerate() {
            let ok = if e.is_nan() {
                g.is_nan()
            } else {
                (g - e).abs() <= 1e-6 + 1e-6 * e.abs()
            };
            assert!(ok, "{act:?} element {i}: got {g}, expected {e}");
        }
    }
}
