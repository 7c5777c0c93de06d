//! Writing a file so that nothing is ever half written or lost: a uniquely named temporary
//! file beside the target, created exclusively (it never follows a link or reuses a file
//! that is already there), written, flushed to disk, then renamed over the target. On any
//! error the temporary file is removed and the target is untouched.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A fresh temporary path beside `path`: `.NAME.PID-RANDOM.tmp`.
fn temporary_beside(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let unique: u64 = rand::random();
    dir.join(format!(".{name}.{}-{unique:016x}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` atomically (see the module docs), making its folder if needed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temporary_beside(path);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads at most `cap` bytes from `reader`: the bytes, or an error if there are more (an
/// input that never ends, a decompression bomb) or the read fails.
pub fn read_capped(reader: impl std::io::Read, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {cap} bytes"),
        ));
    }
    Ok(out)
}

/// Reads the regular file at `path`, refusing one larger than `cap` bytes before reading
/// it, and anything that is not a regular file (a device or a pipe may never end).
pub fn read_file_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a device or a pipe may never end)",
        ));
    }
    if meta.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes, more than the {cap} allowed", meta.len()),
        ));
    }
    read_capped(file, cap)
}
