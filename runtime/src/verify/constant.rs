//! Checks a constant's layout, storage and blobs against its shape: sizes, index ranges,
//! monotone pointers, strictly increasing columns. Errors are plain reasons; the caller
//! adds the tensor's name.

use alloc::format;
use alloc::string::String;
use core::ops::Range;

use crate::format::fb;
use crate::graph::{matrix_dims, ConstantData, LayoutData, Storage};

type Reason = String;

/// Decodes and checks one constant of `shape`.
pub fn constant(
    c: &fb::Constant,
    shape: &[usize],
    blobs: &[Range<usize>],
    bytes: &[u8],
) -> Result<ConstantData, Reason> {
    let (rows, cols) = matrix_dims(shape).ok_or("shape overflows")?;
    let blob = |index: u32, what: &str| -> Result<Range<usize>, Reason> {
        blobs.get(index as usize).cloned().ok_or_else(|| {
            format!(
                "{what} refers to blob {index}, but there are {}",
                blobs.len()
            )
        })
    };
    let u32s = |range: &Range<usize>, what: &str, count: usize| -> Result<&[u32], Reason> {
        let got = range.len() / 4;
        if range.len() % 4 != 0 || got != count {
            return Err(format!(
                "{what} has {} bytes, expected {count} u32 values",
                range.len()
            ));
        }
        Ok(bytemuck::cast_slice(&bytes[range.clone()]))
    };

    let (layout, slots) = match c.layout_type() {
        fb::Layout::Dense => (LayoutData::Dense, rows * cols),
        fb::Layout::Csr => {
            let csr = c.layout_as_csr().ok_or("CSR layout table missing")?;
            let row_ptr = blob(csr.row_ptr(), "row_ptr")?;
            let col_idx = blob(csr.col_idx(), "col_idx")?;
            let ptr = u32s(&row_ptr, "row_ptr", rows + 1)?;
            let nnz = col_idx.len() / 4;
            let idx = u32s(&col_idx, "col_idx", nnz)?;
            check_compressed(ptr, idx, cols, "row", "column")?;
            (LayoutData::Csr { row_ptr, col_idx }, nnz)
        }
        fb::Layout::Bsr => {
            let bsr = c.layout_as_bsr().ok_or("BSR layout table missing")?;
            let block = [bsr.block_rows() as usize, bsr.block_cols() as usize];
            if block[0] == 0 || block[1] == 0 {
                return Err(format!("block size {}x{} is empty", block[0], block[1]));
            }
            let row_ptr = blob(bsr.row_ptr(), "row_ptr")?;
            let col_idx = blob(bsr.col_idx(), "col_idx")?;
            let ptr = u32s(&row_ptr, "row_ptr", rows.div_ceil(block[0]) + 1)?;
            let blocks = col_idx.len() / 4;
            let idx = u32s(&col_idx, "col_idx", blocks)?;
            check_compressed(
                ptr,
                idx,
                cols.div_ceil(block[1]),
                "block row",
                "block column",
            )?;
            let slots = blocks
                .checked_mul(block[0])
                .and_then(|s| s.checked_mul(block[1]))
                .ok_or("block count overflows")?;
            let layout = LayoutData::Bsr {
                block,
                row_ptr,
                col_idx,
            };
            (layout, slots)
        }
        fb::Layout::NM => {
            let nm = c.layout_as_nm().ok_or("N:M layout table missing")?;
            let (n, m) = (nm.n() as usize, nm.m() as usize);
            if n == 0 || n > m || m > 255 {
                return Err(format!("N:M pattern {n}:{m} needs 1 <= N <= M <= 255"));
            }
            let groups = cols.div_ceil(m);
            let last_width = cols - (groups - 1) * m;
            if last_width < n {
                return Err(format!(
                    "{cols} columns leave a last group of {last_width}, narrower than N = {n}"
                ));
            }
            let indices = blob(nm.indices(), "indices")?;
            let slots = rows * groups * n;
            if indices.len() != slots {
                return Err(format!(
                    "N:M indices have {} bytes, expected {slots}",
                    indices.len()
                ));
            }
            for (g, group) in bytes[indices.clone()].chunks_exact(n).enumerate() {
                let width = if g % groups == groups - 1 {
                    last_width
                } else {
                    m
                };
                let increasing = group.windows(2).all(|w| w[0] < w[1]);
                if !increasing || group.iter().any(|&i| i as usize >= width) {
                    return Err(format!(
                        "N:M group {g} has indices {group:?}, not increasing below {width}"
                    ));
                }
            }
            (LayoutData::NM { n, m, indices }, slots)
        }
        other => return Err(format!("unknown layout {}", other.0)),
    };

    let values = blob(c.values(), "values")?;
    let (storage, width) = match c.storage() {
        fb::Storage::F32 => (Storage::F32, 4),
        fb::Storage::F16 => (Storage::F16, 2),
        fb::Storage::I8 => (Storage::I8, 1),
        other => return Err(format!("unknown storage {}", other.0)),
    };
    if slots.checked_mul(width) != Some(values.len()) {
        return Err(format!(
            "values have {} bytes, expected {slots} values of {width} bytes",
            values.len()
        ));
    }
    let scales = if storage == Storage::I8 {
        let scales = blob(c.scales(), "scales")?;
        if scales.len() != rows * 4 {
            return Err(format!(
                "scales have {} bytes, expected one f32 for each of {rows} rows",
                scales.len()
            ));
        }
        Some(scales)
    } else {
        None
    };
    Ok(ConstantData {
        storage,
        layout,
        values,
        scales,
    })
}

/// A compressed-rows index: `ptr` starts at 0, never decreases, ends at `idx.len()`; within
/// each row the indices strictly increase and stay below `limit`.
fn check_compressed(
    ptr: &[u32],
    idx: &[u32],
    limit: usize,
    row: &str,
    column: &str,
) -> Result<(), Reason> {
    if ptr.first() != Some(&0) || ptr.last().map(|&p| p as usize) != Some(idx.len()) {
        return Err(format!(
            "row_ptr must run from 0 to {} (the number of stored entries)",
            idx.len()
        ));
    }
    if let Some(r) = ptr.windows(2).position(|w| w[0] > w[1]) {
        return Err(format!("row_ptr decreases at {row} {r}"));
    }
    for (r, w) in ptr.windows(2).enumerate() {
        let cells = &idx[w[0] as usize..w[1] as usize];
        let increasing = cells.windows(2).all(|p| p[0] < p[1]);
        if !increasing || cells.last().is_some_and(|&c| c as usize >= limit) {
            return Err(format!(
                "{row} {r} has {column} indices that are not strictly increasing below {limit}"
            ));
        }
    }
    Ok(())
}
