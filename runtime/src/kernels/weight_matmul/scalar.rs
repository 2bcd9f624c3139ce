//! Portable implementation: one loop nest per sparsity layout, accumulating whole rows of
//! `x` into rows of `y` so the inner loop is a contiguous multiply-add.

use core::ops::Range;

use crate::graph::Activation;
use crate::ops::activation::apply;
use crate::weights::{Sparsity, WeightMatrix};

/// See [`super::weight_matmul`].
pub(super) fn weight_matmul(
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
    let x = &x[..w.cols * n];
    let y = &mut y[..rows.len() * n];
    for (i, r) in rows.clone().enumerate() {
        y[i * n..(i + 1) * n].fill(bias.map_or(0.0, |b| b[r]));
    }
    match w.sparsity {
        Sparsity::Dense => dense(w, rows, x, n, y),
        Sparsity::Csr { row_ptr, col_idx } => csr(w, rows, row_ptr, col_idx, x, n, y),
        Sparsity::Bsr {
            block,
            row_ptr,
            col_idx,
        } => bsr(w, rows, block, row_ptr, col_idx, x, n, y),
        Sparsity::NM {
            n: keep,
            m,
            indices,
        } => nm(w, rows, keep, m, indices, x, n, y),
    }
    apply(act, y);
}

/// `y_row += v * x[k]`, where `x[k]` is row `k` of the `[cols, n]` matrix `x`.
#[inline]
fn add_scaled_row(y_row: &mut [f32], v: f32, x: &[f32], k: usize) {
    let n = y_row.len();
    for (y, x) in y_row.iter_mut().zip(&x[k * n..(k + 1) * n]) {
        *y += v * x;
    }
}

fn dense(w: &WeightMatrix, rows: Range<usize>, x: &[f32], n: usize, y: &mut [f32]) {
    for (i, r) in rows.enumerate() {
        let y_row = &mut y[i * n..(i + 1) * n];
        for k in 0..w.cols {
            add_scaled_row(y_row, w.values.get(r * w.cols + k, r), x, k);
        }
    }
}

fn csr(
    w: &WeightMatrix,
    rows: Range<usize>,
    row_ptr: &[u32],
    col_idx: &[u32],
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    for (i, r) in rows.enumerate() {
        let y_row = &mut y[i * n..(i + 1) * n];
        let slots = row_ptr[r] as usize..row_ptr[r + 1] as usize;
        for (slot, &k) in slots.clone().zip(&col_idx[slots]) {
            add_scaled_row(y_row, w.values.get(slot, r), x, k as usize);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn bsr(
    w: &WeightMatrix,
    rows: Range<usize>,
    [bh, bw]: [usize; 2],
    row_ptr: &[u32],
    col_idx: &[u32],
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    for br in rows.start / bh..rows.end.div_ceil(bh) {
        let blocks = row_ptr[br] as usize..row_ptr[br + 1] as usize;
        for (b, &bc) in blocks.clone().zip(&col_idx[blocks]) {
            let first_col = bc as usize * bw;
            let width = bw.min(w.cols - first_col);
            // Rows of the block outside `rows` belong to another call (or lie below the
            // matrix); they are skipped.
            for bi in 0..bh {
                let r = br * bh + bi;
                if !rows.contains(&r) {
                    continue;
                }
                let i = r - rows.start;
                let y_row = &mut y[i * n..(i + 1) * n];
                for bj in 0..width {
                    let v = w.values.get((b * bh + bi) * bw + bj, r);
                    add_scaled_row(y_row, v, x, first_col + bj);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn nm(
    w: &WeightMatrix,
    rows: Range<usize>,
    keep: usize,
    m: usize,
    indices: &[u8],
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    let groups = w.cols.div_ceil(m);
    for (i, r) in rows.enumerate() {
        let y_row = &mut y[i * n..(i + 1) * n];
        for g in 0..groups {
            for s in 0..keep {
                let slot = (r * groups + g) * keep + s;
                let k = g * m + usize::from(indices[slot]);
                add_scaled_row(y_row, w.values.get(slot, r), x, k);
            }
        }
    }
}
