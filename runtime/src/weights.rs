//! Weight matrices as kernels see them: typed slices borrowed from the model bytes.
//!
//! A Conv2d or Linear weight is a matrix with one row per output channel and every other
//! axis flattened into columns. Each matrix has a storage (f32 / f16 / int8 + per-row scale)
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
    /// Output channels.
    pub rows: usize,
    /// Inputs per output channel (`C / groups * kh * kw` for convolutions).
    pub cols: usize,
    /// Stored values.
    pub values: Values<'a>,
    /// Which entries the values are.
    pub sparsity: Sparsity<'a>,
}
