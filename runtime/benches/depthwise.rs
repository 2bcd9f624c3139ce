//! Depthwise 3x3 and 5x5 throughput on the plane sizes of ShuffleNet, MobileNet and the
//! PP-OCR classifier (single thread), in multiply-adds per second.
//!
//! `cargo bench -p lopper-runtime --bench depthwise` runs criterion, then prints a markdown
//! table of GMAC/s from one more timing pass; `-- --quick` prints only the table.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use lopper_runtime::format::encode::encode;
use lopper_runtime::graph::{Activation, Conv2d, LayoutKind, Storage};
use lopper_runtime::kernels::depthwise::{depthwise, Depthwise};

/// One depthwise layer: `channels` planes of `size x size`, square kernel and stride,
/// "same" padding.
struct Layer {
    name: &'static str,
    channels: usize,
    size: usize,
    kernel: usize,
    stride: usize,
}

const LAYERS: [Layer; 6] = [
    Layer {
        name: "ShuffleNet 136x28x28 3x3",
        channels: 136,
        size: 28,
        kernel: 3,
        stride: 1,
    },
    Layer {
        name: "ShuffleNet 544x7x7 3x3",
        channels: 544,
        size: 7,
        kernel: 3,
        stride: 1,
    },
    Layer {
        name: "ShuffleNet 112x56x56 3x3 s2",
        channels: 112,
        size: 56,
        kernel: 3,
        stride: 2,
    },
    Layer {
        name: "MobileNet 32x112x112 3x3",
        channels: 32,
        size: 112,
        kernel: 3,
        stride: 1,
    },
    Layer {
        name: "MobileNet 512x14x14 3x3",
        channels: 512,
        size: 14,
        kernel: 3,
        stride: 1,
    },
    Layer {
        name: "120x24x24 5x5 s2",
        channels: 120,
        size: 24,
        kernel: 5,
        stride: 2,
    },
];

/// Inputs, weights and output of one layer, and its multiply-adds.
struct Operands {
    attrs: Conv2d,
    x: Vec<f32>,
    weights: lopper_runtime::format::encode::EncodedWeights,
    x_shape: [usize; 4],
    y_shape: [usize; 4],
    kernel: usize,
    macs: u64,
}

impl Operands {
    fn new(l: &Layer) -> Self {
        let pad = l.kernel / 2;
        let out = (l.size + 2 * pad - l.kernel) / l.stride + 1;
        let taps = l.kernel * l.kernel;
        let x = (0..l.channels * l.size * l.size)
            .map(|i| (i % 13) as f32 * 0.1 - 0.6)
            .collect();
        let w: Vec<f32> = (0..l.channels * taps)
            .map(|i| (i % 7) as f32 * 0.1 - 0.3)
            .collect();
        Operands {
            attrs: Conv2d {
                stride: [l.stride; 2],
                dilation: [1; 2],
                pads: [pad; 4],
                groups: l.channels,
            },
            x,
            weights: encode(&w, l.channels, taps, LayoutKind::Dense, Storage::F32).unwrap(),
            x_shape: [1, l.channels, l.size, l.size],
            y_shape: [1, l.channels, out, out],
            kernel: l.kernel,
            macs: (l.channels * out * out * taps) as u64,
        }
    }

    fn run(&self, y: &mut [f32]) {
        let view = self.weights.view();
        let conv = Depthwise {
            attrs: &self.attrs,
            x: &self.x,
            x_shape: self.x_shape,
            w: &view,
            kernel: [self.kernel; 2],
            bias: None,
            act: Activation::Relu,
            y_shape: self.y_shape,
        };
        depthwise(&conv, y);
    }
}

/// Best time of one run over about 0.3 s, in seconds.
fn best_time(op: &Operands, y: &mut [f32]) -> f64 {
    let mut best = f64::MAX;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        let t = Instant::now();
        op.run(black_box(&mut *y));
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if !quick {
        let mut c = Criterion::default().configure_from_args();
        let mut group = c.benchmark_group("depthwise");
        for l in &LAYERS {
            let op = Operands::new(l);
            let mut y = vec![0.0; op.y_shape.iter().product()];
            group.throughput(Throughput::Elements(op.macs));
            group.bench_function(BenchmarkId::from_parameter(l.name), |b| {
                b.iter(|| op.run(&mut y))
            });
        }
        group.finish();
        c.final_summary();
    }
    println!("\n| layer | ms | GMAC/s |\n|---|---:|---:|");
    for l in &LAYERS {
        let op = Operands::new(l);
        let mut y = vec![0.0; op.y_shape.iter().product()];
        let t = best_time(&op, &mut y);
        println!(
            "| {} | {:.4} | {:.1} |",
            l.name,
            t * 1e3,
            op.macs as f64 / t / 1e9
        );
    }
}
