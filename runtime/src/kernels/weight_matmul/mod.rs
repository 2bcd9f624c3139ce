//! The weight x activation product behind Conv2d and Linear, for every sparsity layout and
//! storage. One signature here; implementations sit side by side: `scalar` (portable, the
//! reference the others are tested against) and the vector kernel of `simd`, instantiated
//! for AVX2 + FMA in `x86` and for NEON in `neon`.

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon;
mod scalar;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
mod simd;
#[cfg(target_arch = "x86_64")]
mod x86;

use core::ops::Range;

use super::parallel::Parallel;
use crate::graph::Activation;
use crate::weights::{Sparsity, WeightMatrix};

/// Below this many multiply-adds (of stored weights) a call stays on one thread: waking the
/// workers costs tens of microseconds. On the idle 2-core dev machine a 1024x1000 fully
/// connected layer (1M) ran 0.72x as fast on two threads as on one, while 1x1 layers of
/// 25-51M scaled 1.9x (`cargo bench -p lopper-runtime --bench weight_matmul`). Whole
/// 90%-sparse ResNet50 ran 0.84x on two threads with a 2M bound and 0.94x with this one.
const PARALLEL_MIN_WORK: usize = 1 << 23;

/// `y = act(W[rows] x + bias[rows])` for a slice of the matrix's rows.
///
/// `x` is `[w.cols, n]` row-major and `y` is `[rows.len(), n]` row-major:
/// `y[(r - rows.start) * n + j] = act(bias[r] + sum_k W[r, k] * x[k * n + j])`. The bias is
/// indexed by absolute row, so callers can split the rows (per convolution group, per
/// thread) without slicing it. Never allocates.
///
/// Panics if `rows` is not inside the matrix or a slice is too short.
pub fn weight_matmul(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    assert!(
        rows.start <= rows.end && rows.end <= w.rows,
        "rows outside the matrix"
    );
    assert!(x.len() >= w.cols * n, "x shorter than cols * n");
    assert!(y.len() >= rows.len() * n, "y shorter than rows * n");
    #[cfg(target_arch = "x86_64")]
    if x86::weight_matmul(w, rows.clone(), x, n, bias, act, y) {
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if neon::weight_matmul(w, rows.clone(), x, n, bias, act, y) {
        return;
    }
    scalar::weight_matmul(w, rows, x, n, bias, act, y);
}

/// [`weight_matmul`] with `rows` split across `par`'s threads, in runs of whole dense tiles
/// and BSR blocks. Small products stay on the calling thread.
#[allow(clippy::too_many_arguments)]
pub fn weight_matmul_parallel(
    par: Parallel,
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    let threads = par.threads();
    // Multiply-adds actually done: stored values (not the dense size) of these rows.
    let stored_per_row = w.values.len() / w.rows.max(1);
    let work = rows.len().saturating_mul(stored_per_row).saturating_mul(n);
    if threads == 1 || work < PARALLEL_MIN_WORK {
        weight_matmul(w, rows, x, n, bias, act, y);
        return;
    }
    // 24 is a multiple of every dense tile height (6 and 8).
    let align = match w.sparsity {
        Sparsity::Bsr { block: [bh, _], .. } => 24 * bh / gcd(24, bh),
        _ => 24,
    };
    let chunk = rows.len().div_ceil(threads).next_multiple_of(align);
    let y = &mut y[..rows.len() * n];
    let out = SharedRows(y.as_mut_ptr());
    par.run(&|part| {
        let start = rows.start + (part * chunk).min(rows.len());
        let end = (start + chunk).min(rows.end);
        // SAFETY: parts get disjoint row ranges inside `rows`, so their slices of `y` (which
        // holds `rows.len() * n` floats and outlives `run`) do not overlap.
        let y = unsafe {
            core::slice::from_raw_parts_mut(
                out.get().add((start - rows.start) * n),
                (end - start) * n,
            )
        };
        weight_matmul(w, start..end, x, n, bias, act, y);
    });
}

/// The output rows, shared by the parts that write disjoint ranges of them.
struct SharedRows(*mut f32);

// SAFETY: each part writes only its own rows (see `weight_matmul_parallel`).
unsafe impl Sync for SharedRows {}

impl SharedRows {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode::tests::{all_encodings, sparse_matrix};
    use crate::format::encode::{decode_dense, encode};
    use crate::graph::{LayoutKind, Storage};
    use crate::ops::activation::apply_one;
    use alloc::vec;
    use alloc::vec::Vec;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn two_by_three_by_hand() {
        // W = [1 2 0; 0 -1 1], x = [1 2; 3 -4; 5 6], bias = [0.5, -3].
        // W x + b = [7.5 -5.5; -1 7], Relu -> [7.5 0; 0 7].
        let w = [1.0, 2.0, 0.0, 0.0, -1.0, 1.0];
        let x = [1.0, 2.0, 3.0, -4.0, 5.0, 6.0];
        let bias = [0.5, -3.0];
        let e = encode(&w, 2, 3, LayoutKind::Csr, Storage::F32).unwrap();
        let mut y = [f32::NAN; 4];
        weight_matmul(
            &e.view(),
            0..2,
            &x,
            2,
            Some(&bias),
            Activation::Relu,
            &mut y,
        );
        assert_eq!(y, [7.5, 0.0, 0.0, 7.0]);
        let mut y = [f32::NAN; 2];
        weight_matmul(&e.view(), 1..2, &x, 2, None, Activation::None, &mut y);
        assert_eq!(y, [2.0, 10.0]);
    }

    /// `act(bias[r] + sum_k w[r, k] x[k, j])` for every row, straight from the definition.
    fn reference(
        w: &[f32],
        rows: usize,
        cols: usize,
        x: &[f32],
        n: usize,
        bias: &[f32],
    ) -> Vec<f32> {
        let act = Activation::LeakyRelu { alpha: 0.1 };
        let mut y = vec![0.0; rows * n];
        for r in 0..rows {
            for j in 0..n {
                let sum: f32 = (0..cols).map(|k| w[r * cols + k] * x[k * n + j]).sum();
                y[r * n + j] = apply_one(act, bias[r] + sum);
            }
        }
        y
    }

    #[test]
    fn every_layout_and_storage_matches_the_definition() {
        let mut rng = SmallRng::seed_from_u64(11);
        let act = Activation::LeakyRelu { alpha: 0.1 };
        for (rows, cols, n) in [(7, 10, 3), (9, 6, 1), (4, 8, 5), (1, 3, 2)] {
            let dense = sparse_matrix(&mut rng, rows, cols);
            let x: Vec<f32> = (0..cols * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let bias: Vec<f32> = (0..rows).map(|_| rng.gen_range(-1.0..1.0)).collect();
            for (layout, storage, e) in all_encodings(&dense, rows, cols) {
                let w = e.view();
                let expected = reference(&decode_dense(&w), rows, cols, &x, n, &bias);
                for range in [
                    0..rows,
                    1..rows,
                    0..rows / 2,
                    rows / 2..rows,
                    rows - 1..rows,
                ] {
                    let mut y = vec![f32::NAN; range.len() * n];
                    weight_matmul(&w, range.clone(), &x, n, Some(&bias), act, &mut y);
                    let want = &expected[range.start * n..range.end * n];
                    for (i, (a, b)) in y.iter().zip(want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5,
                            "{layout:?} {storage:?} {rows}x{cols} n={n} rows {range:?} [{i}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// The vector kernel of this machine; `false` when it has none or declines the shape.
    #[allow(unreachable_code)]
    fn vector(
        w: &WeightMatrix,
        rows: Range<usize>,
        x: &[f32],
        n: usize,
        bias: Option<&[f32]>,
        act: Activation,
        y: &mut [f32],
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        return x86::weight_matmul(w, rows, x, n, bias, act, y);
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        return neon::weight_matmul(w, rows, x, n, bias, act, y);
        false
    }

    #[test]
    fn vector_kernel_matches_scalar_over_odd_shapes_layouts_and_storages() {
        let mut rng = SmallRng::seed_from_u64(23);
        let acts = [
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::None,
            Activation::HardSwish,
            Activation::Sigmoid,
            Activation::Clip {
                min: -0.5,
                max: 0.75,
            },
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Activation::Relu,
        ];
        // Rows around the tile heights (6 and 8), block heights and the 120-row dense
        // block, columns across the 256-entry packing block, `n` = 1, narrower than a
        // vector, one vector, tails.
        let shapes = [
            (13, 10, 1),
            (9, 7, 3),
            (17, 20, 4),
            (8, 12, 8),
            (11, 9, 9),
            (7, 33, 17),
            (25, 18, 37),
            (6, 300, 13),
            (14, 520, 1),
            (3, 5, 50),
            (16, 64, 24),
            (127, 260, 35),
        ];
        let mut vectorised = 0;
        for (case, &(rows, cols, n)) in shapes.iter().enumerate() {
            let dense = sparse_matrix(&mut rng, rows, cols);
            let x: Vec<f32> = (0..cols * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let bias: Vec<f32> = (0..rows).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let act = acts[case % acts.len()];
            for (layout, storage, e) in all_encodings(&dense, rows, cols) {
                let w = e.view();
                let stored = decode_dense(&w);
                for (range, bias) in [
                    (0..rows, Some(&bias[..])),
                    (1..rows - 1, Some(&bias[..])),
                    (rows / 2..rows, None),
                ] {
                    let len = range.len() * n;
                    let mut want = vec![f32::NAN; len];
                    scalar::weight_matmul(&w, range.clone(), &x, n, bias, act, &mut want);
                    let mut got = vec![f32::NAN; len];
                    if !vector(&w, range.clone(), &x, n, bias, act, &mut got) {
                        continue;
                    }
                    vectorised += 1;
                    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                        let (r, j) = (range.start + i / n, i % n);
                        // Summation order differs: allow rounding relative to the terms.
                        let scale: f32 = (0..cols)
                            .map(|k| (stored[r * cols + k] * x[k * n + j]).abs())
                            .sum::<f32>()
                            + bias.map_or(0.0, |b| b[r].abs());
                        assert!(
                            (a - b).abs() <= 1e-5 * scale + 1e-6,
                            "{layout:?} {storage:?} {rows}x{cols} n={n} {act:?} rows {range:?} \
                             [{r}, {j}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
        let has_vectors = cfg!(any(
            target_arch = "x86_64",
            all(target_arch = "aarch64", target_feature = "neon")
        ));
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        let has_vectors = has_vectors && x86::Avx2::detect().is_some();
        assert!(
            !has_vectors || vectorised > 0,
            "the vector kernel never ran"
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn threads_split_rows_without_changing_a_bit() {
        use crate::kernels::parallel::ThreadPool;
        let mut rng = SmallRng::seed_from_u64(31);
        let pool = ThreadPool::new(3).unwrap();
        // Enough columns that the product is split rather than run on one thread.
        let (rows, cols) = (101, 64);
        let n = 4 * PARALLEL_MIN_WORK / (rows * cols) + 1;
        let dense = sparse_matrix(&mut rng, rows, cols);
        let x: Vec<f32> = (0..cols * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let bias: Vec<f32> = (0..rows).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let act = Activation::Relu;
        for (layout, storage, e) in all_encodings(&dense, rows, cols) {
            let w = e.view();
            for range in [0..rows, 5..rows - 3] {
                let stored = w.values.len() / rows * range.len();
                assert!(stored * n >= PARALLEL_MIN_WORK, "{layout:?}: split");
                let mut serial = vec![f32::NAN; range.len() * n];
                weight_matmul(&w, range.clone(), &x, n, Some(&bias), act, &mut serial);
                let mut parallel = vec![f32::NAN; range.len() * n];
                let par = Parallel::on(&pool);
                weight_matmul_parallel(par, &w, range, &x, n, Some(&bias), act, &mut parallel);
                assert_eq!(serial, parallel, "{layout:?} {storage:?}");
            }
        }
    }

    #[test]
    fn empty_row_range_writes_nothing() {
        let e = encode(&[1.0, 2.0], 1, 2, LayoutKind::Dense, Storage::F32).unwrap();
        let mut y = [5.0];
        weight_matmul(
            &e.view(),
            1..1,
            &[1.0, 1.0],
            1,
            None,
            Activation::None,
            &mut y,
        );
        assert_eq!(y, [5.0]);
    }
}
