//! Fully connected layer: `y = act(x W^T + b)` over a batch of rows.

use crate::graph::Activation;
use crate::kernels::parallel::Parallel;
use crate::kernels::weight_matmul::weight_matmul_parallel;
use crate::weights::WeightMatrix;

/// `y_b = act(W x_b + bias)` for each of `batch` rows: `x` is `[batch, w.cols]`, `y` is
/// `[batch, w.rows]`. Each input row is a one-column matrix for `weight_matmul`, so no
/// transposition (and no scratch) is needed. Rows are split across `par`'s threads.
pub fn linear(
    par: Parallel,
    x: &[f32],
    batch: usize,
    w: &WeightMatrix,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    for b in 0..batch {
        let x_row = &x[b * w.cols..(b + 1) * w.cols];
        let y_row = &mut y[b * w.rows..(b + 1) * w.rows];
        weight_matmul_parallel(par, w, 0..w.rows, x_row, 1, bias, act, y_row);
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
        // W = [1 2 3; -1 0 1], bias = [0.5, -0.5].
        // x_0 = [1 1 1]  -> [6 0] + b = [6.5 -0.5]
        // x_1 = [2 0 -1] -> [-1 -3] + b = [-0.5 -3.5]
        let w = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        let x = [1.0, 1.0, 1.0, 2.0, 0.0, -1.0];
        let bias = [0.5, -0.5];
        let e = encode(&w, 2, 3, LayoutKind::Dense, Storage::F32).unwrap();
        let mut y = [f32::NAN; 4];
        linear(
            Parallel::SERIAL,
            &x,
            2,
            &e.view(),
            Some(&bias),
            Activation::None,
            &mut y,
        );
        assert_eq!(y, [6.5, -0.5, -0.5, -3.5]);
        linear(
            Parallel::SERIAL,
            &x,
            2,
            &e.view(),
            Some(&bias),
            Activation::Relu,
            &mut y,
        );
        assert_eq!(y, [6.5, 0.0, 0.0, 0.0]);
        linear(
            Parallel::SERIAL,
            &x,
            2,
            &e.view(),
            None,
            Activation::None,
            &mut y,
        );
        assert_eq!(y, [6.0, 0.0, -1.0, -3.0]);
    }

    #[test]
    fn every_layout_and_storage_matches_the_definition() {
        let mut rng = SmallRng::seed_from_u64(5);
        let act = Activation::HardSwish;
        let (batch, rows, cols) = (3, 9, 14);
        let dense = sparse_matrix(&mut rng, rows, cols);
        let x: Vec<f32> = (0..batch * cols)
            .map(|_| rng.gen_range(-2.0..2.0))
            .collect();
        let bias: Vec<f32> = (0..rows).map(|_| rng.gen_range(-1.0..1.0)).collect();
        for (layout, storage, e) in all_encodings(&dense, rows, cols) {
            let w = decode_dense(&e.view());
            let mut y = vec![f32::NAN; batch * rows];
            linear(
                Parallel::SERIAL,
                &x,
                batch,
                &e.view(),
                Some(&bias),
                act,
                &mut y,
            );
            for b in 0..batch {
                for r in 0..rows {
                    let sum: f32 = (0..cols).map(|k| w[r * cols + k] * x[b * cols + k]).sum();
                    let want = apply_one(act, sum + bias[r]);
                    let got = y[b * rows + r];
                    assert!(
                        (got - want).abs() <= 1e-5,
                        "{layout:?} {storage:?} batch {b} row {r}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
