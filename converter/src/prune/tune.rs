//! Layout choice by measurement (`--tune`): each candidate layout of one layer's weight
//! matrix is encoded and its product timed with the runtime's kernel on this machine, and
//! the fastest is kept. Dense is always a candidate, so a tuned layer is never stored in a
//! layout that ran slower than dense here.

use std::time::Instant;

use lopper_runtime::format::encode::encode;
use lopper_runtime::graph::{Activation, LayoutKind, Storage};
use lopper_runtime::kernels::weight_matmul::weight_matmul;

use super::layout::is_two_four;

/// Timed runs per candidate (the fastest counts).
const RUNS: usize = 7;

/// One candidate and its measured time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// The layout.
    pub layout: LayoutKind,
    /// Fastest of [`RUNS`] products, milliseconds.
    pub ms: f64,
}

/// The layouts worth timing for a matrix with zeros: dense, CSR, BSR 4x1 and 8x1, and 2:4
/// when every group of 4 columns holds at most 2 nonzeros.
fn candidates(weights: &[f32], cols: usize) -> Vec<LayoutKind> {
    let mut out = vec![LayoutKind::Dense];
    if weights.contains(&0.0) {
        out.extend([
            LayoutKind::Csr,
            LayoutKind::Bsr { rows: 4, cols: 1 },
            LayoutKind::Bsr { rows: 8, cols: 1 },
        ]);
        if cols % 4 == 0 && is_two_four(weights, cols) {
            out.push(LayoutKind::NM { n: 2, m: 4 });
        }
    }
    out
}

/// Times `y = W x` for the row-major `rows x cols` matrix `weights` against `n` columns of
/// activations in every candidate layout with `storage`; returns the fastest first, then
/// all timings. Layouts the encoder refuses are skipped (dense never is).
pub fn fastest_layout(
    weights: &[f32],
    rows: usize,
    cols: usize,
    n: usize,
    storage: Storage,
) -> (LayoutKind, Vec<Timing>) {
    let n = n.max(1);
    let x: Vec<f32> = (0..cols * n)
        .map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0)
        .collect();
    let mut y = vec![0f32; rows * n];
    let mut timings = Vec::new();
    for layout in candidates(weights, cols) {
        let Ok(encoded) = encode(weights, rows, cols, layout, storage) else {
            continue;
        };
        let w = encoded.view();
        weight_matmul(&w, 0..rows, &x, n, None, Activation::None, &mut y);
        let ms = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                weight_matmul(&w, 0..rows, &x, n, None, Activation::None, &mut y);
                start.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min);
        timings.push(Timing { layout, ms });
    }
    let best = timings
        .iter()
        .min_by(|a, b| a.ms.total_cmp(&b.ms))
        .map_or(LayoutKind::Dense, |t| t.layout);
    (best, timings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_zeros() {
        assert_eq!(candidates(&[1.0; 8], 4), [LayoutKind::Dense]);
        let two_four = [1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 4.0];
        assert_eq!(candidates(&two_four, 4).len(), 5);
        let three = [1.0, 1.0, 2.0, 0.0, 0.0, 3.0, 0.0, 4.0];
        assert_eq!(candidates(&three, 4).len(), 4);
    }

    #[test]
    fn every_candidate_is_timed_and_the_fastest_wins() {
        // 95% of 4x1 blocks zero: whatever this machine's speeds, a valid choice is made
        // among the timed candidates and dense is always among them.
        let (rows, cols) = (64, 64);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| if (i % cols) % 20 == 0 { 1.0 } else { 0.0 })
            .collect();
        let (best, timings) = fastest_layout(&w, rows, cols, 49, Storage::F32);
        assert!(timings.iter().any(|t| t.layout == LayoutKind::Dense));
        assert_eq!(timings.len(), 5);
        let fastest = timings.iter().map(|t| t.ms).fold(f64::INFINITY, f64::min);
        assert_eq!(
            timings.iter().find(|t| t.layout == best).unwrap().ms,
            fastest
        );
        assert!(timings.iter().all(|t| t.ms.is_finite() && t.ms >= 0.0));
    }
}
