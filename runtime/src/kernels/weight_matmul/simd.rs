//! The vector implementation, written once over the [`Simd`] trait and instantiated by each
//! instruction set (`x86.rs`, `neon.rs`) inside a function compiled for it.
//!
//! Every layout and storage takes the same two steps. A block of up to [`BLOCK`] entries of
//! a group of `R` rows is packed: the offset of each entry's row of `x`, and its `R`
//! weights widened to f32. Then a register tile of `R` rows x `NV` vectors of `y` sweeps
//! the columns of `x`, one broadcast weight times one vector of `x` per multiply-add
//! (XNNPACK's SpMM for sparse layouts, a packed-A GEMM for dense ones). Bias and activation
//! are applied in registers before the single store. With `n == 1` (fully connected
//! layers) there are no columns to vectorise over: dense rows become dot products
//! vectorised along `k`, sparse rows scalar dot products read straight from the layout.

use core::mem::MaybeUninit;
use core::ops::Range;

use crate::graph::Activation;
use crate::ops::activation::apply_one;
use crate::weights::{Sparsity, Values, WeightMatrix};

/// Entries packed at a time; bounds the stack buffers.
const BLOCK: usize = 256;
/// The tallest row group.
const MAX_ROWS: usize = 8;
/// Vectors per tile row for single rows (CSR, N:M, BSR 1xc, cut blocks): each broadcast
/// weight feeds 8 multiply-adds.
const ROW_VECS: usize = 8;

/// One instruction set's f32 vector. A value of the implementing type exists only when the
/// CPU supports the instruction set, so the arithmetic methods are safe; the pointer
/// methods need `LANES` readable (or writable) floats at the pointer.
pub(super) trait Simd: Copy {
    /// A vector of `LANES` f32s.
    type V: Copy;
    /// f32s per vector.
    const LANES: usize;
    /// Every lane `v`.
    fn splat(self, v: f32) -> Self::V;
    /// `acc + a * b`, fused.
    fn fma(self, acc: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise maximum.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise minimum.
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// Sum of the lanes.
    fn sum(self, v: Self::V) -> f32;
    /// One half-precision value widened to f32.
    fn widen_f16(self, bits: u16) -> f32 {
        half::f16::from_bits(bits).to_f32()
    }
    /// Loads `LANES` f32s.
    ///
    /// # Safety
    /// `p` is valid for reading `LANES` f32s.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// Stores `LANES` f32s.
    ///
    /// # Safety
    /// `p` is valid for writing `LANES` f32s.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// Loads `LANES` half-precision values widened to f32.
    ///
    /// # Safety
    /// `p` is valid for reading `LANES` u16s.
    unsafe fn load_f16(self, p: *const u16) -> Self::V {
        let mut wide = [0.0f32; 16];
        for (i, w) in wide[..Self::LANES].iter_mut().enumerate() {
            // SAFETY: `i < LANES`, which the caller guarantees readable.
            *w = self.widen_f16(unsafe { *p.add(i) });
        }
        // SAFETY: `wide` holds 16 >= LANES f32s.
        unsafe { self.load(wide.as_ptr()) }
    }
    /// Loads `LANES` int8 values converted to f32.
    ///
    /// # Safety
    /// `p` is valid for reading `LANES` i8s.
    unsafe fn load_i8(self, p: *const i8) -> Self::V;
    /// Loads the first `len < LANES` f32s, the other lanes zero.
    ///
    /// # Safety
    /// `p` is valid for reading `len` f32s.
    unsafe fn load_partial(self, p: *const f32, len: usize) -> Self::V {
        let mut buf = [0.0f32; 16];
        // SAFETY: the caller guarantees `len` readable floats; `buf` holds 16 > len.
        unsafe {
            core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), len);
            self.load(buf.as_ptr())
        }
    }
    /// Stores the first `len < LANES` lanes.
    ///
    /// # Safety
    /// `p` is valid for writing `len` f32s.
    unsafe fn store_partial(self, p: *mut f32, len: usize, v: Self::V) {
        let mut buf = [0.0f32; 16];
        // SAFETY: `buf` holds 16 >= LANES floats; the caller guarantees `len` writable.
        unsafe {
            self.store(buf.as_mut_ptr(), v);
            core::ptr::copy_nonoverlapping(buf.as_ptr(), p, len);
        }
    }
}

/// Whether a shape suits the vector kernels: `n == 1` or at least a whole vector of
/// columns. Narrower matrices stay with the scalar kernel.
pub(super) fn suits(n: usize, lanes: usize) -> bool {
    n == 1 || n >= lanes
}

/// The operands every row group shares.
struct Out<'a> {
    x: &'a [f32],
    n: usize,
    cols: usize,
    /// `y` of the whole call; row `r` starts at `(r - first_row) * n`.
    y: *mut f32,
    first_row: usize,
    bias: Option<&'a [f32]>,
    act: Activation,
}

/// Where a row group's entries come from.
#[derive(Clone, Copy)]
enum Group {
    /// Rows `row..row + R` of a dense matrix.
    Dense { row: usize },
    /// One CSR row.
    Csr { row: usize },
    /// Rows `inner..inner + R` of block row `block_row`.
    Bsr { block_row: usize, inner: usize },
    /// One N:M row.
    Nm { row: usize },
    /// Rows `row..row + R` of an N:M matrix, each with its own columns.
    NmRows { row: usize },
}

/// Stack buffers for one block of packed entries.
struct Packed {
    offsets: [MaybeUninit<usize>; BLOCK * MAX_ROWS],
    weights: [MaybeUninit<f32>; BLOCK * MAX_ROWS],
}

/// `y = act(W[rows] x + bias)`, see [`super::weight_matmul`]. The caller has checked that
/// `rows` lies inside `w`, `x` holds `w.cols * n` and `y` holds `rows.len() * n` values,
/// and [`suits`]`(n, S::LANES)`. Dense matrices go in groups of `MR` rows with tiles of
/// `NV` vectors.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_matmul<S: Simd, const MR: usize, const NV: usize>(
    s: S,
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    let out = Out {
        x,
        n,
        cols: w.cols,
        y: y.as_mut_ptr(),
        first_row: rows.start,
        bias,
        act,
    };
    let mut packed = Packed {
        offsets: [MaybeUninit::uninit(); BLOCK * MAX_ROWS],
        weights: [MaybeUninit::uninit(); BLOCK * MAX_ROWS],
    };
    let p = &mut packed;
    match w.sparsity {
        Sparsity::Dense if n == 1 => match w.values {
            Values::F32(v) => dot_rows::<S, f32>(s, v, None, rows, &out),
            Values::F16(v) => dot_rows::<S, u16>(s, v, None, rows, &out),
            Values::I8 { q, scales } => dot_rows::<S, i8>(s, q, Some(scales), rows, &out),
        },
        Sparsity::Dense => {
            let tiled = rows.start + rows.len() / MR * MR;
            // Copying strips of `x` pays only when several tiles share each strip.
            if n >= NV * S::LANES && rows.len() >= 4 * MR {
                gemm::<S, MR, NV>(s, w, rows.start..tiled, &out, p);
            } else {
                for row in (rows.start..tiled).step_by(MR) {
                    group::<S, MR, NV>(s, w, Group::Dense { row }, row, &out, p);
                }
            }
            for row in tiled..rows.end {
                group::<S, 1, ROW_VECS>(s, w, Group::Dense { row }, row, &out, p);
            }
        }
        Sparsity::Csr { .. } => {
            for row in rows {
                group::<S, 1, ROW_VECS>(s, w, Group::Csr { row }, row, &out, p);
            }
        }
        Sparsity::NM { .. } if n > 1 => {
            // Six rows at a time: each group of `m` rows of `x` stays in L1 while the six
            // rows take their entries from it.
            let tiled = rows.start + rows.len() / 6 * 6;
            for row in (rows.start..tiled).step_by(6) {
                group::<S, 6, 2>(s, w, Group::NmRows { row }, row, &out, p);
            }
            for row in tiled..rows.end {
                group::<S, 1, ROW_VECS>(s, w, Group::Nm { row }, row, &out, p);
            }
        }
        Sparsity::NM { .. } => {
            for row in rows {
                group::<S, 1, ROW_VECS>(s, w, Group::Nm { row }, row, &out, p);
            }
        }
        Sparsity::Bsr { block: [bh, _], .. } => {
            for block_row in rows.start / bh..rows.end.div_ceil(bh) {
                let first = block_row * bh;
                let g = Group::Bsr {
                    block_row,
                    inner: 0,
                };
                let whole = first >= rows.start && first + bh <= rows.end;
                match bh {
                    1 if whole => group::<S, 1, ROW_VECS>(s, w, g, first, &out, p),
                    2 if whole => group::<S, 2, 4>(s, w, g, first, &out, p),
                    4 if whole => group::<S, 4, 2>(s, w, g, first, &out, p),
                    8 if whole => group::<S, 8, 1>(s, w, g, first, &out, p),
                    _ => {
                        // Odd block heights, and blocks cut by `rows`: one row at a time.
                        for row in first.max(rows.start)..(first + bh).min(rows.end) {
                            let g = Group::Bsr {
                                block_row,
                                inner: row - first,
                            };
                            group::<S, 1, ROW_VECS>(s, w, g, row, &out, p);
                        }
                    }
                }
            }
        }
    }
}

/// Computes the `R` rows of `g`, starting at absolute row `row`, one packed block at a time.
#[inline(always)]
fn group<S: Simd, const R: usize, const NV: usize>(
    s: S,
    w: &WeightMatrix,
    g: Group,
    row: usize,
    out: &Out,
    p: &mut Packed,
) {
    let total = entries(w, g);
    let bias: [f32; R] = core::array::from_fn(|r| out.bias.map_or(0.0, |b| b[row + r]));
    if out.n == 1 {
        dot::<S, R>(s, w, g, total, row, out, bias);
        return;
    }
    let mut start = 0;
    loop {
        let count = (total - start).min(BLOCK);
        let mut packed = 0;
        let per_row = matches!(g, Group::NmRows { .. });
        if let (
            Group::NmRows { row },
            Sparsity::NM {
                n: keep,
                m,
                indices,
            },
        ) = (g, w.sparsity)
        {
            let groups = out.cols.div_ceil(m);
            for e in start..start + count {
                for r in 0..R {
                    let slot = (row + r) * groups * keep + e;
                    let k = e / keep * m + usize::from(indices[slot]);
                    assert!(k < out.cols, "column {k} outside the matrix");
                    p.offsets[packed * R + r] = MaybeUninit::new(k * out.n);
                    p.weights[packed * R + r] =
                        MaybeUninit::new(value(s, &w.values, slot, row + r));
                }
                packed += 1;
            }
        } else {
            for_each_entry::<S, R>(s, w, g, start..start + count, |k, weights| {
                assert!(k < out.cols, "column {k} outside the matrix");
                p.offsets[packed] = MaybeUninit::new(k * out.n);
                for (r, w) in weights.into_iter().enumerate() {
                    p.weights[packed * R + r] = MaybeUninit::new(w);
                }
                packed += 1;
            });
        }
        let packed_offsets = if per_row { packed * R } else { packed };
        // SAFETY: the loops above initialised the first `packed_offsets` offsets and
        // `packed * R` weights.
        let (offsets, weights) = unsafe {
            (
                core::slice::from_raw_parts(p.offsets.as_ptr().cast::<usize>(), packed_offsets),
                core::slice::from_raw_parts(p.weights.as_ptr().cast::<f32>(), packed * R),
            )
        };
        let init = (start == 0).then_some(bias);
        start += count;
        let last = start == total;
        let tile = Tile {
            offsets,
            per_row,
            x_step: None,
            weights,
            n: out.n,
            init,
            finish: last.then_some(out.act),
        };
        tile.sweep::<S, NV>(s, out, row, 0);
        if last {
            return;
        }
    }
}

/// Rows of a dense block: a multiple of both tile heights (6 and 8). Its packed weights
/// (120 KB) stay in L2 and amortise each copied strip of `x` over 120 rows.
const GEMM_ROWS: usize = 120;
/// Widest dense tile, in floats.
const GEMM_WIDTH: usize = 16;

/// Dense rows `rows` (a multiple of `MR` of them), blocked for the caches as in BLIS: for
/// each block of `BLOCK` columns of `w` and `GEMM_ROWS` rows, the weights are packed
/// (widened) tile by tile; then for each `NV`-vector wide strip of `x`, the strip is
/// copied to a contiguous buffer that stays in L1 while every tile of the block uses it.
/// Columns past the last whole strip are read from `x` in place.
#[inline(always)]
fn gemm<S: Simd, const MR: usize, const NV: usize>(
    s: S,
    w: &WeightMatrix,
    rows: Range<usize>,
    out: &Out,
    p: &mut Packed,
) {
    let (cols, n, width) = (out.cols, out.n, NV * S::LANES);
    assert!(width <= GEMM_WIDTH && GEMM_ROWS % MR == 0 && MR <= MAX_ROWS);
    let strips = n - n % width;
    let mut a = [MaybeUninit::<f32>::uninit(); GEMM_ROWS * BLOCK];
    let mut strip = [MaybeUninit::<f32>::uninit(); GEMM_WIDTH * BLOCK];
    for k0 in (0..cols).step_by(BLOCK) {
        let kc = (cols - k0).min(BLOCK);
        for (i, o) in p.offsets.iter_mut().take(kc).enumerate() {
            *o = MaybeUninit::new((k0 + i) * n);
        }
        // SAFETY: the first `kc` offsets were just written.
        let offsets =
            unsafe { core::slice::from_raw_parts(p.offsets.as_ptr().cast::<usize>(), kc) };
        let last = k0 + kc == cols;
        for block in (rows.start..rows.end).step_by(GEMM_ROWS) {
            let tiles = (rows.end - block).min(GEMM_ROWS) / MR;
            for t in 0..tiles {
                let row = block + t * MR;
                for (i, k) in (k0..k0 + kc).enumerate() {
                    for r in 0..MR {
                        let v = value(s, &w.values, (row + r) * cols + k, row + r);
                        a[(t * BLOCK + i) * MR + r] = MaybeUninit::new(v);
                    }
                }
            }
            // SAFETY: `kc * MR` weights of each of the `tiles` tiles were just written.
            let tile_weights = |t: usize| unsafe {
                core::slice::from_raw_parts(a.as_ptr().add(t * BLOCK * MR).cast::<f32>(), kc * MR)
            };
            let tile = |t: usize, offsets| {
                let row = block + t * MR;
                let bias: [f32; MR] =
                    core::array::from_fn(|r| out.bias.map_or(0.0, |b| b[row + r]));
                Tile {
                    offsets,
                    per_row: false,
                    x_step: None,
                    weights: tile_weights(t),
                    n,
                    init: (k0 == 0).then_some(bias),
                    finish: last.then_some(out.act),
                }
            };
            for j in (0..strips).step_by(width) {
                for (i, dst) in strip.chunks_exact_mut(width).take(kc).enumerate() {
                    let src = &out.x[(k0 + i) * n + j..][..width];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = MaybeUninit::new(v);
                    }
                }
                for t in 0..tiles {
                    let row = block + t * MR;
                    // SAFETY: the strip holds `kc` rows of `width` floats, row `i` at
                    // `i * width`, one per packed entry; `y` holds `n` floats per row of
                    // `rows`, and `j + width <= n`.
                    unsafe {
                        let y = out.y.add((row - out.first_row) * n + j);
                        let x = strip.as_ptr().cast::<f32>();
                        let strip_tile = Tile {
                            x_step: Some(width),
                            ..tile(t, &[])
                        };
                        strip_tile.run::<S, NV, false>(s, x, y, width);
                    }
                }
            }
            if strips < n {
                for t in 0..tiles {
                    let row = block + t * MR;
                    tile(t, offsets).sweep::<S, NV>(s, out, row, strips);
                }
            }
        }
    }
}

/// `n == 1`: `R` dot products of the group's entries with the gathered `x[k]`, straight
/// from the layout. Single rows keep four partial sums to hide the latency of the adds.
#[inline(always)]
fn dot<S: Simd, const R: usize>(
    s: S,
    w: &WeightMatrix,
    g: Group,
    total: usize,
    row: usize,
    out: &Out,
    bias: [f32; R],
) {
    let mut part = [[0.0f32; R]; 4];
    match (g, w.sparsity) {
        (Group::Csr { row }, Sparsity::Csr { row_ptr, col_idx }) => {
            let slots = row_ptr[row] as usize..row_ptr[row + 1] as usize;
            let cols = &col_idx[slots.clone()];
            part[0][0] = match w.values {
                Values::F32(v) => gather_dot(s, cols, &v[slots], out.x),
                Values::F16(v) => gather_dot(s, cols, &v[slots], out.x),
                Values::I8 { q, scales } => gather_dot(s, cols, &q[slots], out.x) * scales[row],
            };
        }
        (
            Group::Bsr {
                block_row,
                inner: 0,
            },
            Sparsity::Bsr {
                block: [bh, 1],
                row_ptr,
                col_idx,
            },
        ) if bh == R => {
            // Whole `R x 1` blocks: `R` independent sums, one weight column per block.
            let blocks = row_ptr[block_row] as usize..row_ptr[block_row + 1] as usize;
            let cols = &col_idx[blocks.clone()];
            let slots = blocks.start * R..blocks.end * R;
            part[0] = match w.values {
                Values::F32(v) => block_dot(s, cols, &v[slots], out.x),
                Values::F16(v) => block_dot(s, cols, &v[slots], out.x),
                Values::I8 { q, scales } => {
                    let sums: [f32; R] = block_dot(s, cols, &q[slots], out.x);
                    core::array::from_fn(|r| sums[r] * scales[row + r])
                }
            };
        }
        _ => {
            let mut i = 0;
            for_each_entry::<S, R>(s, w, g, 0..total, |k, weights| {
                let xk = out.x[k];
                for (a, w) in part[i % 4].iter_mut().zip(weights) {
                    *a += w * xk;
                }
                i += 1;
            });
        }
    }
    let first = row - out.first_row;
    for r in 0..R {
        let sum = (part[0][r] + part[1][r]) + (part[2][r] + part[3][r]);
        // SAFETY: rows `row..row + R` lie inside the call's rows and `n == 1`, so `y` holds
        // a float at `first + r`.
        unsafe { *out.y.add(first + r) = apply_one(out.act, bias[r] + sum) };
    }
}

/// `sum_i widen(values[i]) * x[cols[i]]` in four independent partial sums.
#[inline(always)]
fn gather_dot<S: Simd, T: Element>(s: S, cols: &[u32], values: &[T], x: &[f32]) -> f32 {
    let mut part = [0.0f32; 4];
    let (cols4, values4) = (cols.chunks_exact(4), values.chunks_exact(4));
    let (cols_rest, values_rest) = (cols4.remainder(), values4.remainder());
    for (c, v) in cols4.zip(values4) {
        for (p, (&c, &v)) in part.iter_mut().zip(c.iter().zip(v)) {
            *p += T::widen(s, v) * x[c as usize];
        }
    }
    for (&c, &v) in cols_rest.iter().zip(values_rest) {
        part[0] += T::widen(s, v) * x[c as usize];
    }
    (part[0] + part[1]) + (part[2] + part[3])
}

/// `sums[r] = sum_b widen(values[b * R + r]) * x[cols[b]]`: the dot products of the `R`
/// rows of a run of `R x 1` blocks.
#[inline(always)]
fn block_dot<S: Simd, T: Element, const R: usize>(
    s: S,
    cols: &[u32],
    values: &[T],
    x: &[f32],
) -> [f32; R] {
    let mut sums = [0.0f32; R];
    for (&c, block) in cols.iter().zip(values.chunks_exact(R)) {
        let xk = x[c as usize];
        for (sum, &v) in sums.iter_mut().zip(block) {
            *sum += T::widen(s, v) * xk;
        }
    }
    sums
}

/// Entries of a row group: columns for dense, CSR and N:M rows; block columns times block
/// width for BSR (entries past the last column are skipped when packed).
fn entries(w: &WeightMatrix, g: Group) -> usize {
    match (g, w.sparsity) {
        (Group::Csr { row }, Sparsity::Csr { row_ptr, .. }) => {
            (row_ptr[row + 1] - row_ptr[row]) as usize
        }
        (
            Group::Bsr { block_row, .. },
            Sparsity::Bsr {
                block: [_, bw],
                row_ptr,
                ..
            },
        ) => (row_ptr[block_row + 1] - row_ptr[block_row]) as usize * bw,
        (Group::Nm { .. } | Group::NmRows { .. }, Sparsity::NM { n, m, .. }) => {
            w.cols.div_ceil(m) * n
        }
        _ => w.cols,
    }
}

/// Value of stored slot `slot` of row `row`, widened with the instruction set's converter.
#[inline(always)]
fn value<S: Simd>(s: S, values: &Values, slot: usize, row: usize) -> f32 {
    match values {
        Values::F32(v) => v[slot],
        Values::F16(v) => s.widen_f16(v[slot]),
        Values::I8 { q, scales } => f32::from(q[slot]) * scales[row],
    }
}

/// Calls `f(k, weights)` for entries `range` of `g`: the entry's column `k` and its weight
/// in each of the group's `R` rows. BSR entries past the last column are skipped.
#[inline(always)]
fn for_each_entry<S: Simd, const R: usize>(
    s: S,
    w: &WeightMatrix,
    g: Group,
    range: Range<usize>,
    mut f: impl FnMut(usize, [f32; R]),
) {
    let cols = w.cols;
    let values = &w.values;
    match (g, w.sparsity) {
        (Group::Dense { row }, _) => {
            for k in range {
                let mut weights = [0.0; R];
                for (r, w) in weights.iter_mut().enumerate() {
                    *w = value(s, values, (row + r) * cols + k, row + r);
                }
                f(k, weights);
            }
        }
        (Group::Csr { row }, Sparsity::Csr { row_ptr, col_idx }) => {
            let first = row_ptr[row] as usize;
            let slots = first + range.start..first + range.end;
            for (slot, &k) in slots.clone().zip(&col_idx[slots]) {
                let weights = [value(s, values, slot, row); R];
                f(k as usize, weights);
            }
        }
        (
            Group::Bsr { block_row, inner },
            Sparsity::Bsr {
                block: [bh, bw],
                row_ptr,
                col_idx,
            },
        ) => {
            let first = row_ptr[block_row] as usize;
            for e in range {
                let (b, bj) = (first + e / bw, e % bw);
                let k = col_idx[b] as usize * bw + bj;
                if k < cols {
                    let mut weights = [0.0; R];
                    for (i, w) in (inner..).zip(weights.iter_mut()) {
                        *w = value(s, values, (b * bh + i) * bw + bj, block_row * bh + i);
                    }
                    f(k, weights);
                }
            }
        }
        (
            Group::Nm { row },
            Sparsity::NM {
                n: keep,
                m,
                indices,
            },
        ) => {
            let first = row * cols.div_ceil(m) * keep;
            for e in range {
                let slot = first + e;
                let k = e / keep * m + usize::from(indices[slot]);
                let weights = [value(s, values, slot, row); R];
                f(k, weights);
            }
        }
        _ => unreachable!("a group always matches its matrix's layout"),
    }
}

/// One packed block and how to start and end the accumulation.
struct Tile<'a, const R: usize> {
    /// Where each entry's row of `x` starts, shared by the `R` rows (`offsets[i]`) or
    /// one per row (`offsets[i * R + r]`, when `per_row`).
    offsets: &'a [usize],
    per_row: bool,
    /// Instead of `offsets`: entry `i`'s row of `x` starts at `i * x_step`.
    x_step: Option<usize>,
    weights: &'a [f32],
    n: usize,
    /// Start from these biases (first block) or from what `y` holds (later blocks).
    init: Option<[f32; R]>,
    /// Apply this activation (last block) or leave the partial sums.
    finish: Option<Activation>,
}

impl<const R: usize> Tile<'_, R> {
    /// Runs the tile across columns `from..n` of rows `row..row + R`: whole tiles of `NV`
    /// vectors, then single vectors, then a partial vector. The offsets index `out.x`.
    #[inline(always)]
    fn sweep<S: Simd, const NV: usize>(&self, s: S, out: &Out, row: usize, from: usize) {
        let (n, lanes) = (out.n, S::LANES);

        // SAFETY: every offset is `k * n` with `k < cols` and `x` holds `cols * n` floats, so
        // `x + offset + j` is readable for the `width <= n - j` floats a tile reads; the rows
        // `row..row + R` lie inside the call's rows, so `y` has `n` floats at each row start.
        unsafe {
            let x = out.x.as_ptr();
            let y = out.y.add((row - out.first_row) * n);
            let mut j = from;
            while j + NV * lanes <= n {
                self.run::<S, NV, false>(s, x.add(j), y.add(j), NV * lanes);
                j += NV * lanes;
            }
            // The rest in as few passes over the entries as possible.
            if NV > 4 && j + 4 * lanes <= n {
                self.run::<S, 4, false>(s, x.add(j), y.add(j), 4 * lanes);
                j += 4 * lanes;
            }
            if NV > 2 && j + 2 * lanes <= n {
                self.run::<S, 2, false>(s, x.add(j), y.add(j), 2 * lanes);
                j += 2 * lanes;
            }
            while j + lanes <= n {
                self.run::<S, 1, false>(s, x.add(j), y.add(j), lanes);
                j += lanes;
            }
            if j < n {
                self.run::<S, 1, true>(s, x.add(j), y.add(j), n - j);
            }
        }
    }

    /// `y[r, 0..width] (+)= sum_i weights[i * R + r] * x[offsets[i] + 0..width]` for `R`
    /// rows of stride `n` (`x[offsets[i * R + r] + ..]` when `per_row`), in `NV` vectors
    /// (one partial vector when `PARTIAL`).
    ///
    /// # Safety
    /// `x + offsets[i]` (`x + i * x_step` for every packed entry `i`, when set) is readable
    /// and `y + r * n` writable for `width` floats, where
    /// `width == NV * LANES`, or `width < LANES` with `NV == 1` when `PARTIAL`.
    #[inline(always)]
    unsafe fn run<S: Simd, const NV: usize, const PARTIAL: bool>(
        &self,
        s: S,
        x: *const f32,
        y: *mut f32,
        width: usize,
    ) {
        let n = self.n;
        let mut acc = [[s.splat(0.0); NV]; R];
        for (r, acc_row) in acc.iter_mut().enumerate() {
            for (v, a) in acc_row.iter_mut().enumerate() {
                *a = match self.init {
                    Some(bias) => s.splat(bias[r]),
                    // SAFETY: `y + r * n` is readable for `width` floats (our contract).
                    None => unsafe { load::<S, PARTIAL>(s, y.add(r * n), v, width) },
                };
            }
        }
        let weights = self.weights.as_ptr();
        if self.per_row {
            let entries = self
                .offsets
                .chunks_exact(R)
                .zip(self.weights.chunks_exact(R));
            for (offsets, entry_weights) in entries {
                for ((acc_row, &offset), &weight) in acc.iter_mut().zip(offsets).zip(entry_weights)
                {
                    let wv = s.splat(weight);
                    for (v, a) in acc_row.iter_mut().enumerate() {
                        // SAFETY: `x + offset` is readable for `width` floats (our contract).
                        let xv = unsafe { load::<S, PARTIAL>(s, x.add(offset), v, width) };
                        *a = s.fma(*a, wv, xv);
                    }
                }
            }
        }
        assert!(self.per_row || self.weights.len() >= self.offsets.len() * R);
        if let (Some(step), false) = (self.x_step, self.per_row) {
            // Contiguous rows of `x` (a copied strip): no offsets to load.
            for (i, entry_weights) in self.weights.chunks_exact(R).enumerate() {
                let mut xv = [s.splat(0.0); NV];
                for (v, xv) in xv.iter_mut().enumerate() {
                    // SAFETY: `x + i * step` is readable for `width` floats (our contract).
                    *xv = unsafe { load::<S, PARTIAL>(s, x.add(i * step), v, width) };
                }
                for (acc_row, &weight) in acc.iter_mut().zip(entry_weights) {
                    let wv = s.splat(weight);
                    for (a, &xv) in acc_row.iter_mut().zip(&xv) {
                        *a = s.fma(*a, wv, xv);
                    }
                }
            }
        }
        let shared = !self.per_row && self.x_step.is_none();
        for (i, &offset) in self.offsets.iter().enumerate().filter(|_| shared) {
            let mut xv = [s.splat(0.0); NV];
            for (v, xv) in xv.iter_mut().enumerate() {
                // SAFETY: `x + offset` is readable for `width` floats (our contract).
                *xv = unsafe { load::<S, PARTIAL>(s, x.add(offset), v, width) };
            }
            for (r, acc_row) in acc.iter_mut().enumerate() {
                // SAFETY: `i * R + r < offsets.len() * R <= weights.len()`, asserted above.
                let wv = s.splat(unsafe { *weights.add(i * R + r) });
                for (a, &xv) in acc_row.iter_mut().zip(&xv) {
                    *a = s.fma(*a, wv, xv);
                }
            }
        }
        let vectorised = vector_activation(s, self.finish.unwrap_or_default(), acc[0][0]);
        for (r, acc_row) in acc.iter().enumerate() {
            // SAFETY: `y + r * n` is writable for `width` floats (our contract).
            let yr = unsafe { y.add(r * n) };
            for (v, &a) in acc_row.iter().enumerate() {
                let mut a = a;
                if let (Some(act), Some(_)) = (self.finish, vectorised) {
                    a = vector_activation(s, act, a).unwrap_or(a);
                }
                // SAFETY: as above.
                unsafe { store::<S, PARTIAL>(s, yr, v, width, a) };
            }
            if let (Some(act), None) = (self.finish, vectorised) {
                // SAFETY: as above; the stores are done, nothing else refers to the row.
                let written = unsafe { core::slice::from_raw_parts_mut(yr, width) };
                for v in written {
                    *v = apply_one(act, *v);
                }
            }
        }
    }
}

/// Vector `v` of a tile row at `p`: a whole vector, or the `width < LANES` floats of a
/// partial tile.
///
/// # Safety
/// `p` is readable for `(v + 1) * LANES` floats, or `width` when `PARTIAL`.
#[inline(always)]
unsafe fn load<S: Simd, const PARTIAL: bool>(s: S, p: *const f32, v: usize, width: usize) -> S::V {
    // SAFETY: same contract as ours.
    unsafe {
        if PARTIAL {
            s.load_partial(p, width)
        } else {
            s.load(p.add(v * S::LANES))
        }
    }
}

/// Stores vector `v` of a tile row at `p`, the counterpart of [`load`].
///
/// # Safety
/// `p` is writable for `(v + 1) * LANES` floats, or `width` when `PARTIAL`.
#[inline(always)]
unsafe fn store<S: Simd, const PARTIAL: bool>(s: S, p: *mut f32, v: usize, width: usize, a: S::V) {
    // SAFETY: same contract as ours.
    unsafe {
        if PARTIAL {
            s.store_partial(p, width, a);
        } else {
            s.store(p.add(v * S::LANES), a);
        }
    }
}

/// `act` applied lane-wise, for the activations that are cheap in vector form; each
/// mirrors [`apply_one`] operation for operation. `None` for the others.
#[inline(always)]
fn vector_activation<S: Simd>(s: S, act: Activation, v: S::V) -> Option<S::V> {
    let zero = s.splat(0.0);
    let one = s.splat(1.0);
    Some(match act {
        Activation::None => v,
        Activation::Relu => s.max(v, zero),
        Activation::Clip { min, max } => s.min(s.max(v, s.splat(min)), s.splat(max)),
        Activation::LeakyRelu { alpha } => {
            s.add(s.max(v, zero), s.mul(s.splat(alpha), s.min(v, zero)))
        }
        Activation::HardSigmoid { alpha, beta } => {
            let t = s.add(s.mul(s.splat(alpha), v), s.splat(beta));
            s.min(s.max(t, zero), one)
        }
        Activation::HardSwish => {
            let t = s.add(s.div(v, s.splat(6.0)), s.splat(0.5));
            s.mul(v, s.min(s.max(t, zero), one))
        }
        _ => return None,
    })
}

/// Stored element types a dense row can be read as, `LANES` at a time.
trait Element: Copy {
    /// `LANES` elements widened (not scaled).
    ///
    /// # Safety
    /// `p` is valid for reading `LANES` elements.
    unsafe fn load<S: Simd>(s: S, p: *const Self) -> S::V;
    /// One element widened (not scaled).
    fn widen<S: Simd>(s: S, v: Self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    unsafe fn load<S: Simd>(s: S, p: *const f32) -> S::V {
        // SAFETY: same contract as ours.
        unsafe { s.load(p) }
    }
    #[inline(always)]
    fn widen<S: Simd>(_: S, v: f32) -> f32 {
        v
    }
}

impl Element for u16 {
    #[inline(always)]
    unsafe fn load<S: Simd>(s: S, p: *const u16) -> S::V {
        // SAFETY: same contract as ours.
        unsafe { s.load_f16(p) }
    }
    #[inline(always)]
    fn widen<S: Simd>(s: S, v: u16) -> f32 {
        s.widen_f16(v)
    }
}

impl Element for i8 {
    #[inline(always)]
    unsafe fn load<S: Simd>(s: S, p: *const i8) -> S::V {
        // SAFETY: same contract as ours.
        unsafe { s.load_i8(p) }
    }
    #[inline(always)]
    fn widen<S: Simd>(_: S, v: i8) -> f32 {
        f32::from(v)
    }
}

/// Dense rows with `n == 1`: one dot product per row, vectorised along the columns, four
/// rows at a time sharing each load of `x`. Int8 rows are scaled once, after the sum.
#[inline(always)]
fn dot_rows<S: Simd, T: Element>(
    s: S,
    values: &[T],
    scales: Option<&[f32]>,
    rows: Range<usize>,
    out: &Out,
) {
    const ROWS: usize = 4;
    let (cols, lanes) = (out.cols, S::LANES);
    let x = &out.x[..cols];
    let vector_cols = cols - cols % lanes;
    let mut row = rows.start;
    while row < rows.end {
        let group = (rows.end - row).min(ROWS);
        let values = &values[row * cols..(row + group) * cols];
        let mut acc = [s.splat(0.0); ROWS];
        for k in (0..vector_cols).step_by(lanes) {
            // SAFETY: `k + lanes <= cols`, and `x` holds `cols` floats.
            let xv = unsafe { s.load(x.as_ptr().add(k)) };
            for (r, a) in acc.iter_mut().enumerate().take(group) {
                // SAFETY: `r * cols + k + lanes <= group * cols == values.len()`.
                let wv = unsafe { T::load(s, values.as_ptr().add(r * cols + k)) };
                *a = s.fma(*a, wv, xv);
            }
        }
        for (r, a) in acc.iter().enumerate().take(group) {
            let row_values = &values[r * cols..(r + 1) * cols];
            let tail: f32 = (vector_cols..cols)
                .map(|k| T::widen(s, row_values[k]) * x[k])
                .sum();
            let sum = (s.sum(*a) + tail) * scales.map_or(1.0, |sc| sc[row + r]);
            let v = out.bias.map_or(0.0, |b| b[row + r]) + sum;
            // SAFETY: `row + r` lies inside the call's rows and `n == 1`.
            unsafe { *out.y.add(row + r - out.first_row) = apply_one(out.act, v) };
        }
        row += group;
    }
}
