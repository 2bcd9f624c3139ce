//! Writes the same weights in every layout and storage, runs each file, and checks that all
//! agree: exactly (up to f32 summation order) for f32, within the rounding of the storage
//! for f16 and int8.

mod common;

use common::{assert_close, layouts, make_nm, run_node, Operand::*, Rng, STORAGES};
use lopper_runtime::format::encode::{decode_dense, encode, EncodeError};
use lopper_runtime::format::Encoding;
use lopper_runtime::graph::{Activation, Conv2d, ConvTranspose2d, LayoutKind, Op, Storage};

/// One weight-bearing node: op, input shape, weight shape, output shape.
struct Case {
    name: &'static str,
    op: Op,
    x: Vec<usize>,
    w: Vec<usize>,
    y: Vec<usize>,
}

fn cases() -> Vec<Case> {
    let conv = |stride, pads, groups| {
        Op::Conv2d(Conv2d {
            stride: [stride, stride],
            pads,
            groups,
            ..Conv2d::default()
        })
    };
    vec![
        Case {
            name: "1x1 conv",
            op: conv(1, [0; 4], 1),
            x: vec![1, 12, 5, 5],
            w: vec![10, 12, 1, 1],
            y: vec![1, 10, 5, 5],
        },
        Case {
            name: "3x3 conv, stride 2, padded",
            op: conv(2, [1, 1, 1, 1], 1),
            x: vec![2, 4, 7, 6],
            w: vec![9, 4, 3, 3],
            y: vec![2, 9, 4, 3],
        },
        Case {
            name: "grouped 3x3 conv",
            op: conv(1, [1, 0, 1, 2], 2),
            x: vec![1, 8, 5, 5],
            w: vec![6, 4, 3, 3],
            y: vec![1, 6, 5, 5],
        },
        Case {
            name: "depthwise 3x3 conv",
            op: conv(1, [1, 1, 1, 1], 8),
            x: vec![1, 8, 6, 6],
            w: vec![8, 1, 3, 3],
            y: vec![1, 8, 6, 6],
        },
        Case {
            name: "transposed 3x3 conv, stride 2, padded, output padding",
            op: Op::ConvTranspose2d(ConvTranspose2d {
                stride: [2, 2],
                pads: [1, 1, 1, 1],
                output_padding: [1, 1],
                ..ConvTranspose2d::default()
            }),
            x: vec![1, 6, 4, 5],
            w: vec![6, 4, 3, 3],
            y: vec![1, 4, 8, 10],
        },
        Case {
            name: "grouped transposed 2x2 conv",
            op: Op::ConvTranspose2d(ConvTranspose2d {
                groups: 2,
                ..ConvTranspose2d::default()
            }),
            x: vec![1, 8, 3, 3],
            w: vec![8, 3, 2, 2],
            y: vec![1, 6, 4, 4],
        },
        Case {
            name: "linear",
            op: Op::Linear,
            x: vec![3, 20],
            w: vec![11, 20],
            y: vec![3, 11],
        },
    ]
}

/// Runs `case` with weights stored as `encoding`.
fn run(case: &Case, x: &[f32], w: &[f32], bias: &[f32], encoding: Encoding) -> Vec<f32> {
    run_node(
        case.op.clone(),
        Activation::None,
        &[
            Input(&case.x, x),
            Weight(&case.w, w, encoding),
            Const(&case.y[1..2], bias),
        ],
        &case.y,
    )
}

#[test]
fn every_layout_and_storage_computes_the_same() {
    let mut rng = Rng::new(42);
    for case in cases() {
        let rows = case.w[0];
        let cols: usize = case.w[1..].iter().product();
        let x = rng.values(case.x.iter().product());
        let bias = rng.values(case.y[1]);
        // 70% zeros, then 2:4 so that every layout can hold the same matrix.
        let mut w = rng.sparse_values(rows * cols, 0.7);
        make_nm(&mut w, cols, 2, 4);
        let reference = run(&case, &x, &w, &bias, Encoding::DENSE_F32);
        let sum_abs_x: f32 = x.iter().map(|v| v.abs()).sum();
        for layout in layouts() {
            for storage in STORAGES {
                let what = format!("{} as {layout:?} {storage:?}", case.name);
                let stored = match encode(&w, rows, cols, layout, storage) {
                    // 2:4 needs at least two columns in the last group (not 3x3 depthwise).
                    Err(EncodeError::NarrowGroup { .. }) => continue,
                    other => other.unwrap(),
                };
                let encoding = Encoding { layout, storage };
                let got = run(&case, &x, &w, &bias, encoding);
                // The same computation on the values the storage really holds, in f32.
                let rounded = decode_dense(&stored.view());
                let exact = run(&case, &x, &rounded, &bias, Encoding::DENSE_F32);
                assert_close(&got, &exact, 1e-5, 1e-5);
                // And against the original weights, within the storage's rounding: every
                // output sums at most all inputs times the largest weight error.
                let max_err = w
                    .iter()
                    .zip(&rounded)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                let bound = match storage {
                    Storage::F32 => 1e-5,
                    Storage::F16 => {
                        assert!(max_err <= 1.0 / 2048.0, "{what}: f16 error {max_err}");
                        max_err * sum_abs_x + 1e-5
                    }
                    Storage::I8 => {
                        assert!(
                            max_err <= 1.0 / 254.0 + 1e-6,
                            "{what}: int8 error {max_err}"
                        );
                        max_err * sum_abs_x + 1e-5
                    }
                };
                for (g, r) in got.iter().zip(&reference) {
                    assert!((g - r).abs() <= bound, "{what}: {g} vs {r}, bound {bound}");
                }
            }
        }
    }
}

#[test]
fn sparse_layouts_store_less() {
    // A 90%-sparse 64x64 matrix: CSR and 4x1 blocks must be much smaller than dense.
    let mut rng = Rng::new(3);
    let w = rng.sparse_values(64 * 64, 0.9);
    let size = |layout| {
        let mut writer = lopper_runtime::format::ModelWriter::new("test");
        let encoding = Encoding {
            layout,
            storage: Storage::F32,
        };
        writer.weight("w", &[64, 64], &w, encoding).unwrap();
        writer.finish().unwrap().len()
    };
    let dense = size(LayoutKind::Dense);
    let csr = size(LayoutKind::Csr);
    assert!(csr * 3 < dense, "CSR {csr} bytes vs dense {dense}");
}
