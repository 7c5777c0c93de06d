//! Byte-level text: the built-in corpus, any file of bytes, the 90/5/5 split into train,
//! validation and test, and seeded random windows.

use std::io::Read;
use std::path::Path;

use rand::{RngExt, SeedableRng};

use crate::error::{Error, Result};

/// The King James Version of the Bible, gzip-compressed (see corpus/README.md).
const BUILTIN_GZ: &[u8] = include_bytes!("../../corpus/kjv.txt.gz");

/// The built-in corpus, decompressed (4.3 MB of ASCII).
pub fn builtin_corpus() -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(BUILTIN_GZ)
        .read_to_end(&mut out)
        .expect("the built-in corpus is a valid gzip stream");
    out
}

/// A text split by bytes into train, validation and test parts.
#[derive(Clone, Debug)]
pub struct TextSplits {
    pub train: Vec<u8>,
    pub validation: Vec<u8>,
    pub test: Vec<u8>,
}

impl TextSplits {
    /// The first 90% for training, the next 5% for validation, the last 5% for testing
    /// (for enwik8: the standard 90M / 5M / 5M).
    pub fn new(bytes: Vec<u8>) -> TextSplits {
        let n = bytes.len();
        let (a, b) = (n * 90 / 100, n * 95 / 100);
        TextSplits {
            test: bytes[b..].to_vec(),
            validation: bytes[a..b].to_vec(),
            train: bytes[..a].to_vec(),
        }
    }

    /// Reads any file of bytes and splits it; a file too short for windows of `window`
    /// bytes in every split is an error naming the file.
    pub fn from_file(path: &Path, window: usize) -> Result<TextSplits> {
        let splits = TextSplits::new(read_text(path)?);
        let shortest = splits.validation.len().min(splits.test.len());
        if shortest <= window {
            return Err(Error::Data {
                path: path.to_path_buf(),
                why: format!(
                    "{} bytes leave {shortest} bytes for validation and test, fewer than a window of {} plus its target",
                    splits.train.len() + splits.validation.len() + splits.test.len(),
                    window + 1
                ),
            });
        }
        Ok(splits)
    }
}

/// Most bytes a text file may hold (read whole): enwik9, the largest of the usual
/// byte-level corpora, is 1 GB.
pub const MAX_TEXT_BYTES: u64 = 4 << 30;

/// The bytes of a text file, read with a cap ([`MAX_TEXT_BYTES`]); devices and pipes are
/// refused.
pub fn read_text(path: &Path) -> Result<Vec<u8>> {
    crate::files::read_file_capped(path, MAX_TEXT_BYTES).map_err(|e| Error::io(path, "read", e))
}

/// Errors unless `data` holds at least one window of `window` (≥ 1) bytes plus its target.
fn check_window(data: &[u8], window: usize) -> Result<()> {
    if window == 0 || data.len() <= window {
        return Err(Error::Invalid {
            what: "text windows".into(),
            why: format!(
                "a text of {} bytes holds no window of {window} bytes (at least 1) and its \
                 next-byte target",
                data.len()
            ),
        });
    }
    Ok(())
}

/// `count` windows of `window` + 1 bytes from `data` (inputs and next-byte targets), at
/// random starts drawn from `seed`: ([count, window] inputs, [count, window] targets).
pub fn random_windows(
    data: &[u8],
    window: usize,
    count: usize,
    seed: u64,
) -> Result<(Vec<u32>, Vec<u32>)> {
    check_window(data, window)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut inputs, mut targets) = (
        Vec::with_capacity(count * window),
        Vec::with_capacity(count * window),
    );
    for _ in 0..count {
        let start = rng.random_range(0..data.len() - window);
        inputs.extend(data[start..start + window].iter().map(|&b| b as u32));
        targets.extend(
            data[start + 1..start + window + 1]
                .iter()
                .map(|&b| b as u32),
        );
    }
    Ok((inputs, targets))
}

/// Non-overlapping windows covering the start of `data` in order, at most `count`: the
/// fixed evaluation set.
pub fn fixed_windows(data: &[u8], window: usize, count: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    check_window(data, window)?;
    let usable = (data.len().saturating_sub(1) / window).min(count);
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for w in 0..usable {
        let start = w * window;
        inputs.extend(data[start..start + window].iter().map(|&b| b as u32));
        targets.extend(
            data[start + 1..start + window + 1]
                .iter()
                .map(|&b| b as u32),
        );
    }
    Ok((inputs, targets))
}
