//! Which layout a pruned weight matrix is stored in, for one of two objectives.
//!
//! [`Objective::Speed`] (the default) estimates each layout's kernel time relative to
//! the dense kernel on the same matrix, from the single-thread kernel benchmarks in
//! `docs/benchmarks.md` (x86_64 AVX2; `--tune` measures on the target instead): the time
//! of a sparse kernel grows with what it stores, so it is modelled as a per-layout factor
//! times the stored fraction (nonzeros for CSR, nonzero 4x1 blocks for BSR, one half for
//! 2:4), with separate factors for matrix-vector products (`n < 8` activation columns,
//! fully connected layers at batch 1), where sparse kernels lose their register reuse.
//! A sparse layout is kept only when it is estimated faster than dense.
//!
//! [`Objective::Size`] stores the fewest bytes with f32 values: dense `4` per position, CSR
//! `8` per nonzero (value and 4-byte column), BSR 4x1 `20` per nonzero block of 4 rows x
//! 1 column (16 value bytes and a 4-byte block column), 2:4 `2.5` per position (half the
//! values and a 1-byte index each).
//!
//! 2:4 is possible when every group of 4 consecutive columns of every row holds at most 2
//! nonzeros and the columns are a multiple of 4. A matrix without zeros stays dense.

use lopper_runtime::graph::LayoutKind;

/// What the layout choice optimises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Objective {
    /// The fastest estimated kernel; never a sparse layout estimated slower than dense.
    #[default]
    Speed,
    /// The fewest stored bytes.
    Size,
}

/// Estimated kernel time per stored fraction, relative to the dense kernel: (CSR per
/// nonzero, BSR 4x1 per nonzero block, 2:4 per kept half) for `n >= 8` activation columns
/// (1x1 convolutions at 14x14 and 7x7: CSR 90% 3.1-4.0x faster than dense, BSR 4x1 90%
/// 5.8-6.7x, 2:4 0.44-0.70x) and for `n < 8` (a 1024x1000 fully connected layer: CSR 90%
/// 1.4x, BSR 4x1 90% 1.9x, 2:4 0.06x).
const SPEED_FACTORS: [[f64; 3]; 2] = [[3.0, 1.6, 2.9], [7.0, 5.3, 33.0]];

/// Picks the layout of the row-major `rows x cols` matrix `weights`, multiplied by `n`
/// activation columns at a time (output pixels of a convolution, the batch of a linear
/// layer), for `objective` (see the module documentation for the models). Dense when
/// `weights` is empty or does not hold `rows * cols` values.
pub fn choose_layout(
    weights: &[f32],
    rows: usize,
    cols: usize,
    n: usize,
    objective: Objective,
) -> LayoutKind {
    if weights.is_empty() || rows.checked_mul(cols) != Some(weights.len()) {
        return LayoutKind::Dense;
    }
    let nonzeros = weights.iter().filter(|&&w| w != 0.0).count();
    if nonzeros == weights.len() {
        return LayoutKind::Dense;
    }
    let positions = weights.len() as f64;
    let density = nonzeros as f64 / positions;
    let block_density =
        nonzero_blocks(weights, rows, cols) as f64 / (rows.div_ceil(4) * cols) as f64;
    let two_four = cols % 4 == 0 && is_two_four(weights, cols);
    // Cost of (dense, CSR, BSR 4x1, 2:4), dense = 1.
    let costs = match objective {
        Objective::Speed => {
            let [csr, bsr, nm] = SPEED_FACTORS[usize::from(n < 8)];
            [1.0, csr * density, bsr * block_density, nm * 0.5]
        }
        Objective::Size => [1.0, 2.0 * density, 1.25 * block_density, 0.625],
    };
    let layouts = [
        LayoutKind::Dense,
        LayoutKind::Csr,
        LayoutKind::Bsr { rows: 4, cols: 1 },
        LayoutKind::NM { n: 2, m: 4 },
    ];
    let mut best = (LayoutKind::Dense, 1.0);
    for (i, (layout, cost)) in layouts.into_iter().zip(costs).enumerate() {
        if (i < 3 || two_four) && cost < best.1 {
            best = (layout, cost);
        }
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
pub(crate) fn is_two_four(weights: &[f32], cols: usize) -> bool {
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
        use Objective::{Size, Speed};
        let both = |w: &[f32], rows, cols, n| {
            (
                choose_layout(w, rows, cols, n, Speed),
                choose_layout(w, rows, cols, n, Size),
            )
        };
        let (dense, csr, bsr) = (
            LayoutKind::Dense,
            LayoutKind::Csr,
            LayoutKind::Bsr { rows: 4, cols: 1 },
        );
        assert_eq!(both(&[1.0; 16], 4, 4, 64), (dense, dense));
        assert_eq!(both(&[], 0, 4, 64), (dense, dense));
        assert_eq!(both(&[0.0; 15], 4, 4, 64), (dense, dense));
        // 2:4 in every group, alternating rows [1, 0, 2, 0 | 0, 0, 3, 4] and
        // [0, 1, 0, 2 | 3, 4, 0, 0], so no 4x1 block is zero: 2:4 stores 62.5% of the dense
        // bytes (CSR 100%, BSR 125%), but its kernel is slower than dense (cost 1.45).
        let two_four: Vec<f32> = (0..4)
            .flat_map(|r| {
                if r % 2 == 0 {
                    [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 4.0]
                } else {
                    [0.0, 1.0, 0.0, 2.0, 3.0, 4.0, 0.0, 0.0]
                }
            })
            .collect();
        assert_eq!(
            both(&two_four, 4, 8, 64),
            (dense, LayoutKind::NM { n: 2, m: 4 })
        );
        // Same pattern, 6 columns: not a multiple of 4, and only 50% zeros.
        assert_eq!(both(&two_four[..24], 4, 6, 64), (dense, dense));
        // 8 x 10 with only column 0 nonzero: 18 of 20 4x1 blocks are zero. Speed: BSR
        // 1.6 * 0.1 against CSR 3 * 0.1; size: 1.25 * 0.1 against 2 * 0.1.
        let blocks: Vec<f32> = (0..80)
            .map(|i| if i % 10 == 0 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(both(&blocks, 8, 10, 64), (bsr, bsr));
        // 90% unstructured zeros, 32 x 10 with one nonzero per row: 40% of the 4x1 blocks
        // hold a nonzero, so CSR wins both ways, also for a matrix-vector product (7 * 0.1).
        let unstructured: Vec<f32> = (0..320)
            .map(|i| if i % 10 == (i / 10) % 10 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(both(&unstructured, 32, 10, 64), (csr, csr));
        assert_eq!(both(&unstructured, 32, 10, 1), (csr, csr));
        // 4 x 10 with one nonzero per column, on different rows: 75% zeros, no zero block.
        // CSR: speed 3 * 0.25, size 2 * 0.25; as a matrix-vector product 7 * 0.25 > 1.
        let scattered: Vec<f32> = (0..40)
            .map(|i| if (i / 10) == (i % 10) % 4 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(both(&scattered, 4, 10, 64), (csr, csr));
        assert_eq!(both(&scattered, 4, 10, 1), (dense, csr));
        // 5 x 2 with nonzeros at (0, 0), (4, 0), (4, 1): the last block row is 1 row high
        // and holds 2 nonzero blocks, so 3 of 4 blocks hold a nonzero; 70% zeros give CSR.
        let mut tall = vec![0.0; 10];
        for i in [0, 8, 9] {
            tall[i] = 1.0;
        }
        assert_eq!(both(&tall, 5, 2, 64), (csr, csr));
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
    fn export_both(graph: &Graph, layouts: &[&str], objective: Objective) -> (usize, usize) {
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
                objective,
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
        let (sparse, dense) = export_both(&g, &["csr"], Objective::Speed);
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
        let (sparse, dense) = export_both(&g, &["bsr 4x1"], Objective::Speed);
        assert!(sparse < dense, "{sparse} bytes sparse vs {dense} dense");
        let nm = pruned(3, &[16, 8, 3, 3], Granularity::NM { n: 2, m: 4 }, 0.5);
        let g = one_layer(conv.clone(), nm, &x, &y);
        // 2:4 is the smallest layout, but its kernel is slower than dense.
        let (sparse, dense) = export_both(&g, &["2:4"], Objective::Size);
        assert!(sparse < dense, "{sparse} bytes sparse vs {dense} dense");
        // Unpruned weights stay dense: the file is the same with or without `sparse`.
        let g = one_layer(conv, noise(4, &[16, 8, 3, 3]), &x, &y);
        let (sparse, dense) = export_both(&g, &["dense"], Objective::Speed);
        assert_eq!(sparse, dense);
    }
}
