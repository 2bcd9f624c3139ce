//! The 16-byte footer that closes every file: where the data section starts, and a
//! CRC-32 of everything before the checksum, so any corruption is caught before parsing.

use crate::error::LoadError;

/// Length of the footer in bytes.
pub const FOOTER_LEN: usize = 16;
/// Last four bytes of every file (and bytes 4..8, the FlatBuffers identifier).
pub const MAGIC: [u8; 4] = *b"LOPR";
/// Alignment of the data section and of every blob in it, relative to the file start.
pub const BLOB_ALIGN: usize = 64;

/// A file split into its parts after the footer checked out.
pub struct Parts<'a> {
    /// The FlatBuffer, `[0, data_offset)`.
    pub flatbuffer: &'a [u8],
    /// Offset of the data section from the start of the file.
    pub data_offset: usize,
    /// The data section, `[data_offset, len - 16)`.
    pub data: &'a [u8],
}

/// CRC-32 of `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bytes);
    hasher.finalize()
}

/// Checks magic, checksum and data offset, and splits the file into its parts.
pub fn split(bytes: &[u8]) -> Result<Parts<'_>, LoadError> {
    // Smallest FlatBuffer: root offset and identifier.
    let min = 8 + FOOTER_LEN;
    if bytes.len() < min {
        return Err(LoadError::TooShort {
            len: bytes.len(),
            min,
        });
    }
    let payload = bytes.len() - FOOTER_LEN;
    let footer = &bytes[payload..];
    if footer[12..16] != MAGIC {
        return Err(LoadError::NoFooter {
            offset: bytes.len() - 4,
        });
    }
    let stored = u32::from_le_bytes([footer[8], footer[9], footer[10], footer[11]]);
    let computed = checksum(&bytes[..payload + 8]);
    if stored != computed {
        return Err(LoadError::Checksum { stored, computed });
    }
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&footer[..8]);
    let raw = u64::from_le_bytes(raw);
    let data_offset = usize::try_from(raw)
        .ok()
        .filter(|&o| (8..=payload).contains(&o) && o % BLOB_ALIGN == 0)
        .ok_or(LoadError::DataOffset {
            offset: raw,
            payload,
        })?;
    Ok(Parts {
        flatbuffer: &bytes[..data_offset],
        data_offset,
        data: &bytes[data_offset..payload],
    })
}

/// Appends the footer to a file whose data section starts at `data_offset`.
pub fn seal(file: &mut alloc::vec::Vec<u8>, data_offset: usize) {
    file.extend_from_slice(&(data_offset as u64).to_le_bytes());
    let crc = checksum(file);
    file.extend_from_slice(&crc.to_le_bytes());
    file.extend_from_slice(&MAGIC);
}
