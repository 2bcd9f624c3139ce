//! Helpers shared by the runtime's integration tests: a deterministic generator, a
//! one-node model runner, and a small CNN that uses every op family.
#![allow(dead_code)]

use lopper_runtime::format::{Encoding, ModelWriter};
use lopper_runtime::graph::{
    Activation, BinaryKind, Conv2d, ConvTranspose2d, CoordinateTransform, LayerNorm, LayoutKind,
    Lrn, NearestMode, Op, Pool2d, PoolKind, Resize, ResizeMode, Storage,
};
use lopper_runtime::{Model, Session};

/// xorshift64*: deterministic values without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn value(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value()).collect()
    }

    /// Values with roughly `sparsity` of them set to zero.
    pub fn sparse_values(&mut self, n: usize, sparsity: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = self.value();
                if (self.value() + 1.0) / 2.0 < sparsity {
                    0.0
                } else {
                    v
                }
            })
            .collect()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// An input operand of a one-node model.
pub enum Operand<'a> {
    /// Fed at run time.
    Input(&'a [usize], &'a [f32]),
    /// Stored in the file as dense f32.
    Const(&'a [usize], &'a [f32]),
    /// Stored in the file with the given encoding.
    Weight(&'a [usize], &'a [f32], Encoding),
}

/// Writes a model with one node, loads it, runs it, returns its output.
pub fn run_node(op: Op, act: Activation, operands: &[Operand], out_shape: &[usize]) -> Vec<f32> {
    let mut w = ModelWriter::new("test");
    let mut inputs = Vec::new();
    let mut feeds = Vec::new();
    for (i, operand) in operands.iter().enumerate() {
        let name = format!("in{i}");
        inputs.push(match operand {
            Operand::Input(shape, data) => {
                feeds.push(data.to_vec());
                w.input(&name, shape)
            }
            Operand::Const(shape, data) => w.constant(&name, shape, data).unwrap(),
            Operand::Weight(shape, data, enc) => w.weight(&name, shape, data, *enc).unwrap(),
        });
    }
    let y = w.tensor("y", out_shape);
    w.node("node", op, &inputs, &[y], act);
    w.output(y);
    let bytes = w.finish().unwrap();
    let model = Model::from_vec(bytes).unwrap();
    let mut session = Session::new(&model).unwrap();
    for (i, feed) in feeds.iter().enumerate() {
        session.set_input(i, feed).unwrap();
    }
    session.run();
    session.output(0).unwrap().to_vec()
}

/// Asserts two slices agree within `atol + rtol * |expected|`.
#[track_caller]
pub fn assert_close(got: &[f32], expected: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), expected.len(), "lengths differ");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= atol + rtol * e.abs(),
            "element {i}: got {g}, expected {e} (atol {atol}, rtol {rtol})"
        );
    }
}

/// Every layout the format has, with weights for `rows x cols` that it can hold.
pub fn layouts() -> Vec<LayoutKind> {
    vec![
        LayoutKind::Dense,
        LayoutKind::Csr,
        LayoutKind::Bsr { rows: 1, cols: 4 },
        LayoutKind::Bsr { rows: 4, cols: 1 },
        LayoutKind::Bsr { rows: 2, cols: 2 },
        LayoutKind::Bsr { rows: 8, cols: 1 },
        LayoutKind::Bsr { rows: 3, cols: 2 },
        LayoutKind::NM { n: 2, m: 4 },
    ]
}

pub const STORAGES: [Storage; 3] = [Storage::F32, Storage::F16, Storage::I8];

/// Zeroes all but the `n` largest magnitudes in every group of `m` columns (rows of
/// `cols`), so the matrix fits N:M.
pub fn make_nm(values: &mut [f32], cols: usize, n: usize, m: usize) {
    for row in values.chunks_mut(cols) {
        for group in row.chunks_mut(m) {
            let mut order: Vec<usize> = (0..group.len()).collect();
            order.sort_by(|&a, &b| group[b].abs().total_cmp(&group[a].abs()));
            for &i in &order[n.min(group.len())..] {
                group[i] = 0.0;
            }
        }
    }
}

/// A small CNN using convolution (dense, CSR, BSR, N:M, depthwise), transposed convolution,
/// pooling, residual Add, Resize, LRN, Concat, Reshape, LayerNormalization, Linear and
/// Softmax, with int8 and f16 weights. Input `x [1, 3, 8, 8]`, output `probs [1, 10]`.
pub fn tiny_cnn() -> Vec<u8> {
    let mut rng = Rng::new(7);
    let mut w = ModelWriter::new("lopper tests");
    w.metadata("purpose", "tests");
    let x = w.input("x", &[1, 3, 8, 8]);
    let enc = |layout, storage| Encoding { layout, storage };

    let conv = |w: &mut ModelWriter,
                rng: &mut Rng,
                name: &str,
                input: usize,
                shape: [usize; 4],
                attrs: Conv2d,
                out: &[usize],
                encoding: Encoding,
                act: Activation| {
        let mut values = rng.sparse_values(shape.iter().product(), 0.5);
        if let LayoutKind::NM { n, m } = encoding.layout {
            make_nm(&mut values, shape[1] * shape[2] * shape[3], n, m);
        }
        let weight = w
            .weight(&format!("{name}.w"), &shape, &values, encoding)
            .unwrap();
        let bias = w
            .constant(&format!("{name}.b"), &[shape[0]], &rng.values(shape[0]))
            .unwrap();
        let y = w.tensor(name, out);
        w.node(name, Op::Conv2d(attrs), &[input, weight, bias], &[y], act);
        y
    };
    let same3 = Conv2d {
        pads: [1, 1, 1, 1],
        ..Conv2d::default()
    };
    let c1 = conv(
        &mut w,
        &mut rng,
        "c1",
        x,
        [8, 3, 3, 3],
        same3,
        &[1, 8, 8, 8],
        Encoding::DENSE_F32,
        Activation::Relu,
    );
    let pool = Pool2d {
        kind: PoolKind::Max,
        kernel: [2, 2],
        stride: [2, 2],
        dilation: [1, 1],
        pads: [0; 4],
        ceil_mode: false,
        count_include_pad: false,
    };
    let p1 = w.tensor("p1", &[1, 8, 4, 4]);
    w.node("p1", Op::Pool2d(pool), &[c1], &[p1], Activation::None);
    let c2 = conv(
        &mut w,
        &mut rng,
        "c2",
        p1,
        [8, 8, 1, 1],
        Conv2d::default(),
        &[1, 8, 4, 4],
        enc(LayoutKind::Csr, Storage::I8),
        Activation::Clip { min: 0.0, max: 6.0 },
    );
    let dw = Conv2d { groups: 8, ..same3 };
    let c3 = conv(
        &mut w,
        &mut rng,
        "c3",
        c2,
        [8, 1, 3, 3],
        dw,
        &[1, 8, 4, 4],
        enc(LayoutKind::Bsr { rows: 4, cols: 1 }, Storage::F16),
        Activation::HardSwish,
    );
    let sum = w.tensor("sum", &[1, 8, 4, 4]);
    w.node(
        "residual",
        Op::Binary(BinaryKind::Add),
        &[c3, p1],
        &[sum],
        Activation::None,
    );
    let c4 = conv(
        &mut w,
        &mut rng,
        "c4",
        sum,
        [8, 8, 1, 1],
        Conv2d::default(),
        &[1, 8, 4, 4],
        enc(LayoutKind::NM { n: 2, m: 4 }, Storage::F32),
        Activation::Sigmoid,
    );
    // Up with a sparse transposed convolution, back down with a bilinear resize, then LRN.
    let ct_w = w
        .weight(
            "ct.w",
            &[8, 4, 2, 2],
            &rng.sparse_values(8 * 4 * 2 * 2, 0.6),
            enc(LayoutKind::Csr, Storage::F16),
        )
        .unwrap();
    let ct_b = w.constant("ct.b", &[4], &rng.values(4)).unwrap();
    let ct = w.tensor("ct", &[1, 4, 8, 8]);
    let up = ConvTranspose2d {
        stride: [2, 2],
        ..ConvTranspose2d::default()
    };
    w.node(
        "ct",
        Op::ConvTranspose2d(up),
        &[sum, ct_w, ct_b],
        &[ct],
        Activation::Relu,
    );
    let down = w.tensor("down", &[1, 4, 4, 4]);
    let resize = Resize {
        mode: ResizeMode::Linear,
        coordinate_transform: CoordinateTransform::HalfPixel,
        nearest_mode: NearestMode::RoundPreferFloor,
        scales: [0.5, 0.5],
    };
    w.node("down", Op::Resize(resize), &[ct], &[down], Activation::None);
    let lrn = w.tensor("lrn", &[1, 4, 4, 4]);
    let lrn_attrs = Lrn {
        size: 3,
        alpha: 1e-2,
        beta: 0.75,
        bias: 1.0,
    };
    w.node("lrn", Op::Lrn(lrn_attrs), &[down], &[lrn], Activation::None);

    let cat = w.tensor("cat", &[1, 20, 4, 4]);
    w.node(
        "cat",
        Op::Concat { axis: 1 },
        &[sum, c4, lrn],
        &[cat],
        Activation::None,
    );
    let gap = w.tensor("gap", &[1, 20, 1, 1]);
    w.node(
        "gap",
        Op::GlobalAveragePool,
        &[cat],
        &[gap],
        Activation::None,
    );
    let flat = w.tensor("flat", &[1, 20]);
    w.node("flat", Op::Reshape, &[gap], &[flat], Activation::None);
    let ln_scale = w.constant("ln.scale", &[20], &rng.values(20)).unwrap();
    let ln_bias = w.constant("ln.bias", &[20], &rng.values(20)).unwrap();
    let norm = w.tensor("norm", &[1, 20]);
    let ln = LayerNorm {
        axis: 1,
        epsilon: 1e-5,
    };
    w.node(
        "ln",
        Op::LayerNorm(ln),
        &[flat, ln_scale, ln_bias],
        &[norm],
        Activation::None,
    );
    let mut fc = rng.values(10 * 20);
    make_nm(&mut fc, 20, 2, 4);
    let fc_w = w
        .weight(
            "fc.w",
            &[10, 20],
            &fc,
            enc(LayoutKind::NM { n: 2, m: 4 }, Storage::I8),
        )
        .unwrap();
    let fc_b = w.constant("fc.b", &[10], &rng.values(10)).unwrap();
    let logits = w.tensor("logits", &[1, 10]);
    w.node(
        "fc",
        Op::Linear,
        &[norm, fc_w, fc_b],
        &[logits],
        Activation::None,
    );
    let probs = w.tensor("probs", &[1, 10]);
    w.node(
        "softmax",
        Op::Softmax { axis: 1 },
        &[logits],
        &[probs],
        Activation::None,
    );
    w.output(probs);
    w.finish().unwrap()
}
