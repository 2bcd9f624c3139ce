//! Which layout a pruned weight matrix is stored in: sparse where sparse is sparse enough to
//! win, dense otherwise.
//!
//! Each layout's cost is its stored bytes with f32 values, weighted by how much slower its
//! kernel streams those bytes than the dense kernel: dense `4` per position; CSR `8` per
//! nonzero (value and 4-byte column), weight [`CSR_WEIGHT`] for its per-entry indirection;
//! BSR 4x1 `20` per nonzero block of 4 rows x 1 column (16 value bytes and a 4-byte block
//! column), weight 1 (whole blocks, SIMD-friendly); N:M 2:4 `2.5` per position (half the
//! values and a 1-byte index each), weight 1, possible when every group of 4 consecutive
//! columns of every row holds at most 2 nonzeros and the columns are a multiple of 4.
//! CSR and BSR are considered only when they store at most [`IRREGULAR_MAX_BYTES`] of the
//! dense bytes (their kernels skip work only in proportion to the zeros); N:M, a regular
//! pattern with its own kernel, is always considered. The cheapest wins; a matrix without
//! zeros stays dense.

use lopper_runtime::graph::LayoutKind;

/// CSR's cost per stored byte relative to dense and block layouts.
pub const CSR_WEIGHT: f64 = 1.25;

/// Largest fraction of the dense bytes at which CSR or BSR is considered.
pub const IRREGULAR_MAX_BYTES: f64 = 0.6;

/// Picks the layout of the row-major `rows x cols` matrix `weights` (see the module
/// documentation for the model). Dense when `weights` is empty or does not hold
/// `rows * cols` values.
pub fn choose_layout(weights: &[f32], rows: usize, cols: usize) -> LayoutKind {
    if weights.is_empty() || rows.checked_mul(cols) != Some(weights.len()) {
        return LayoutKind::Dense;
    }
    let nonzeros = weights.iter().filter(|&&w| w != 0.0).count();
    if nonzeros == weights.len() {
        return LayoutKind::Dense;
    }
    let dense = 4.0 * weights.len() as f64;
    let nonzero_blocks = nonzero_blocks(weights, rows, cols) as f64;
    let mut best = (LayoutKind::Dense, dense);
    let mut consider = |layout: LayoutKind, bytes: f64, weight: f64, irregular: bool| {
        if (!irregular || bytes <= IRREGULAR_MAX_BYTES * dense) && bytes * weight < best.1 {
            best = (layout, bytes * weight);
        }
    };
    consider(
        LayoutKind::Bsr { rows: 4, cols: 1 },
        20.0 * nonzero_blocks,
        1.0,
        true,
    );
    consider(LayoutKind::Csr, 8.0 * nonzeros as f64, CSR_WEIGHT, true);
    if cols % 4 == 0 && is_two_four(weights, cols) {
        consider(
            LayoutKind::NM { n: 2, m: 4 },
            2.5 * weights.len() as f64,
            1.0,
            false,
        );
    }
    best.0
}

/// Number of 4x1 blocks (4 rows of one column; the last block row may be shorter) that
/// hold a nonzero.
fn nonzero_blocks(weights: &[f32], rows: usize, cols: usize) -> usize {
    (0..rows.div_ceil(4))
        .flat_map(|br| (0..cols).map(move |c| (br, c)))
        .filter(|&(br, c)| (br * 4..(br * 4 + 4).min(rows)).any(|r| weights[r * cols + c] != 0.0))
        .count()
}

/// Whether every group of 4 consecutive columns of every row has at most 2 nonzeros.
fn is_two_four(weights: &[f32], cols: usize) -> bool {
    weights
        .chunks(cols)
        .flat_map(|row| row.chunks(4))
        .all(|group| group.iter().filter(|&&w| w != 0.0).count() <= 2)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use lopper_runtime::graph::{Conv2d, Op as Rt};
    use lopper_runtime::{Model, Session};

    use super::*;
    use crate::export::{export, ExportOptions};
    use crate::inspect::lopper_layers;
    use crate::ir::{eval, Graph, Op};
    use crate::prune::criteria::{uniform, weight_scores, Criterion};
    use crate::prune::mask::{apply, mask, sparsity_of, Granularity};

    #[test]
    fn cost_model_by_hand() {
        assert_eq!(choose_layout(&[1.0; 16], 4, 4), LayoutKind::Dense);
        assert_eq!(choose_layout(&[], 0, 4), LayoutKind::Dense);
        assert_eq!(choose_layout(&[0.0; 15], 4, 4), LayoutKind::Dense);
        // 2:4 in every group: rows [1, 0, 2, 0 | 0, 0, 3, 4].
        let two_four: Vec<f32> = (0..4)
            .flat_map(|_| [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 4.0])
            .collect();
        assert_eq!(
            choose_layout(&two_four, 4, 8),
            LayoutKind::NM { n: 2, m: 4 }
        );
        // Same pattern, 6 columns: not a multiple of 4, and only 50% zeros.
        assert_eq!(choose_layout(&two_four[..24], 4, 6), LayoutKind::Dense);
        // One group with 3 nonzeros breaks 2:4.
        let mut broken = two_four.clone();
        broken[1] = 5.0;
        assert_eq!(choose_layout(&broken, 4, 8), LayoutKind::Dense);
        // 8 x 10 with only column 0 nonzero: 18 of 20 4x1 blocks are zero.
        let blocks: Vec<f32> = (0..80)
            .map(|i| if i % 10 == 0 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(
            choose_layout(&blocks, 8, 10),
            LayoutKind::Bsr { rows: 4, cols: 1 }
        );
        // 90% unstructured zeros: 4x1 blocks are zero only by chance (0.9^4 of them), so
        // CSR stores far less: 32 x 10 with one nonzero per row.
        let unstructured: Vec<f32> = (0..320)
            .map(|i| if i % 10 == (i / 10) % 10 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(choose_layout(&unstructured, 32, 10), LayoutKind::Csr);
        // 4 x 10 with one nonzero per column, on different rows: 75% zeros, no zero block.
        let scattered: Vec<f32> = (0..40)
            .map(|i| if (i / 10) == (i % 10) % 4 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(choose_layout(&scattered, 4, 10), LayoutKind::Csr);
        // 5 x 2 with nonzeros at (0, 0), (4, 0), (4, 1): the last block row is 1 row high
        // and holds 2 nonzero blocks, so only 1 of 4 blocks is zero; 70% zeros give CSR.
        let mut tall = vec![0.0; 10];
        for i in [0, 8, 9] {
            tall[i] = 1.0;
        }
        assert_eq!(choose_layout(&tall, 5, 2), LayoutKind::Csr);
    }

    /// Values in `[-1, 1)` from `seed`, none of them zero in practice.
    fn noise(seed: u64, shape: &[usize]) -> Tensor {
        let len = shape.iter().product();
        let values = uniform(seed, len)
            .into_iter()
            .map(|u| 2.0 * u - 1.0)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// `noise` pruned by magnitude with `granularity` to `sparsity`.
    fn pruned(seed: u64, shape: &[usize], granularity: Granularity, sparsity: f32) -> Tensor {
        let w = noise(seed, shape);
        let scores = weight_scores(&w, Criterion::L1, None).unwrap();
        apply(&w, &mask(&scores, granularity, sparsity).unwrap()).unwrap()
    }

    /// One weight-bearing node `op` named "layer" with `weight`, a bias, input `x_shape`
    /// and output `y_shape`.
    fn one_layer(op: Rt, weight: Tensor, x_shape: &[usize], y_shape: &[usize]) -> Graph {
        let mut g = Graph::default();
        let x = g.activation("x", x_shape.to_vec());
        let bias = noise(99, &[weight.dims()[0]]);
        let w = g.constant("w", weight);
        let b = g.constant("b", bias);
        let y = g.activation("y", y_shape.to_vec());
        g.push("layer", Op::Runtime(op), vec![x, w, b], vec![y]);
        g.inputs.push(x);
        g.outputs.push(y);
        g
    }

    /// Exports `graph` with and without sparse layouts, checks the layer's stored layout
    /// starts with one of `layouts` and that the runtime matches `ir::eval` within 1e-5
    /// for both files; returns the two file sizes (sparse, dense).
    fn export_both(graph: &Graph, layouts: &[&str]) -> (usize, usize) {
        let shape = graph.shape(graph.inputs[0]).to_vec();
        let input = noise(5, &shape);
        let reference: Vec<f32> = eval(graph, std::slice::from_ref(&input)).unwrap()[0]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let input: Vec<f32> = input.flatten_all().unwrap().to_vec1().unwrap();
        let mut sizes = [0; 2];
        for (i, sparse) in [true, false].into_iter().enumerate() {
            let options = ExportOptions {
                sparse,
                ..ExportOptions::default()
            };
            let bytes = export(graph, &options).unwrap();
            sizes[i] = bytes.len();
            let model = Model::from_vec(bytes).unwrap();
            let layout = &lopper_layers(&model)[0].layout;
            if sparse {
                assert!(
                    layouts.iter().any(|l| layout.starts_with(l)),
                    "layout {layout}"
                );
            } else {
                assert_eq!(layout, "dense f32");
            }
            let mut session = Session::new(&model).unwrap();
            session.set_input(0, &input).unwrap();
            session.run();
            let out = session.output(0).unwrap();
            assert_eq!(out.len(), reference.len());
            for (a, b) in out.iter().zip(&reference) {
                assert!((a - b).abs() <= 1e-5, "sparse {sparse}: {a} vs {b}");
            }
        }
        (sizes[0], sizes[1])
    }

    #[test]
    fn pruned_linear_exports_sparse_and_matches_eval() {
        let w = pruned(1, &[32, 64], Granularity::Unstructured, 0.9);
        assert!((sparsity_of(&w) - 0.9).abs() < 1e-3);
        let g = one_layer(Rt::Linear, w, &[3, 64], &[3, 32]);
        let (sparse, dense) = export_both(&g, &["csr", "bsr"]);
        assert!(sparse < dense, "{sparse} bytes sparse vs {dense} dense");
    }

    #[test]
    fn pruned_conv_exports_block_and_n_m_layouts() {
        let conv = Rt::Conv2d(Conv2d {
            pads: [1; 4],
            ..Conv2d::default()
        });
        let (x, y) = ([1, 8, 6, 6], [1, 16, 6, 6]);
        let blocks = pruned(
            2,
            &[16, 8, 3, 3],
            Granularity::Block { rows: 4, cols: 1 },
            0.9,
        );
        let g = one_layer(conv.clone(), blocks, &x, &y);
        let (sparse, dense) = export_both(&g, &["bsr 4x1"]);
        assert!(sparse < dense, "{sparse} bytes sparse vs {dense} dense");
        let nm = pruned(3, &[16, 8, 3, 3], Granularity::NM { n: 2, m: 4 }, 0.5);
        let g = one_layer(conv.clone(), nm, &x, &y);
        let (sparse, dense) = export_both(&g, &["2:4"]);
        assert!(sparse < dense, "{sparse} bytes sparse vs {dense} dense");
        // Unpruned weights stay dense: the file is the same with or without `sparse`.
        let g = one_layer(conv, noise(4, &[16, 8, 3, 3]), &x, &y);
        let (sparse, dense) = export_both(&g, &["dense"]);
        assert_eq!(sparse, dense);
    }
}
