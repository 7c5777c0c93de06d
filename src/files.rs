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
    let unique: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    dir.join(format!(".{name}.{}-{unique:016x}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` atomically (see the module docs), making its folder if needed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temporary_beside(path);
    let result = (|| {
        {
            // Closed before the rename.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` holding `bytes`, failing with `AlreadyExists` if something is there; it
/// appears whole (written to a temporary file, then hard-linked into place), so a reader
/// never sees it empty. Where the file system has no hard links it is created exclusively
/// and then written.
pub fn create_new_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_beside(path);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            file.write_all(bytes)
        }
        other => other,
    }
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

/// What kind of thing a path that is not a regular file is, in words.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a pipe (FIFO)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Errors unless `path` (its links followed) is a regular file, looking before anything
/// opens it: opening a pipe with no writer blocks for ever, and a device may never end. A
/// directory is named as one (kind `IsADirectory`), anything else as what it is.
pub fn check_regular_file(path: &Path) -> std::io::Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path)?;
    let file_type = meta.file_type();
    if file_type.is_file() {
        return Ok(meta);
    }
    let kind = kind_of(file_type);
    let (error_kind, why) = if file_type.is_dir() {
        let why = "is a directory, where a file is expected";
        (std::io::ErrorKind::IsADirectory, why.to_string())
    } else {
        let why = format!("is {kind}, not a regular file (it could block or never end)");
        (std::io::ErrorKind::InvalidInput, why)
    };
    Err(std::io::Error::new(error_kind, why))
}

/// Reads the regular file at `path`, refusing one larger than `cap` bytes before reading
/// it, and anything that is not a regular file before opening it ([`check_regular_file`]).
pub fn read_file_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    check_regular_file(path)?;
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

/// Most bytes a run's CSV may hold (read whole).
pub const MAX_CSV_BYTES: u64 = 4 << 30;

/// The text of the regular file at `path` ([`read_file_capped`]), invalid UTF-8 replaced.
pub fn read_text_capped(path: &Path, cap: u64) -> std::io::Result<String> {
    let bytes = read_file_capped(path, cap)?;
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}
