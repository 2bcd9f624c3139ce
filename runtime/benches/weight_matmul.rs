//! `weight_matmul` throughput: MobileNet-v1-like 1x1 layers and a fully connected layer,
//! dense against each sparse layout at several sparsities, and dense GEMM on large shapes
//! against this CPU's measured FMA peak (single thread).
//!
//! `cargo bench -p lopper-runtime --bench weight_matmul` runs the criterion benchmarks
//! (throughput in elements/s = dense-equivalent FLOP/s), then prints markdown tables of
//! effective GFLOP/s and speed-up over dense from one more timing pass in the same process.
//! `-- --quick` skips criterion and prints only the tables.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use lopper_runtime::format::encode::{encode, EncodedWeights};
use lopper_runtime::graph::{Activation, LayoutKind, Storage};
use lopper_runtime::kernels::parallel::{Parallel, ThreadPool};
use lopper_runtime::kernels::weight_matmul::weight_matmul_parallel;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A layer: `rows x cols` weights times `cols x n` activations.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    rows: usize,
    cols: usize,
    n: usize,
}

impl Shape {
    /// Multiply-adds of the dense product, times two.
    fn flops(&self) -> u64 {
        2 * (self.rows * self.cols * self.n) as u64
    }
}

const LAYERS: [Shape; 3] = [
    Shape {
        name: "1x1 512->512 14x14",
        rows: 512,
        cols: 512,
        n: 196,
    },
    Shape {
        name: "1x1 1024->1024 7x7",
        rows: 1024,
        cols: 1024,
        n: 49,
    },
    Shape {
        name: "FC 1024->1000",
        rows: 1000,
        cols: 1024,
        n: 1,
    },
];

const GEMMS: [Shape; 3] = [
    Shape {
        name: "GEMM 1024x1024x1024",
        rows: 1024,
        cols: 1024,
        n: 1024,
    },
    Shape {
        name: "GEMM 512x4608x196 (3x3 conv)",
        rows: 512,
        cols: 4608,
        n: 196,
    },
    Shape {
        name: "GEMM 768x768x768",
        rows: 768,
        cols: 768,
        n: 768,
    },
];

const SPARSITIES: [f64; 5] = [0.5, 0.7, 0.8, 0.9, 0.95];

/// How the zeros of a pruned matrix are laid out, and the layout that stores them.
#[derive(Clone, Copy)]
enum Pattern {
    Dense,
    /// Unstructured zeros, stored CSR.
    Csr,
    /// Zeroed `rows x 1` blocks, stored BSR.
    Blocks(usize),
    /// 2 of every 4 along a row (50%), stored N:M.
    TwoFour,
}

impl Pattern {
    fn label(self) -> String {
        match self {
            Pattern::Dense => "dense".into(),
            Pattern::Csr => "CSR".into(),
            Pattern::Blocks(r) => format!("BSR {r}x1"),
            Pattern::TwoFour => "2:4".into(),
        }
    }

    fn layout(self) -> LayoutKind {
        match self {
            Pattern::Dense => LayoutKind::Dense,
            Pattern::Csr => LayoutKind::Csr,
            Pattern::Blocks(r) => LayoutKind::Bsr { rows: r, cols: 1 },
            Pattern::TwoFour => LayoutKind::NM { n: 2, m: 4 },
        }
    }

    /// A random `rows x cols` matrix pruned to `sparsity` in this pattern.
    fn matrix(self, rng: &mut SmallRng, s: Shape, sparsity: f64) -> Vec<f32> {
        let mut w: Vec<f32> = (0..s.rows * s.cols)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect();
        match self {
            Pattern::Dense => {}
            Pattern::Csr => w
                .iter_mut()
                .filter(|_| rng.gen_bool(sparsity))
                .for_each(|v| *v = 0.0),
            Pattern::Blocks(h) => {
                for block_row in 0..s.rows.div_ceil(h) {
                    for c in 0..s.cols {
                        if rng.gen_bool(sparsity) {
                            for r in block_row * h..((block_row + 1) * h).min(s.rows) {
                                w[r * s.cols + c] = 0.0;
                            }
                        }
                    }
                }
            }
            Pattern::TwoFour => {
                for group in w.chunks_mut(4) {
                    group[0] = 0.0;
                    group[2] = 0.0;
                }
            }
        }
        w
    }
}

/// One kernel configuration, ready to run.
struct Case {
    label: String,
    shape: Shape,
    weights: EncodedWeights,
    x: Vec<f32>,
    bias: Vec<f32>,
    y: Vec<f32>,
}

impl Case {
    fn new(rng: &mut SmallRng, shape: Shape, pattern: Pattern, sparsity: f64) -> Case {
        let dense = pattern.matrix(rng, shape, sparsity);
        let weights = encode(
            &dense,
            shape.rows,
            shape.cols,
            pattern.layout(),
            Storage::F32,
        )
        .expect("encodable");
        let label = match pattern {
            Pattern::Dense => pattern.label(),
            _ => format!("{} {:.0}%", pattern.label(), sparsity * 100.0),
        };
        Case {
            label,
            shape,
            weights,
            x: (0..shape.cols * shape.n)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect(),
            bias: (0..shape.rows).map(|_| rng.gen_range(-1.0..1.0)).collect(),
            y: vec![0.0; shape.rows * shape.n],
        }
    }

    fn run(&mut self) {
        self.run_on(Parallel::SERIAL);
    }

    fn run_on(&mut self, par: Parallel) {
        weight_matmul_parallel(
            par,
            &self.weights.view(),
            0..self.shape.rows,
            black_box(&self.x),
            self.shape.n,
            Some(&self.bias),
            Activation::Relu,
            &mut self.y,
        );
        black_box(&self.y);
    }

    /// Median seconds per run over a few timed batches, on one thread.
    fn time(&mut self) -> f64 {
        self.time_on(Parallel::SERIAL)
    }

    /// Median seconds per run over a few timed batches, with `par`'s threads.
    fn time_on(&mut self, par: Parallel) -> f64 {
        let start = Instant::now();
        let mut iters = 0u32;
        while start.elapsed() < Duration::from_millis(50) || iters < 3 {
            self.run_on(par);
            iters += 1;
        }
        let batch = (iters / 5).max(1);
        let mut samples: Vec<f64> = (0..11)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..batch {
                    self.run_on(par);
                }
                t.elapsed().as_secs_f64() / f64::from(batch)
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    }
}

/// Every configuration of one layer: dense first, then each pattern at each sparsity.
fn layer_cases(rng: &mut SmallRng, shape: Shape) -> Vec<Case> {
    let mut cases = vec![Case::new(rng, shape, Pattern::Dense, 0.0)];
    cases.push(Case::new(rng, shape, Pattern::TwoFour, 0.5));
    for &sparsity in &SPARSITIES {
        for pattern in [Pattern::Csr, Pattern::Blocks(4), Pattern::Blocks(8)] {
            cases.push(Case::new(rng, shape, pattern, sparsity));
        }
    }
    cases
}

fn criterion_benches(c: &mut Criterion, rng: &mut SmallRng) {
    for shape in LAYERS.iter().chain(&GEMMS).copied() {
        let mut group = c.benchmark_group(shape.name);
        group
            .throughput(Throughput::Elements(shape.flops()))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        let cases = if GEMMS.iter().any(|g| g.name == shape.name) {
            vec![Case::new(rng, shape, Pattern::Dense, 0.0)]
        } else {
            layer_cases(rng, shape)
        };
        for mut case in cases {
            group.bench_function(BenchmarkId::from_parameter(&case.label), |b| {
                b.iter(|| case.run())
            });
        }
        group.finish();
    }
}

/// Single-thread FMA throughput of the instruction set the kernels use, in GFLOP/s:
/// independent multiply-add chains, enough to cover the FMA latency on every port. The
/// best of five runs, so a clock still ramping up does not lower it.
fn fma_peak() -> (&'static str, f64) {
    let iters = 20_000_000u64;
    let mut best = ("scalar", 0.0f64);
    for _ in 0..5 {
        let (isa, flops_per_iter, secs) = fma_loop(iters);
        best = (isa, best.1.max(flops_per_iter * iters as f64 / secs / 1e9));
    }
    best
}

#[cfg(target_arch = "x86_64")]
fn fma_loop(iters: u64) -> (&'static str, f64, f64) {
    use std::arch::x86_64::*;

    /// 12 chains of 8-lane FMAs.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn chains(iters: u64) -> f32 {
        let mut acc = [_mm256_set1_ps(0.0); 12];
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        // Every chain feeds the result, so none is optimised away.
        let mut out = [0.0f32; 8];
        let mut sum = 0.0;
        for v in acc {
            _mm256_storeu_ps(out.as_mut_ptr(), v);
            sum += out.iter().sum::<f32>();
        }
        sum
    }

    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return ("scalar", 1.0, f64::INFINITY);
    }
    let start = Instant::now();
    // SAFETY: AVX2 and FMA were detected above.
    black_box(unsafe { chains(black_box(iters)) });
    (
        "AVX2+FMA",
        (12 * 8 * 2) as f64,
        start.elapsed().as_secs_f64(),
    )
}

#[cfg(target_arch = "aarch64")]
fn fma_loop(iters: u64) -> (&'static str, f64, f64) {
    use std::arch::aarch64::*;
    let start = Instant::now();
    // SAFETY: NEON is part of the aarch64 base instruction set.
    let sum = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 24];
        let a = vdupq_n_f32(0.999_999);
        let b = vdupq_n_f32(1e-7);
        for _ in 0..black_box(iters) {
            for v in acc.iter_mut() {
                *v = vfmaq_f32(b, *v, a);
            }
        }
        acc.iter().map(|&v| vaddvq_f32(v)).sum::<f32>()
    };
    black_box(sum);
    ("NEON", (24 * 4 * 2) as f64, start.elapsed().as_secs_f64())
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn fma_loop(_: u64) -> (&'static str, f64, f64) {
    ("scalar", 1.0, f64::INFINITY)
}

/// Markdown tables from one timing pass: every layer's configurations with effective
/// GFLOP/s and speed-up over dense, then the large dense GEMMs against the FMA peak.
fn summary(rng: &mut SmallRng) {
    let (isa, peak) = fma_peak();
    for shape in LAYERS {
        println!("\n### {} (n = {})\n", shape.name, shape.n);
        println!("| weights | ms | effective GFLOP/s | speed-up vs dense |");
        println!("|---|---:|---:|---:|");
        let mut dense_secs = None;
        for mut case in layer_cases(rng, shape) {
            let secs = case.time();
            let dense = *dense_secs.get_or_insert(secs);
            println!(
                "| {} | {:.3} | {:.1} | {:.2}x |",
                case.label,
                secs * 1e3,
                shape.flops() as f64 / secs / 1e9,
                dense / secs
            );
        }
    }
    println!("\n### Dense GEMM against the measured FMA peak ({isa}: {peak:.1} GFLOP/s)\n");
    println!("| shape | ms | GFLOP/s | of peak |");
    println!("|---|---:|---:|---:|");
    for shape in GEMMS {
        let secs = Case::new(rng, shape, Pattern::Dense, 0.0).time();
        let gflops = shape.flops() as f64 / secs / 1e9;
        println!(
            "| {} | {:.2} | {:.1} | {:.0}% |",
            shape.name,
            secs * 1e3,
            gflops,
            100.0 * gflops / peak
        );
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads > 1 {
        let pool = ThreadPool::new(threads).expect("threads");
        println!("\n### Threads: 1 against {threads} (rows split across the pool)\n");
        println!("| layer | weights | 1 thread ms | {threads} threads ms | scaling |");
        println!("|---|---|---:|---:|---:|");
        for shape in LAYERS {
            for (pattern, sparsity) in [(Pattern::Dense, 0.0), (Pattern::Blocks(4), 0.9)] {
                let mut case = Case::new(rng, shape, pattern, sparsity);
                let one = case.time();
                let many = case.time_on(Parallel::on(&pool));
                println!(
                    "| {} | {} | {:.3} | {:.3} | {:.2}x |",
                    shape.name,
                    case.label,
                    one * 1e3,
                    many * 1e3,
                    one / many
                );
            }
        }
    }
    // The peak again, after the kernels: the clock may have moved.
    println!("\nFMA peak after the run: {:.1} GFLOP/s", fma_peak().1);
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut rng = SmallRng::seed_from_u64(7);
    if !quick {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &mut rng);
        c.final_summary();
    }
    summary(&mut rng);
}
