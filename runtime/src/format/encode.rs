//! Encoding of dense weight matrices into every layout and storage of the format, and the
//! reverse expansion. The writer stores what `encode` returns; tests and tools use
//! `decode_dense` to see exactly which values a kernel will read.

use alloc::vec;
use alloc::vec::Vec;

use crate::graph::{LayoutKind, Storage};
use crate::weights::{Sparsity, Values, WeightMatrix};

/// Why a dense matrix cannot be encoded as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The number of values is not `rows * cols`, or that product overflows.
    #[error("the values do not form a matrix of the given shape")]
    Shape,
    /// A value is NaN or infinite.
    #[error("weight at row {row}, column {col} is not finite")]
    NonFinite {
        /// Row of the value.
        row: usize,
        /// Column of the value.
        col: usize,
    },
    /// A block dimension is zero.
    #[error("block {rows}x{cols} is empty")]
    EmptyBlock {
        /// Block height.
        rows: usize,
        /// Block width.
        cols: usize,
    },
    /// `n` and `m` are not `1 <= n <= m <= 255`.
    #[error("{n}:{m} sparsity needs 1 <= n <= m <= 255")]
    InvalidNM {
        /// Kept entries per group.
        n: usize,
        /// Group width.
        m: usize,
    },
    /// The last, partial group of columns has fewer than `n` columns, so its `n` slots
    /// cannot hold distinct columns.
    #[error("{cols} columns leave a last group narrower than {n}, which {n}:{m} needs")]
    NarrowGroup {
        /// Matrix columns.
        cols: usize,
        /// Kept entries per group.
        n: usize,
        /// Group width.
        m: usize,
    },
    /// A group has more nonzeros than N:M keeps.
    #[error("row {row}, group {group} has {nonzeros} nonzeros, more than {n}:{m} allows")]
    NotNM {
        /// Row of the group.
        row: usize,
        /// Group index within the row.
        group: usize,
        /// Nonzeros found in the group.
        nonzeros: usize,
        /// Kept entries per group.
        n: usize,
        /// Group width.
        m: usize,
    },
    /// An index or offset does not fit the format's u32 index arrays.
    #[error("matrix too large for u32 indices")]
    TooLarge,
}

/// Owned stored values, mirroring [`Values`].
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValues {
    /// f32 values.
    F32(Vec<f32>),
    /// IEEE 754 half-precision bit patterns.
    F16(Vec<u16>),
    /// Quantized values with one scale per row: `w = q * scales[row]`.
    I8 {
        /// Quantized values.
        q: Vec<i8>,
        /// One scale per row.
        scales: Vec<f32>,
    },
}

/// Owned index arrays, mirroring [`Sparsity`] with the same encodings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedSparsity {
    /// Every entry, row-major.
    Dense,
    /// Compressed sparse rows.
    Csr {
        /// Slot range per row (`rows + 1` entries).
        row_ptr: Vec<u32>,
        /// Column of each slot.
        col_idx: Vec<u32>,
    },
    /// Block-sparse rows.
    Bsr {
        /// Block height and width.
        block: [usize; 2],
        /// Block range per block row (`block rows + 1` entries).
        row_ptr: Vec<u32>,
        /// Block column of each block.
        col_idx: Vec<u32>,
    },
    /// N:M structured sparsity.
    NM {
        /// Slots per group.
        n: usize,
        /// Group width.
        m: usize,
        /// Column inside the group, per slot.
        indices: Vec<u8>,
    },
}

/// A weight matrix encoded for the file: what the writer stores, viewable as the kernels
/// will see it after loading.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedWeights {
    /// Output channels.
    pub rows: usize,
    /// Inputs per output channel.
    pub cols: usize,
    /// Stored values.
    pub values: OwnedValues,
    /// Which entries the values are.
    pub sparsity: OwnedSparsity,
}

impl EncodedWeights {
    /// Borrowed view, identical to what the loader builds from the written bytes.
    pub fn view(&self) -> WeightMatrix<'_> {
        let values = match &self.values {
            OwnedValues::F32(v) => Values::F32(v),
            OwnedValues::F16(v) => Values::F16(v),
            OwnedValues::I8 { q, scales } => Values::I8 { q, scales },
        };
        let sparsity = match &self.sparsity {
            OwnedSparsity::Dense => Sparsity::Dense,
            OwnedSparsity::Csr { row_ptr, col_idx } => Sparsity::Csr { row_ptr, col_idx },
            OwnedSparsity::Bsr {
                block,
                row_ptr,
                col_idx,
            } => Sparsity::Bsr {
                block: *block,
                row_ptr,
                col_idx,
            },
            OwnedSparsity::NM { n, m, indices } => Sparsity::NM {
                n: *n,
                m: *m,
                indices,
            },
        };
        WeightMatrix {
            rows: self.rows,
            cols: self.cols,
            values,
            sparsity,
        }
    }
}

/// Encodes the row-major `rows x cols` matrix `dense` in `layout` and `storage`.
///
/// CSR and BSR keep exactly the nonzero entries and the blocks holding any nonzero. N:M
/// needs at most `n` nonzeros in every group of `m` columns; each group keeps its nonzero
/// columns plus its lowest zero columns up to `n`. A last partial group is allowed when it
/// is at least `n` columns wide. Int8 is symmetric per row with `scale = max|w| / 127`
/// (1.0 for an all-zero row).
pub fn encode(
    dense: &[f32],
    rows: usize,
    cols: usize,
    layout: LayoutKind,
    storage: Storage,
) -> Result<EncodedWeights, EncodeError> {
    if rows.checked_mul(cols) != Some(dense.len()) {
        return Err(EncodeError::Shape);
    }
    if let Some(i) = dense.iter().position(|v| !v.is_finite()) {
        return Err(EncodeError::NonFinite {
            row: i / cols,
            col: i % cols,
        });
    }
    let (picks, sparsity) = match layout {
        LayoutKind::Dense => ((0..dense.len()).map(Some).collect(), OwnedSparsity::Dense),
        LayoutKind::Csr => pick_csr(dense, rows, cols)?,
        LayoutKind::Bsr {
            rows: block_rows,
            cols: block_cols,
        } => pick_bsr(dense, rows, cols, [block_rows, block_cols])?,
        LayoutKind::NM { n, m } => pick_nm(dense, rows, cols, n, m)?,
    };
    Ok(EncodedWeights {
        rows,
        cols,
        values: store(dense, [rows, cols], storage, &picks),
        sparsity,
    })
}

/// Slot contents: the row-major index of the dense entry each slot holds, `None` for a
/// BSR entry outside the matrix.
type Picks = Vec<Option<usize>>;

fn to_u32(v: usize) -> Result<u32, EncodeError> {
    u32::try_from(v).map_err(|_| EncodeError::TooLarge)
}

fn pick_csr(
    dense: &[f32],
    rows: usize,
    cols: usize,
) -> Result<(Picks, OwnedSparsity), EncodeError> {
    let mut picks = Vec::new();
    let mut row_ptr = vec![0];
    let mut col_idx = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            if dense[r * cols + c] != 0.0 {
                picks.push(Some(r * cols + c));
                col_idx.push(to_u32(c)?);
            }
        }
        row_ptr.push(to_u32(picks.len())?);
    }
    Ok((picks, OwnedSparsity::Csr { row_ptr, col_idx }))
}

fn pick_bsr(
    dense: &[f32],
    rows: usize,
    cols: usize,
    block: [usize; 2],
) -> Result<(Picks, OwnedSparsity), EncodeError> {
    let [bh, bw] = block;
    if bh == 0 || bw == 0 {
        return Err(EncodeError::EmptyBlock { rows: bh, cols: bw });
    }
    let index = |r: usize, c: usize| (r < rows && c < cols).then(|| r * cols + c);
    let mut picks = Vec::new();
    let mut row_ptr = vec![0];
    let mut col_idx = Vec::new();
    for br in 0..rows.div_ceil(bh) {
        for bc in 0..cols.div_ceil(bw) {
            let block_picks = (0..bh)
                .flat_map(|i| (0..bw).map(move |j| (br * bh + i, bc * bw + j)))
                .map(|(r, c)| index(r, c));
            if block_picks.clone().flatten().any(|i| dense[i] != 0.0) {
                picks.extend(block_picks);
                col_idx.push(to_u32(bc)?);
            }
        }
        row_ptr.push(to_u32(col_idx.len())?);
    }
    Ok((
        picks,
        OwnedSparsity::Bsr {
            block,
            row_ptr,
            col_idx,
        },
    ))
}

fn pick_nm(
    dense: &[f32],
    rows: usize,
    cols: usize,
    n: usize,
    m: usize,
) -> Result<(Picks, OwnedSparsity), EncodeError> {
    if n == 0 || n > m || m > 255 {
        return Err(EncodeError::InvalidNM { n, m });
    }
    if cols % m != 0 && cols % m < n {
        return Err(EncodeError::NarrowGroup { cols, n, m });
    }
    let mut picks = Vec::new();
    let mut indices = Vec::new();
    for r in 0..rows {
        let row = &dense[r * cols..(r + 1) * cols];
        for (group, start) in (0..cols).step_by(m).enumerate() {
            let width = m.min(cols - start);
            let in_group = &row[start..start + width];
            let nonzeros = in_group.iter().filter(|&&v| v != 0.0).count();
            if nonzeros > n {
                return Err(EncodeError::NotNM {
                    row: r,
                    group,
                    nonzeros,
                    n,
                    m,
                });
            }
            // Walking the group in order keeps indices increasing: every nonzero, and the
            // first zeros until the group holds n slots.
            let mut zeros_left = n - nonzeros;
            for (i, &v) in in_group.iter().enumerate() {
                let keep = v != 0.0 || zeros_left > 0;
                if v == 0.0 && keep {
                    zeros_left -= 1;
                }
                if keep {
                    picks.push(Some(r * cols + start + i));
                    indices.push(i as u8);
                }
            }
        }
    }
    Ok((picks, OwnedSparsity::NM { n, m, indices }))
}

fn store(
    dense: &[f32],
    [rows, cols]: [usize; 2],
    storage: Storage,
    picks: &[Option<usize>],
) -> OwnedValues {
    match storage {
        Storage::F32 => {
            OwnedValues::F32(picks.iter().map(|p| p.map_or(0.0, |i| dense[i])).collect())
        }
        Storage::F16 => OwnedValues::F16(
            picks
                .iter()
                .map(|p| p.map_or(0, |i| half::f16::from_f32(dense[i]).to_bits()))
                .collect(),
        ),
        Storage::I8 => {
            let scales: Vec<f32> = (0..rows)
                .map(|r| row_scale(&dense[r * cols..(r + 1) * cols]))
                .collect();
            let q = picks
                .iter()
                .map(|p| p.map_or(0, |i| quantize(dense[i], scales[i / cols])))
                .collect();
            OwnedValues::I8 { q, scales }
        }
    }
}

fn row_scale(row: &[f32]) -> f32 {
    let max = row.iter().fold(0.0f32, |acc, v| acc.max(v.abs()));
    if max == 0.0 {
        1.0
    } else {
        max / 127.0
    }
}

/// `round(w / scale)` (half away from zero), clamped to `[-127, 127]`.
fn quantize(w: f32, scale: f32) -> i8 {
    let v = w / scale;
    let magnitude = (v.abs() + 0.5).min(127.0) as i8;
    if v < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Expands any weight matrix to dense row-major f32: the exact values kernels compute with.
pub fn decode_dense(w: &WeightMatrix) -> Vec<f32> {
    let cols = w.cols;
    let mut dense = vec![0.0; w.rows * cols];
    match w.sparsity {
        Sparsity::Dense => {
            for (slot, d) in dense.iter_mut().enumerate() {
                *d = w.values.get(slot, slot / cols);
            }
        }
        Sparsity::Csr { row_ptr, col_idx } => {
            for r in 0..w.rows {
                for slot in row_ptr[r] as usize..row_ptr[r + 1] as usize {
                    dense[r * cols + col_idx[slot] as usize] = w.values.get(slot, r);
                }
            }
        }
        Sparsity::Bsr {
            block: [bh, bw],
            row_ptr,
            col_idx,
        } => {
            for br in 0..w.rows.div_ceil(bh) {
                let blocks = row_ptr[br] as usize..row_ptr[br + 1] as usize;
                for (b, &bc) in blocks.clone().zip(&col_idx[blocks]) {
                    let bc = bc as usize;
                    for i in 0..bh {
                        for j in 0..bw {
                            let (r, c) = (br * bh + i, bc * bw + j);
                            if r < w.rows && c < cols {
                                dense[r * cols + c] = w.values.get((b * bh + i) * bw + j, r);
                            }
                        }
                    }
                }
            }
        }
        Sparsity::NM { n, m, indices } => {
            let groups = cols.div_ceil(m);
            for r in 0..w.rows {
                for g in 0..groups {
                    for s in 0..n {
                        let slot = (r * groups + g) * n + s;
                        let c = g * m + usize::from(indices[slot]);
                        dense[r * cols + c] = w.values.get(slot, r);
                    }
                }
            }
        }
    }
    dense
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Every storage.
    pub(crate) const STORAGES: [Storage; 3] = [Storage::F32, Storage::F16, Storage::I8];

    /// The layouts every weight test covers, including blocks that do not divide the shapes.
    pub(crate) const LAYOUTS: [LayoutKind; 9] = [
        LayoutKind::Dense,
        LayoutKind::Csr,
        LayoutKind::Bsr { rows: 1, cols: 4 },
        LayoutKind::Bsr { rows: 4, cols: 1 },
        LayoutKind::Bsr { rows: 2, cols: 2 },
        LayoutKind::Bsr { rows: 3, cols: 2 },
        LayoutKind::Bsr { rows: 4, cols: 2 },
        LayoutKind::Bsr { rows: 2, cols: 3 },
        LayoutKind::NM { n: 2, m: 4 },
    ];

    /// Values in [-1, 1), about `zero_share` of them zero, then pruned to 2:4 along rows so
    /// that every layout can encode the matrix.
    pub(crate) fn sparse_matrix(rng: &mut SmallRng, rows: usize, cols: usize) -> Vec<f32> {
        let mut dense: Vec<f32> = (0..rows * cols)
            .map(|_| {
                let v = rng.gen_range(-1.0..1.0);
                if rng.gen_bool(0.3) {
                    0.0
                } else {
                    v
                }
            })
            .collect();
        for row in dense.chunks_mut(cols.max(1)) {
            for group in row.chunks_mut(4) {
                while group.iter().filter(|v| **v != 0.0).count() > 2 {
                    let smallest = (0..group.len())
                        .filter(|&i| group[i] != 0.0)
                        .min_by(|&a, &b| group[a].abs().total_cmp(&group[b].abs()))
                        .unwrap();
                    group[smallest] = 0.0;
                }
            }
        }
        dense
    }

    /// `dense` encoded in every layout x storage that accepts it (N:M refuses a last group
    /// narrower than n).
    pub(crate) fn all_encodings(
        dense: &[f32],
        rows: usize,
        cols: usize,
    ) -> Vec<(LayoutKind, Storage, EncodedWeights)> {
        let mut out = Vec::new();
        for layout in LAYOUTS {
            for storage in STORAGES {
                match encode(dense, rows, cols, layout, storage) {
                    Ok(e) => out.push((layout, storage, e)),
                    Err(EncodeError::NarrowGroup { .. }) => {}
                    Err(e) => panic!("{layout:?} {storage:?}: {e}"),
                }
            }
        }
        out
    }

    // 2x4:  [1 0 0 2]
    //       [0 0 0 3]
    const SMALL: [f32; 8] = [1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0];

    #[test]
    fn csr_by_hand() {
        let e = encode(&SMALL, 2, 4, LayoutKind::Csr, Storage::F32).unwrap();
        assert_eq!(e.values, OwnedValues::F32(vec![1.0, 2.0, 3.0]));
        assert_eq!(
            e.sparsity,
            OwnedSparsity::Csr {
                row_ptr: vec![0, 2, 3],
                col_idx: vec![0, 3, 3],
            }
        );
    }

    #[test]
    fn bsr_by_hand() {
        // 2x2 blocks: block (0, 0) is [1 0; 0 0], block (0, 1) is [0 2; 0 3].
        let e = encode(
            &SMALL,
            2,
            4,
            LayoutKind::Bsr { rows: 2, cols: 2 },
            Storage::F32,
        )
        .unwrap();
        assert_eq!(
            e.values,
            OwnedValues::F32(vec![1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 3.0])
        );
        assert_eq!(
            e.sparsity,
            OwnedSparsity::Bsr {
                block: [2, 2],
                row_ptr: vec![0, 2],
                col_idx: vec![0, 1],
            }
        );
        // 1x3 blocks on a 2x4 matrix: the second block column sticks out by two columns;
        // block (1, 0) is all zero and skipped.
        let e = encode(
            &SMALL,
            2,
            4,
            LayoutKind::Bsr { rows: 1, cols: 3 },
            Storage::F32,
        )
        .unwrap();
        assert_eq!(
            e.values,
            OwnedValues::F32(vec![1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0])
        );
        assert_eq!(
            e.sparsity,
            OwnedSparsity::Bsr {
                block: [1, 3],
                row_ptr: vec![0, 2, 3],
                col_idx: vec![0, 1, 1],
            }
        );
    }

    #[test]
    fn nm_by_hand() {
        // Row 0 keeps its nonzero columns 0 and 3; row 1 keeps column 3 and pads with the
        // lowest zero column, 0.
        let e = encode(&SMALL, 2, 4, LayoutKind::NM { n: 2, m: 4 }, Storage::F32).unwrap();
        assert_eq!(e.values, OwnedValues::F32(vec![1.0, 2.0, 0.0, 3.0]));
        assert_eq!(
            e.sparsity,
            OwnedSparsity::NM {
                n: 2,
                m: 4,
                indices: vec![0, 3, 0, 3],
            }
        );
        // 1x6 with 2:4: the partial last group [5, 0] keeps both of its columns.
        let dense = [0.0, 0.0, 4.0, 0.0, 5.0, 0.0];
        let e = encode(&dense, 1, 6, LayoutKind::NM { n: 2, m: 4 }, Storage::F32).unwrap();
        assert_eq!(e.values, OwnedValues::F32(vec![0.0, 4.0, 5.0, 0.0]));
        assert_eq!(
            e.sparsity,
            OwnedSparsity::NM {
                n: 2,
                m: 4,
                indices: vec![0, 2, 0, 1],
            }
        );
    }

    #[test]
    fn int8_and_f16_by_hand() {
        // Row 0: max 2, scale 2/127; 1.0 -> 63.5 -> 64. Row 1: -3 -> -127.
        let e = encode(&SMALL, 2, 4, LayoutKind::Csr, Storage::I8).unwrap();
        assert_eq!(
            e.values,
            OwnedValues::I8 {
                q: vec![64, 127, 127],
                scales: vec![2.0 / 127.0, 3.0 / 127.0],
            }
        );
        let zeros = encode(&[0.0, 0.0], 1, 2, LayoutKind::Dense, Storage::I8).unwrap();
        assert_eq!(
            zeros.values,
            OwnedValues::I8 {
                q: vec![0, 0],
                scales: vec![1.0],
            }
        );
        let no_columns = encode(&[], 2, 0, LayoutKind::Dense, Storage::I8).unwrap();
        assert_eq!(
            no_columns.values,
            OwnedValues::I8 {
                q: vec![],
                scales: vec![1.0, 1.0],
            }
        );
        let e = encode(&[1.0, -2.0], 1, 2, LayoutKind::Dense, Storage::F16).unwrap();
        assert_eq!(e.values, OwnedValues::F16(vec![0x3c00, 0xc000]));
    }

    #[test]
    fn round_trips_every_layout_and_storage() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut cases = 0;
        for (rows, cols) in [(5, 7), (8, 8), (1, 12), (3, 1), (0, 4), (6, 0), (9, 10)] {
            let dense = sparse_matrix(&mut rng, rows, cols);
            for (layout, storage, e) in all_encodings(&dense, rows, cols) {
                cases += 1;
                let back = decode_dense(&e.view());
                for r in 0..rows {
                    let row = &dense[r * cols..(r + 1) * cols];
                    let max = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                    let tol = match storage {
                        Storage::F32 => 0.0,
                        Storage::F16 => 1e-3,
                        Storage::I8 => max / 254.0 + 1e-6,
                    };
                    for c in 0..cols {
                        let (a, b) = (dense[r * cols + c], back[r * cols + c]);
                        assert!(
                            (a - b).abs() <= tol,
                            "{layout:?} {storage:?} {rows}x{cols} at ({r}, {c}): {a} vs {b}"
                        );
                    }
                }
            }
        }
        // N:M is refused only for the 3x1 matrix (a last group of one column).
        assert_eq!(cases, 7 * LAYOUTS.len() * STORAGES.len() - STORAGES.len());
    }

    #[test]
    fn sparse_layouts_store_only_nonzeros() {
        let mut dense = sparse_matrix(&mut SmallRng::seed_from_u64(3), 9, 10);
        dense[10..20].fill(0.0);
        let nonzeros = dense.iter().filter(|v| **v != 0.0).count();
        let e = encode(&dense, 9, 10, LayoutKind::Csr, Storage::F32).unwrap();
        let OwnedValues::F32(values) = &e.values else {
            unreachable!()
        };
        assert_eq!(values.len(), nonzeros);
        assert!(values.iter().all(|v| *v != 0.0));

        let e = encode(
            &dense,
            9,
            10,
            LayoutKind::Bsr { rows: 1, cols: 2 },
            Storage::F32,
        )
        .unwrap();
        let expected_blocks = (0..9)
            .flat_map(|r| (0..5).map(move |bc| (r, bc)))
            .filter(|&(r, bc)| dense[r * 10 + bc * 2] != 0.0 || dense[r * 10 + bc * 2 + 1] != 0.0)
            .count();
        let OwnedSparsity::Bsr { row_ptr, .. } = &e.sparsity else {
            unreachable!()
        };
        assert_eq!(row_ptr[1], row_ptr[2], "the all-zero row stores no blocks");
        assert_eq!(*row_ptr.last().unwrap() as usize, expected_blocks);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            encode(&[1.0; 5], 2, 3, LayoutKind::Dense, Storage::F32),
            Err(EncodeError::Shape)
        );
        assert_eq!(
            encode(&[], usize::MAX, 2, LayoutKind::Dense, Storage::F32),
            Err(EncodeError::Shape)
        );
        assert_eq!(
            encode(&[1.0, f32::NAN], 1, 2, LayoutKind::Dense, Storage::F32),
            Err(EncodeError::NonFinite { row: 0, col: 1 })
        );
        assert_eq!(
            encode(
                &SMALL,
                2,
                4,
                LayoutKind::Bsr { rows: 0, cols: 2 },
                Storage::F32
            ),
            Err(EncodeError::EmptyBlock { rows: 0, cols: 2 })
        );
        for (n, m) in [(0, 4), (5, 4), (1, 256)] {
            assert_eq!(
                encode(&SMALL, 2, 4, LayoutKind::NM { n, m }, Storage::F32),
                Err(EncodeError::InvalidNM { n, m })
            );
        }
        assert_eq!(
            encode(&SMALL, 1, 8, LayoutKind::NM { n: 1, m: 4 }, Storage::F32),
            Err(EncodeError::NotNM {
                row: 0,
                group: 0,
                nonzeros: 2,
                n: 1,
                m: 4
            })
        );
        assert_eq!(
            encode(&[0.0; 5], 1, 5, LayoutKind::NM { n: 2, m: 4 }, Storage::F32),
            Err(EncodeError::NarrowGroup {
                cols: 5,
                n: 2,
                m: 4
            })
        );
        let message = alloc::format!(
            "{}",
            EncodeError::NotNM {
                row: 3,
                group: 2,
                nonzeros: 3,
                n: 2,
                m: 4
            }
        );
        assert_eq!(
            message,
            "row 3, group 2 has 3 nonzeros, more than 2:4 allows"
        );
    }
}
