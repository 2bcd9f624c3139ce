//! Weight matrices as kernels see them: typed slices borrowed from the model bytes.
//!
//! A Conv2d or Linear weight is a matrix with one row per output channel and every other
//! axis flattened into columns (a ConvTranspose2d weight has one row per input channel).
//! Weights computed at run time are viewed the same way, as dense f32. Each matrix has a storage (f32 / f16 / int8 + per-row scale)
//! and a sparsity layout (dense / CSR / block-sparse / N:M). Views are built only from
//! verified data, so kernels may rely on the invariants documented on each variant.

/// Stored values of a weight matrix.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// IEEE 754 half-precision bit patterns.
    F16(&'a [u16]),
    /// Quantized values; the value of slot `i` in row `r` is `q[i] as f32 * scales[r]`.
    I8 {
        /// Quantized values.
        q: &'a [i8],
        /// One scale per row.
        scales: &'a [f32],
    },
}

impl Values<'_> {
    /// Value of stored slot `slot`, which belongs to row `row`.
    #[inline]
    pub fn get(&self, slot: usize, row: usize) -> f32 {
        match self {
            Values::F32(v) => v[slot],
            Values::F16(v) => half::f16::from_bits(v[slot]).to_f32(),
            Values::I8 { q, scales } => f32::from(q[slot]) * scales[row],
        }
    }

    /// Number of stored slots.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F16(v) => v.len(),
            Values::I8 { q, .. } => q.len(),
        }
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which entries of the matrix are stored, and where.
#[derive(Clone, Copy, Debug)]
pub enum Sparsity<'a> {
    /// All `rows * cols` entries, row-major.
    Dense,
    /// Compressed sparse rows: slots `row_ptr[r]..row_ptr[r + 1]` belong to row `r`, at
    /// columns `col_idx[slot]` (strictly increasing, `< cols`). `row_ptr` has `rows + 1`
    /// entries, starts at 0, is monotone and ends at the number of slots.
    Csr {
        /// Slot range per row.
        row_ptr: &'a [u32],
        /// Column of each slot.
        col_idx: &'a [u32],
    },
    /// Block-sparse rows with `block[0] x block[1]` blocks on a grid of
    /// `ceil(rows / block[0]) x ceil(cols / block[1])`. Blocks `row_ptr[br]..row_ptr[br + 1]`
    /// belong to block row `br`, at block columns `col_idx[b]` (strictly increasing). Block
    /// `b` holds values `b * block[0] * block[1] ..` row-major; entries outside the matrix
    /// are zero.
    Bsr {
        /// Block height and width.
        block: [usize; 2],
        /// Block range per block row.
        row_ptr: &'a [u32],
        /// Block column of each block.
        col_idx: &'a [u32],
    },
    /// N:M: each row has `ceil(cols / m)` groups of `n` slots; slot `s` of group `g` holds
    /// column `g * m + indices[..]` (strictly increasing within the group, inside the
    /// matrix). Row `r`, group `g`, slot `s` is at `(r * groups + g) * n + s`.
    NM {
        /// Slots per group.
        n: usize,
        /// Group width.
        m: usize,
        /// Column inside the group, per slot.
        indices: &'a [u8],
    },
}

/// A verified weight matrix.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    /// Output channels (input channels for ConvTranspose2d).
    pub rows: usize,
    /// Entries per row (`C / groups * kh * kw` for convolutions, `O / groups * kh * kw`
    /// for transposed ones).
    pub cols: usize,
    /// Stored values.
    pub values: Values<'a>,
    /// Which entries the values are.
    pub sparsity: Sparsity<'a>,
}

impl WeightMatrix<'_> {
    /// Calls `f(col, value)` for every stored entry of row `row`, in increasing column
    /// order. Stored zeros (padding inside BSR blocks, unused N:M slots) are visited too;
    /// entries a layout does not store are not. `row` must be below `rows`.
    pub fn for_each_in_row(&self, row: usize, mut f: impl FnMut(usize, f32)) {
        match self.sparsity {
            Sparsity::Dense => {
                let first = row * self.cols;
                for col in 0..self.cols {
                    f(col, self.values.get(first + col, row));
                }
            }
            Sparsity::Csr { row_ptr, col_idx } => {
                let slots = row_ptr[row] as usize..row_ptr[row + 1] as usize;
                for (slot, &col) in slots.clone().zip(&col_idx[slots]) {
                    f(col as usize, self.values.get(slot, row));
                }
            }
            Sparsity::Bsr {
                block: [bh, bw],
                row_ptr,
                col_idx,
            } => {
                let (block_row, inner) = (row / bh, row % bh);
                let blocks = row_ptr[block_row] as usize..row_ptr[block_row + 1] as usize;
                for (b, &bc) in blocks.clone().zip(&col_idx[blocks]) {
                    let first_col = bc as usize * bw;
                    let first_slot = (b * bh + inner) * bw;
                    for j in 0..bw.min(self.cols - first_col) {
                        f(first_col + j, self.values.get(first_slot + j, row));
                    }
                }
            }
            Sparsity::NM { n, m, indices } => {
                let groups = self.cols.div_ceil(m);
                for g in 0..groups {
                    for s in 0..n {
                        let slot = (row * groups + g) * n + s;
                        f(
                            g * m + usize::from(indices[slot]),
                            self.values.get(slot, row),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::format::encode::decode_dense;
    use crate::format::encode::tests::{all_encodings, sparse_matrix};
    use alloc::vec;
    use alloc::vec::Vec;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn each_row_visits_its_stored_entries_in_column_order() {
        let mut rng = SmallRng::seed_from_u64(9);
        for (rows, cols) in [(7, 10), (5, 9), (1, 4), (9, 6)] {
            let dense = sparse_matrix(&mut rng, rows, cols);
            for (layout, storage, e) in all_encodings(&dense, rows, cols) {
                let w = e.view();
                let expected = decode_dense(&w);
                let mut rebuilt = vec![0.0; rows * cols];
                for r in 0..rows {
                    let mut seen: Vec<usize> = Vec::new();
                    w.for_each_in_row(r, |c, v| {
                        seen.push(c);
                        rebuilt[r * cols + c] = v;
                    });
                    assert!(
                        seen.windows(2).all(|p| p[0] < p[1]),
                        "{layout:?} {storage:?} row {r}: columns {seen:?}"
                    );
                    // Every nonzero is visited.
                    let nonzeros = (0..cols).filter(|&c| expected[r * cols + c] != 0.0);
                    assert!(nonzeros.into_iter().all(|c| seen.contains(&c)));
                }
                assert_eq!(rebuilt, expected, "{layout:?} {storage:?} {rows}x{cols}");
            }
        }
    }
}
