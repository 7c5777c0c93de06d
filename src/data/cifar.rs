//! The CIFAR-10 binary version: records of 1 label byte then 3072 pixel bytes (32×32 red,
//! then green, then blue planes), in `data_batch_1.bin` … `data_batch_5.bin` and
//! `test_batch.bin`.

use std::path::Path;

use crate::error::{Error, Result};

/// Bytes in one record.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// (pixels [count, 3, 32, 32] as bytes, labels [count]) of one batch file.
pub fn read_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    // A CIFAR-10 batch holds 10,000 records (30.7 MB); allow four times that.
    let cap = 40_000 * RECORD as u64;
    let bytes =
        crate::files::read_file_capped(path, cap).map_err(|e| Error::io(path, "read", e))?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(Error::Data {
            path: path.to_path_buf(),
            why: format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                bytes.len()
            ),
        });
    }
    let count = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(count * (RECORD - 1));
    let mut labels = Vec::with_capacity(count);
    for (i, record) in bytes.chunks(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(Error::Data {
                path: path.to_path_buf(),
                why: format!(
                    "record {i} has label {}, CIFAR-10 labels are 0..9",
                    record[0]
                ),
            });
        }
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok((pixels, labels))
}

/// Writes a batch file (for tests and tools).
pub fn write_batch(path: &Path, pixels: &[u8], labels: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (i, &label) in labels.iter().enumerate() {
        out.push(label);
        out.extend_from_slice(&pixels[i * (RECORD - 1)..(i + 1) * (RECORD - 1)]);
    }
    std::fs::write(path, out)
}
