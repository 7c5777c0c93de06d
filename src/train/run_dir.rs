//! A run folder is owned by one run at a time and never reused by accident: a new run
//! refuses a folder that already holds a run (continue it with `--resume`, or choose
//! another `--out`), a default folder that holds one is passed over for the next free name
//! (`runs/lm-rezero-2`, ...), and a lock file claims the folder while a run writes into it.
//! [`RunDir`] owns everything a run writes there: the lock, the metrics and evaluation CSVs,
//! the summary and where the checkpoint goes.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::gpu::{Error, Result};

/// The files whose presence means a folder holds a run.
const RUN_FILES: [&str; 4] = [
    "model.safetensors",
    "metrics.csv",
    "eval.csv",
    "summary.txt",
];

/// The folder of a run's kept checkpoints (`--keep-checkpoints`).
pub const KEPT_CHECKPOINTS: &str = "checkpoints";

/// The checkpoints kept in `run` (`checkpoints/step-N.safetensors`), by step.
pub fn kept_checkpoints(run: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let folder = run.join(KEPT_CHECKPOINTS);
    let entries = std::fs::read_dir(&folder).map_err(|e| Error::io(&folder, "read", e))?;
    let mut kept: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let step = name.strip_prefix("step-")?.strip_suffix(".safetensors")?;
            Some((step.parse().ok()?, p.clone()))
        })
        .collect();
    kept.sort();
    Ok(kept)
}

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
                let owner = crate::files::read_text_capped(&path, 64).unwrap_or_default();
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

/// A claimed run folder and the files a run writes into it: `metrics.csv` (a row each
/// logged step), `eval.csv` (a row each evaluation), `summary.txt` and `model.safetensors`.
/// Both CSVs start with a `step` column.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    metrics: std::fs::File,
    eval: std::fs::File,
    _lock: RunLock,
}

impl RunDir {
    /// Claims `path` ([`claim`]) and opens its CSVs. A new run (`resumed_at` None) creates
    /// them with these headers; a resumed one keeps the rows up to its checkpoint's step,
    /// drops any written after it (by a run that stopped before its next checkpoint), and
    /// appends. A resumed CSV with another header is refused (the run was of another kind).
    pub fn open(
        path: &Path,
        resumed_at: Option<u64>,
        metrics_header: &str,
        eval_header: &str,
    ) -> Result<RunDir> {
        let lock = claim(path, resumed_at.is_some())?;
        let open = |name: &str, header: &str| match resumed_at {
            None => create_csv(&path.join(name), header),
            Some(step) => reopen_csv(&path.join(name), header, step),
        };
        Ok(RunDir {
            path: path.to_path_buf(),
            metrics: open("metrics.csv", metrics_header)?,
            eval: open("eval.csv", eval_header)?,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the run's checkpoint lives.
    pub fn checkpoint(&self) -> PathBuf {
        self.path.join("model.safetensors")
    }

    /// Keeps the checkpoint just written as `checkpoints/step-N.safetensors` (a hard link
    /// where the file system allows, else a copy); one already kept for that step stays.
    pub fn keep_checkpoint(&self, step: u64) -> Result<()> {
        let folder = self.path.join(KEPT_CHECKPOINTS);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, "create", e))?;
        let kept = folder.join(format!("step-{step:08}.safetensors"));
        if kept.exists() {
            return Ok(());
        }
        let from = self.checkpoint();
        std::fs::hard_link(&from, &kept)
            .or_else(|_| std::fs::copy(&from, &kept).map(drop))
            .map_err(|e| Error::io(&kept, "keep the checkpoint as", e))
    }

    /// Appends a row to `metrics.csv`.
    pub fn metrics_row(&mut self, row: &str) -> Result<()> {
        let path = self.path.join("metrics.csv");
        writeln!(self.metrics, "{row}").map_err(|e| Error::io(&path, "write", e))
    }

    /// Appends a row to `eval.csv`.
    pub fn eval_row(&mut self, row: &str) -> Result<()> {
        let path = self.path.join("eval.csv");
        writeln!(self.eval, "{row}").map_err(|e| Error::io(&path, "write", e))
    }

    /// Writes `summary.txt` (atomically): one `key=value` line per field.
    pub fn write_summary(&self, fields: &[(&str, String)]) -> Result<()> {
        let text: String = fields.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let path = self.path.join("summary.txt");
        crate::files::write_atomically(&path, text.as_bytes())
            .map_err(|e| Error::io(&path, "write", e))
    }
}

fn create_csv(path: &Path, header: &str) -> Result<std::fs::File> {
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, "create", e))?;
    writeln!(file, "{header}").map_err(|e| Error::io(path, "write", e))?;
    Ok(file)
}

/// A resumed run's CSV: its header checked, rows after `step` dropped, opened to append.
fn reopen_csv(path: &Path, header: &str, step: u64) -> Result<std::fs::File> {
    let text = match crate::files::read_text_capped(path, crate::files::MAX_CSV_BYTES) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return create_csv(path, header),
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(Error::data(
            path,
            format!("does not start with the header this run writes ({header}): not resumable"),
        ));
    }
    let kept: String = std::iter::once(header)
        .chain(lines.filter(|row| {
            let first = row.split(',').next().unwrap_or("");
            first.parse::<u64>().is_ok_and(|s| s <= step)
        }))
        .map(|row| format!("{row}\n"))
        .collect();
    if kept.len() != text.len() {
        crate::files::write_atomically(path, kept.as_bytes())
            .map_err(|e| Error::io(path, "rewrite", e))?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, "append to", e))
}
