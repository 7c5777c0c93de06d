//! IDX files (MNIST, Fashion-MNIST): images (magic 0x00000803) and labels (0x00000801),
//! raw or gzip-compressed, with every header field and size checked.

use std::path::Path;

use crate::error::{Error, Result};

/// Most bytes an IDX file may hold, and may decompress to (MNIST's training images: 47 MB).
pub const MAX_IDX_BYTES: u64 = 256 << 20;

/// The file's bytes, gunzipped when it starts with the gzip magic. The raw file and the
/// decompressed stream are both capped ([`MAX_IDX_BYTES`]): a device, a pipe or a
/// decompression bomb gets an error, not all the memory.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = crate::files::read_file_capped(path, MAX_IDX_BYTES)
        .map_err(|e| Error::io(path, "read", e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        crate::files::read_capped(flate2::read::GzDecoder::new(&raw[..]), MAX_IDX_BYTES)
            .map_err(|e| Error::data(path, format!("not a valid gzip file of IDX data: {e}")))
    } else {
        Ok(raw)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Images: (count, rows, cols, pixels [count, rows, cols] as bytes).
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bytes = read_maybe_gz(path)?;
    if bytes.len() < 16 {
        return Err(Error::data(
            path,
            format!(
                "{} bytes is too short for an IDX image header (16 bytes)",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(&bytes, 0);
    if magic != 0x0000_0803 {
        return Err(Error::data(
            path,
            format!("magic number {magic:#010x} is not that of IDX images (0x00000803)"),
        ));
    }
    let (count, rows, cols) = (
        be_u32(&bytes, 4) as usize,
        be_u32(&bytes, 8) as usize,
        be_u32(&bytes, 12) as usize,
    );
    if count == 0 || rows == 0 || cols == 0 {
        return Err(Error::data(
            path,
            format!("header says {count} images of {rows}x{cols}: nothing to train on"),
        ));
    }
    let want = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .ok_or_else(|| {
            Error::data(
                path,
                format!("header says {count} images of {rows}x{cols}: too many bytes"),
            )
        })?;
    let have = bytes.len() - 16;
    if have != want {
        return Err(Error::data(
            path,
            format!(
                "header says {count} images of {rows}x{cols} ({want} bytes of pixels), the file holds {have}"
            ),
        ));
    }
    Ok((count, rows, cols, bytes[16..].to_vec()))
}

/// Labels, one byte each.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gz(path)?;
    if bytes.len() < 8 {
        return Err(Error::data(
            path,
            format!(
                "{} bytes is too short for an IDX label header (8 bytes)",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(&bytes, 0);
    if magic != 0x0000_0801 {
        return Err(Error::data(
            path,
            format!("magic number {magic:#010x} is not that of IDX labels (0x00000801)"),
        ));
    }
    let count = be_u32(&bytes, 4) as usize;
    let have = bytes.len() - 8;
    if have != count {
        return Err(Error::data(
            path,
            format!("header says {count} labels, the file holds {have}"),
        ));
    }
    Ok(bytes[8..].to_vec())
}

/// Writes IDX images (for tests and tools): pixels [count, rows, cols].
pub fn write_images(
    path: &Path,
    count: usize,
    rows: usize,
    cols: usize,
    pixels: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(16 + pixels.len());
    for v in [0x0803u32, count as u32, rows as u32, cols as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    write_maybe_gz(path, &out)
}

/// Writes IDX labels (for tests and tools).
pub fn write_labels(path: &Path, labels: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(8 + labels.len());
    for v in [0x0801u32, labels.len() as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(labels);
    write_maybe_gz(path, &out)
}

/// Gzip-compresses when the path ends in `.gz`.
fn write_maybe_gz(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.extension().is_some_and(|e| e == "gz") {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(path)?,
            flate2::Compression::fast(),
        );
        encoder.write_all(bytes)?;
        encoder.finish()?;
        Ok(())
    } else {
        std::fs::write(path, bytes)
    }
}
