//! Every op through the whole pipeline (writer -> file -> verify -> plan -> run), each
//! against numbers worked out by hand in the comments.

#![allow(clippy::excessive_precision)] // reference values quoted at full precision

mod common;

use common::{assert_close, run_node, Operand::*};
use lopper_runtime::graph::{Activation, BinaryKind, Conv2d, Op, Pad, PadMode, Pool2d, PoolKind};

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
