//! A run folder is owned by one run at a time and never reused by accident: a new run
//! refuses a folder that already holds a run (continue it with `--resume`, or choose
//! another `--out`), a default folder that holds one is passed over for the next free name
//! (`runs/lm-rezero-2`, ...), and a lock file claims the folder while a run writes into it.

use std::path::{Path, PathBuf};

use crate::gpu::{Error, Result};

/// The files whose presence means a folder holds a run.
const RUN_FILES: [&str; 4] = [
    "model.safetensors",
    "metrics.csv",
    "eval.csv",
    "summary.txt",
];

/// The lock file's name inside a run folder.
pub const LOCK_FILE: &str = ".rezero.lock";

/// Whether `dir` holds (part of) a run.
pub fn holds_run(dir: &Path) -> bool {
    RUN_FILES.iter().any(|f| dir.join(f).exists())
}

/// `base` if it holds no run, else the first of `base-2`, `base-3`, ... that holds none
/// (for default folders, which must never silently take over an earlier run).
pub fn fresh_default(base: &Path) -> PathBuf {
    if !holds_run(base) {
        return base.to_path_buf();
    }
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    (2u64..)
        .map(|i| base.with_file_name(format!("{name}-{i}")))
        .find(|p| !holds_run(p))
        .expect("some suffix is free")
}

/// Holds a run folder's lock; dropping it releases the folder.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the process that wrote a lock is still running (on Linux; elsewhere assumed).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Claims `dir` for a new run (`resume` false: it must not hold a run) or for continuing
/// the run in it (`resume` true: it must hold a checkpoint), making the folder and taking
/// its lock. A lock left by a process that no longer runs is taken over.
pub fn claim(dir: &Path, resume: bool) -> Result<RunLock> {
    if resume && !dir.join("model.safetensors").exists() {
        return Err(Error::data(
            dir,
            "holds no model.safetensors to resume: drop --resume to start a run there",
        ));
    }
    if !resume && holds_run(dir) {
        return Err(Error::data(
            dir,
            "already holds a run: continue it with --resume, or give another --out \
             (nothing was overwritten)",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create the run folder", e))?;
    let path = dir.join(LOCK_FILE);
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                use std::io::Write;
                let mut file = file;
                let _ = write!(file, "{}", std::process::id());
                return Ok(RunLock { path });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                match owner.trim().parse::<u32>() {
                    Ok(pid) if !alive(pid) => {
                        let _ = std::fs::remove_file(&path); // a crashed run's lock
                    }
                    _ => {
                        return Err(Error::data(
                            dir,
                            format!(
                                "is in use by another run (process {}; {LOCK_FILE}): wait for \
                                 it, or remove that file if no run is using the folder",
                                owner.trim()
                            ),
                        ));
                    }
                }
            }
            Err(e) => return Err(Error::io(&path, "create the lock", e)),
        }
    }
    Err(Error::data(&path, "cannot take the lock"))
}
