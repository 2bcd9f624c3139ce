//! Masks for unstructured, block and N:M pruning: f32 tensors of 0 (removed) and 1 (kept)
//! with the weight's shape, computed on the weight's matrix view (`shape[0]` rows, the
//! product of the other dimensions as columns), the view the runtime stores.
//!
//! Ranking is a total order: an entry (weight or block) ranks below another when its score
//! is lower, or when the scores are equal and it comes first (lower layer, then lower
//! row-major index). The lowest-ranked entries are removed.

use candle_core::{DType, Device, Shape, Tensor};

use super::{check_sparsity, matrix_view, to_f32_vec, PruneError, Result};

/// What one mask entry decision covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// Single weights.
    Unstructured,
    /// `rows x cols` blocks of the matrix view, tiled from the top left; blocks at the
    /// right and bottom edges may be partial. A block's score is the sum of its scores.
    Block {
        /// Block height (output channels).
        rows: usize,
        /// Block width.
        cols: usize,
    },
    /// `n` kept weights in every group of `m` consecutive columns of each row; a last
    /// partial group must be at least `n` wide (as the runtime requires).
    NM {
        /// Kept weights per group.
        n: usize,
        /// Group width.
        m: usize,
    },
}

impl Granularity {
    /// Checks the parameters: non-empty blocks, `1 <= n <= m`.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Granularity::Unstructured => Ok(()),
            Granularity::Block { rows, cols } if rows == 0 || cols == 0 => Err(
                PruneError::Granularity(format!("block {rows}x{cols}: blocks must not be empty")),
            ),
            Granularity::NM { n, m } if n == 0 || n > m => Err(PruneError::Granularity(format!(
                "{n}:{m}: N:M keeps n of every m weights and needs 1 <= n <= m"
            ))),
            _ => Ok(()),
        }
    }
}

/// One scored weight tensor, read to the host.
struct Layer {
    shape: Shape,
    device: Device,
    rows: usize,
    cols: usize,
    scores: Vec<f32>,
}

impl Layer {
    fn read(scores: &Tensor) -> Result<Layer> {
        let (rows, cols) = matrix_view(scores.dims());
        let values = to_f32_vec(scores)?;
        if let Some(i) = values.iter().position(|s| s.is_nan()) {
            return Err(PruneError::Scores(format!(
                "score {i} of a tensor of shape {:?} is NaN",
                scores.dims()
            )));
        }
        Ok(Layer {
            shape: scores.shape().clone(),
            device: scores.device().clone(),
            rows,
            cols,
            scores: values,
        })
    }

    /// Scores of the ranked units: weights, or blocks in row-major block order.
    fn unit_scores(&self, granularity: Granularity) -> Vec<f32> {
        let Granularity::Block { rows: bh, cols: bw } = granularity else {
            return self.scores.clone();
        };
        let block_cols = self.cols.div_ceil(bw);
        let mut sums = vec![0f64; self.rows.div_ceil(bh) * block_cols];
        for (i, &s) in self.scores.iter().enumerate() {
            let (r, c) = (i / self.cols, i % self.cols);
            sums[(r / bh) * block_cols + c / bw] += f64::from(s);
        }
        sums.into_iter().map(|s| s as f32).collect()
    }

    /// The 0/1 mask of the weights, given which units are kept.
    fn expand(&self, granularity: Granularity, keep: &[bool]) -> Vec<f32> {
        let bit = |k: bool| if k { 1.0 } else { 0.0 };
        match granularity {
            Granularity::Block { rows: bh, cols: bw } => {
                let block_cols = self.cols.div_ceil(bw);
                (0..self.scores.len())
                    .map(|i| {
                        let (r, c) = (i / self.cols, i % self.cols);
                        bit(keep[(r / bh) * block_cols + c / bw])
                    })
                    .collect()
            }
            _ => keep.iter().map(|&k| bit(k)).collect(),
        }
    }

    /// The N:M mask: in each group, the `n` highest-ranked weights are kept.
    fn nm_mask(&self, n: usize, m: usize) -> Result<Vec<f32>> {
        let tail = self.cols % m;
        if tail != 0 && tail < n {
            return Err(PruneError::Shape(format!(
                "{n}:{m} needs the columns of the weight's matrix view to be a multiple of {m} \
                 or to end in a group of at least {n}, but shape {:?} is {}x{} (a last group \
                 of {tail})",
                self.shape.dims(),
                self.rows,
                self.cols
            )));
        }
        let mut mask = vec![1.0; self.scores.len()];
        let mut group = Vec::with_capacity(m);
        for row in 0..self.rows {
            for start in (0..self.cols).step_by(m) {
                let end = (start + m).min(self.cols);
                group.clear();
                group.extend(row * self.cols + start..row * self.cols + end);
                group.sort_by(|&a, &b| self.scores[a].total_cmp(&self.scores[b]).then(a.cmp(&b)));
                for &i in &group[..group.len() - n] {
                    mask[i] = 0.0;
                }
            }
        }
        Ok(mask)
    }

    fn tensor(&self, mask: Vec<f32>) -> Result<Tensor> {
        Ok(Tensor::from_vec(mask, self.shape.clone(), &self.device)?)
    }
}

/// The mask removing the `round(sparsity * units)` lowest-scoring units of `scores`
/// (rounded half away from zero): weights for `Unstructured`, blocks for `Block`. For
/// `NM` the sparsity argument is ignored (it is always `1 - n / m`, less in a narrower
/// last group) but still validated. Errors on a sparsity outside `[0, 1)`, invalid
/// granularity, NaN scores, or columns that N:M cannot group.
pub fn mask(scores: &Tensor, granularity: Granularity, sparsity: f32) -> Result<Tensor> {
    let mut masks = global_masks(std::slice::from_ref(scores), granularity, sparsity)?;
    Ok(masks.remove(0))
}

/// One mask per tensor of `scores`, with one threshold across all of them: the
/// `round(sparsity * total units)` lowest-scoring units over every tensor are removed, so
/// tensors with low scores lose more. Scores must be comparable across tensors (the
/// caller normalises them if needed). N:M is per row and so per tensor anyway.
pub fn global_masks(
    scores: &[Tensor],
    granularity: Granularity,
    sparsity: f32,
) -> Result<Vec<Tensor>> {
    check_sparsity(sparsity)?;
    granularity.validate()?;
    let layers = scores.iter().map(Layer::read).collect::<Result<Vec<_>>>()?;
    if let Granularity::NM { n, m } = granularity {
        return layers
            .iter()
            .map(|layer| layer.tensor(layer.nm_mask(n, m)?))
            .collect();
    }
    let units: Vec<Vec<f32>> = layers.iter().map(|l| l.unit_scores(granularity)).collect();
    let mut order: Vec<(usize, usize)> = units
        .iter()
        .enumerate()
        .flat_map(|(l, u)| (0..u.len()).map(move |i| (l, i)))
        .collect();
    let remove = (f64::from(sparsity) * order.len() as f64).round() as usize;
    if remove > 0 && remove < order.len() {
        order.select_nth_unstable_by(remove, |&a, &b| {
            units[a.0][a.1].total_cmp(&units[b.0][b.1]).then(a.cmp(&b))
        });
    }
    let mut keep: Vec<Vec<bool>> = units.iter().map(|u| vec![true; u.len()]).collect();
    for &(l, i) in &order[..remove.min(order.len())] {
        keep[l][i] = false;
    }
    layers
        .iter()
        .zip(&keep)
        .map(|(layer, keep)| layer.tensor(layer.expand(granularity, keep)))
        .collect()
}

/// `weights * mask`, in the weights' dtype; the shapes must be equal.
pub fn apply(weights: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if weights.dims() != mask.dims() {
        return Err(PruneError::Shape(format!(
            "mask of shape {:?} does not fit weights of shape {:?}",
            mask.dims(),
            weights.dims()
        )));
    }
    Ok(weights.mul(&mask.to_dtype(weights.dtype())?)?)
}

/// Fraction of exact zeros in `t`; 0 for an empty tensor (or one whose data cannot be
/// read as f32).
pub fn sparsity_of(t: &Tensor) -> f32 {
    match t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
    {
        Ok(v) if !v.is_empty() => v.iter().filter(|&&x| x == 0.0).count() as f32 / v.len() as f32,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn unstructured_removes_the_lowest_scores() {
        let s = t(&[0.1, 0.5, 0.3, 0.2, 0.9, 0.4], &[2, 3]);
        let m = mask(&s, Granularity::Unstructured, 0.5).unwrap();
        assert_eq!(m.dims(), &[2, 3]);
        assert_eq!(values(&m), [0.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        let none = mask(&s, Granularity::Unstructured, 0.0).unwrap();
        assert_eq!(values(&none), [1.0; 6]);
    }

    #[test]
    fn ties_and_rounding_are_deterministic() {
        // Equal scores: the earlier entries go first.
        let m = mask(&t(&[1.0; 4], &[1, 4]), Granularity::Unstructured, 0.5).unwrap();
        assert_eq!(values(&m), [0.0, 0.0, 1.0, 1.0]);
        // 0.5 * 5 = 2.5 rounds to 3 removed; 0.3 * 5 = 1.5 rounds to 2.
        let s = t(&[5.0, 4.0, 3.0, 2.0, 1.0], &[5]);
        let m = mask(&s, Granularity::Unstructured, 0.5).unwrap();
        assert_eq!(values(&m), [1.0, 1.0, 0.0, 0.0, 0.0]);
        let m = mask(&s, Granularity::Unstructured, 0.3).unwrap();
        assert_eq!(values(&m), [1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn blocks_sum_their_scores_with_partial_edges() {
        // 2x2 blocks over 3x3: block sums [[4, 10], [18, 0]]; half of 4 blocks go.
        let s = t(&[1.0, 1.0, 5.0, 1.0, 1.0, 5.0, 9.0, 9.0, 0.0], &[3, 3]);
        let m = mask(&s, Granularity::Block { rows: 2, cols: 2 }, 0.5).unwrap();
        assert_eq!(values(&m), [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
        // 4x1 blocks of a conv weight [4, 1, 1, 2]: columns sum to 4 and 40.
        let conv = t(&[1.0, 10.0, 1.0, 10.0, 1.0, 10.0, 1.0, 10.0], &[4, 1, 1, 2]);
        let m = mask(&conv, Granularity::Block { rows: 4, cols: 1 }, 0.5).unwrap();
        assert_eq!(m.dims(), &[4, 1, 1, 2]);
        assert_eq!(values(&m), [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn n_m_keeps_the_highest_in_each_group() {
        let s = t(&[0.1, 0.4, 0.3, 0.2, 4.0, 3.0, 2.0, 1.0], &[1, 8]);
        let m = mask(&s, Granularity::NM { n: 2, m: 4 }, 0.0).unwrap();
        assert_eq!(values(&m), [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        // 6 columns: the last group is 2 wide, enough for 2:4, and keeps both.
        let s = t(
            &[1.0, 2.0, 3.0, 4.0, 0.5, 0.6, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0],
            &[2, 6],
        );
        let m = mask(&s, Granularity::NM { n: 2, m: 4 }, 0.5).unwrap();
        let expected = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        assert_eq!(values(&m), expected);
        // Ties: the later column is kept.
        let m = mask(&t(&[1.0; 4], &[1, 4]), Granularity::NM { n: 1, m: 4 }, 0.0).unwrap();
        assert_eq!(values(&m), [0.0, 0.0, 0.0, 1.0]);
        let e = mask(&t(&[1.0; 10], &[2, 5]), Granularity::NM { n: 2, m: 4 }, 0.0).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("shape [2, 5] is 2x5 (a last group of 1)"),
            "{text}"
        );
    }

    #[test]
    fn global_threshold_spans_layers() {
        let a = t(&[0.1, 0.2, 0.3, 0.4], &[2, 2]);
        let b = t(&[1.0, 2.0, 3.0, 4.0], &[1, 4]);
        let masks = global_masks(&[a.clone(), b.clone()], Granularity::Unstructured, 0.5).unwrap();
        assert_eq!(values(&masks[0]), [0.0; 4]);
        assert_eq!(values(&masks[1]), [1.0; 4]);
        let blocks = Granularity::Block { rows: 1, cols: 2 };
        let masks = global_masks(&[a, b], blocks, 0.25).unwrap();
        assert_eq!(values(&masks[0]), [0.0, 0.0, 1.0, 1.0]);
        assert_eq!(values(&masks[1]), [1.0; 4]);
        // N:M stays per layer.
        let s = [t(&[1.0, 2.0], &[1, 2]), t(&[4.0, 3.0], &[1, 2])];
        let masks = global_masks(&s, Granularity::NM { n: 1, m: 2 }, 0.0).unwrap();
        assert_eq!(values(&masks[0]), [0.0, 1.0]);
        assert_eq!(values(&masks[1]), [1.0, 0.0]);
    }

    #[test]
    fn bad_requests_are_errors() {
        let s = t(&[1.0, 2.0], &[1, 2]);
        for bad in [1.0, 1.5, -0.1, f32::NAN] {
            let e = mask(&s, Granularity::Unstructured, bad).unwrap_err();
            assert!(matches!(e, PruneError::Sparsity(_)), "{bad}: {e}");
            assert!(e.to_string().contains("outside [0, 1)"), "{e}");
        }
        let e = mask(&s, Granularity::Block { rows: 0, cols: 4 }, 0.5).unwrap_err();
        assert!(e.to_string().contains("block 0x4"), "{e}");
        let e = mask(&s, Granularity::NM { n: 3, m: 2 }, 0.0).unwrap_err();
        assert!(e.to_string().contains("1 <= n <= m"), "{e}");
        assert!(mask(&s, Granularity::NM { n: 0, m: 2 }, 0.0).is_err());
        let e = mask(&t(&[1.0, f32::NAN], &[2]), Granularity::Unstructured, 0.5).unwrap_err();
        assert!(e.to_string().contains("score 1"), "{e}");
        let e = apply(&s, &t(&[1.0, 0.0], &[2])).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    #[test]
    fn apply_and_measure() {
        let w = t(&[1.0, -2.0, 3.0, -4.0], &[2, 2]);
        let m = mask(&w.abs().unwrap(), Granularity::Unstructured, 0.5).unwrap();
        let pruned = apply(&w, &m).unwrap();
        assert_eq!(values(&pruned), [0.0, 0.0, 3.0, -4.0]);
        assert_eq!(sparsity_of(&pruned), 0.5);
        assert_eq!(sparsity_of(&w), 0.0);
        assert_eq!(sparsity_of(&t(&[], &[0])), 0.0);
    }
}
