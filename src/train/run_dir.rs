//! A run folder is owned by one run at a time and never reused by accident: a new run
//! refuses a folder that already holds a run (continue it with `--resume`, or choose
//! another `--out`), a default folder that holds one is passed over for the next free name
//! (`runs/lm-rezero-2`, ...), and a lock file claims the folder while a run writes into it.
//! What a user or an earlier run left there is kept: notes in a CSV, the logs of a run
//! stopped before its first checkpoint (moved aside), kept checkpoints (a new run refuses
//! the folder rather than mix its checkpoints with them).
//! [`RunDir`] owns everything a run writes there: the lock, the metrics and evaluation CSVs,
//! the summary and where the checkpoint goes.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::gpu::{Error, Result};

/// The file whose presence means a folder holds a run to keep: its checkpoint. A folder
/// that holds kept checkpoints holds one too.
const RUN_FILES: [&str; 1] = ["model.safetensors"];

/// A run's logs and summary: alone (no checkpoint), the record of a run stopped before its
/// first checkpoint (killed, or diverged), which a new run there sets aside (see [`claim`]).
const LOG_FILES: [&str; 3] = ["metrics.csv", "eval.csv", "summary.txt"];

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

/// Whether `dir` holds a run to keep: a checkpoint, or kept checkpoints (a new run there
/// would mix its checkpoints with another run's).
pub fn holds_run(dir: &Path) -> bool {
    let kept = std::fs::read_dir(dir.join(KEPT_CHECKPOINTS));
    RUN_FILES.iter().any(|f| dir.join(f).exists()) || kept.is_ok_and(|mut k| k.next().is_some())
}

/// `base` if it holds no run and no live run has locked it (one before its first
/// checkpoint), else the first of `base-2`, `base-3`, ... that is free (for default
/// folders, which must never silently take over an earlier run).
pub fn fresh_default(base: &Path) -> PathBuf {
    let free = |dir: &Path| {
        !holds_run(dir) && !matches!(lock_owner(&dir.join(LOCK_FILE)), Some(Owner::Live(_)))
    };
    if free(base) {
        return base.to_path_buf();
    }
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    (2u64..)
        .map(|i| base.with_file_name(format!("{name}-{i}")))
        .find(|p| free(p))
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
/// its lock. The logs of a run stopped before its first checkpoint are moved aside for a
/// new run (into `stopped-run/`, or `stopped-run-2/`, ...), never deleted.
pub fn claim(dir: &Path, resume: bool) -> Result<RunLock> {
    if resume && !dir.join("model.safetensors").exists() {
        return Err(Error::data(dir, NOTHING_TO_RESUME));
    }
    if !resume && holds_run(dir) {
        return Err(Error::data(
            dir,
            "already holds a run: continue it with --resume, or give another --out \
             (nothing was overwritten)",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create the run folder", e))?;
    let lock = take_lock(dir)?;
    if !resume {
        // Again under the lock: a run may have written its first checkpoint and ended
        // since the check above.
        if holds_run(dir) {
            return Err(Error::data(
                dir,
                "a run there wrote its checkpoint just now",
            ));
        }
        set_aside_stopped_logs(dir)?;
    }
    Ok(lock)
}

/// Why a folder without a checkpoint cannot be resumed, and what to do instead.
pub const NOTHING_TO_RESUME: &str = "holds no model.safetensors to resume (a run there stopped \
     before its first checkpoint, or none ran): drop --resume to start a run there (what a stopped \
     run wrote is moved aside)";

/// Moves the logs and summary of a run stopped before its first checkpoint into a fresh
/// `stopped-run*` folder, saying so.
fn set_aside_stopped_logs(dir: &Path) -> Result<()> {
    let logs: Vec<&str> = LOG_FILES
        .into_iter()
        .filter(|f| dir.join(f).symlink_metadata().is_ok())
        .collect();
    if logs.is_empty() {
        return Ok(());
    }
    let aside = (1u64..)
        .map(|i| match i {
            1 => dir.join("stopped-run"),
            i => dir.join(format!("stopped-run-{i}")),
        })
        .find(|p| p.symlink_metadata().is_err())
        .expect("some suffix is free");
    std::fs::create_dir(&aside).map_err(|e| Error::io(&aside, "create", e))?;
    for log in &logs {
        let to = aside.join(log);
        std::fs::rename(dir.join(log), &to).map_err(|e| Error::io(&to, "move a log to", e))?;
    }
    eprintln!(
        "{} held the record of a run stopped before its first checkpoint ({}): moved to {}",
        dir.display(),
        logs.join(", "),
        aside.display()
    );
    Ok(())
}

/// Who holds a lock file, as far as can be told.
enum Owner {
    /// A process that is running (on Linux; elsewhere any process id is taken as running).
    Live(u32),
    /// No live process: empty, unreadable, not a number, or a process that has ended.
    Stale { text: String, why: String },
}

/// The owner of the lock at `path`, None if there is none.
fn lock_owner(path: &Path) -> Option<Owner> {
    let text = match crate::files::read_text_capped(path, 64) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        read => read.unwrap_or_default(),
    };
    let owner = match text.trim().parse::<u32>() {
        Ok(pid) if alive(pid) => Owner::Live(pid),
        Ok(pid) => Owner::Stale {
            why: format!("process {pid} has ended"),
            text,
        },
        Err(_) => Owner::Stale {
            why: format!("it names no process ({:?})", text.trim()),
            text,
        },
    };
    Some(owner)
}

/// Takes `dir`'s lock: a lock file holding this process's id, created whole. A stale lock
/// ([`Owner::Stale`]) is taken over, saying so.
fn take_lock(dir: &Path) -> Result<RunLock> {
    let path = dir.join(LOCK_FILE);
    for _ in 0..3 {
        let pid = std::process::id().to_string();
        match crate::files::create_new_whole(&path, pid.as_bytes()) {
            Ok(()) => return Ok(RunLock { path }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match lock_owner(&path) {
                Some(Owner::Live(pid)) => {
                    return Err(Error::data(
                        dir,
                        format!(
                            "is in use by another run (process {pid}; {LOCK_FILE}): wait \
                             for it, or remove that file if no run is using the folder"
                        ),
                    ));
                }
                Some(Owner::Stale { text, why }) => {
                    eprintln!("taking over {}: {why}", path.display());
                    remove_stale_lock(&path, &text)?;
                }
                None => {} // removed meanwhile: try again
            },
            Err(e) => return Err(Error::io(&path, "create the lock", e)),
        }
    }
    Err(Error::data(&path, "cannot take the lock"))
}

/// Removes the stale lock at `path` that read `seen`, unless another process took it over
/// meanwhile: the lock is first renamed to a name of this process's own (of two processes
/// only one rename succeeds), and put back if it is not the lock that was read.
fn remove_stale_lock(path: &Path, seen: &str) -> Result<()> {
    let aside = path.with_extension(format!("stale-{}", std::process::id()));
    match std::fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, "take over the stale lock", e)),
    }
    let now = crate::files::read_text_capped(&aside, 64).unwrap_or_default();
    if now != seen {
        let _ = std::fs::hard_link(&aside, path); // another run's fresh lock: put it back
    }
    let _ = std::fs::remove_file(&aside);
    Ok(())
}

/// A claimed run folder and the files a run writes into it: `metrics.csv` (a row each
/// logged step), `eval.csv` (a row each evaluation), `summary.txt` and `model.safetensors`.
/// Both CSVs start with a `step` column.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    metrics: std::fs::File,
    /// Empty fields appended to each metrics row: a resumed run's CSV has columns this run
    /// does not write (an f16 run's loss scale, continued at f32).
    metrics_pad: usize,
    eval: std::fs::File,
    _lock: RunLock,
}

impl RunDir {
    /// Claims `path` ([`claim`]) and opens its CSVs. A new run (`resumed_at` None) creates
    /// them with these headers; a resumed one keeps the rows up to its checkpoint's step,
    /// drops any written after it (by a run that stopped before its next checkpoint), and
    /// appends. A run may resume at the other precision, whose metrics have the loss
    /// scale's columns ([`LOSS_SCALE_COLUMNS`]) or not: a resumed CSV without them gains
    /// them (empty in its earlier rows), one with them keeps them (empty in the new rows).
    /// Any other header is refused (the run was of another kind).
    pub fn open(
        path: &Path,
        resumed_at: Option<u64>,
        metrics_header: &str,
        eval_header: &str,
    ) -> Result<RunDir> {
        let lock = claim(path, resumed_at.is_some())?;
        let open = |name: &str, header: &str| match resumed_at {
            None => Ok((create_csv(&path.join(name), header)?, 0)),
            Some(step) => reopen_csv(&path.join(name), header, step),
        };
        let (metrics, metrics_pad) = open("metrics.csv", metrics_header)?;
        let (eval, _) = open("eval.csv", eval_header)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            metrics,
            metrics_pad,
            eval,
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
        let pad = ",".repeat(self.metrics_pad);
        writeln!(self.metrics, "{row}{pad}").map_err(|e| Error::io(&path, "write", e))
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

/// The metrics columns of a loss-scaled (mixed-precision) run, after the others.
pub const LOSS_SCALE_COLUMNS: &str = ",loss_scale,skipped_steps";

/// A resumed run's CSV: its header checked ([`RunDir::open`]), data rows after `step`
/// (written by a run that stopped before its next checkpoint) dropped, saying so; every
/// other line (a note of the user's) kept; opened to append. Also the empty fields each
/// new row needs (its header has more columns than this run writes).
fn reopen_csv(path: &Path, header: &str, step: u64) -> Result<(std::fs::File, usize)> {
    let text = match crate::files::read_text_capped(path, crate::files::MAX_CSV_BYTES) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((create_csv(path, header)?, 0));
        }
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    let mut lines = text.lines();
    let old = lines.next().unwrap_or("");
    // The loss scale's columns, which come and go as a run changes precision.
    let extra = LOSS_SCALE_COLUMNS.split(',').count() - 1;
    let (header, widen, pad) = match old {
        _ if old == header => (header, 0, 0),
        _ if header == format!("{old}{LOSS_SCALE_COLUMNS}") => (header, extra, 0),
        _ if old == format!("{header}{LOSS_SCALE_COLUMNS}") => (old, 0, extra),
        _ => {
            return Err(Error::data(
                path,
                format!("does not start with the header this run writes ({header}): not resumable"),
            ));
        }
    };
    let is_row = |row: &str| {
        row.split(',')
            .next()
            .unwrap_or("")
            .trim()
            .parse::<u64>()
            .ok()
    };
    let after = |row: &&str| is_row(row).is_some_and(|s| s > step);
    let (dropped, kept): (Vec<&str>, Vec<&str>) = lines.partition(after);
    // Rewritten when rows go or columns come, or when the last line lacks its newline (a
    // note appended by hand), which the next row would otherwise be glued to.
    if !dropped.is_empty() || widen > 0 || !text.ends_with('\n') {
        let empty = ",".repeat(widen);
        let kept: String = std::iter::once(header.to_string())
            .chain(kept.iter().map(|row| match is_row(row) {
                Some(_) => format!("{row}{empty}"),
                None => row.to_string(),
            }))
            .map(|row| format!("{row}\n"))
            .collect();
        crate::files::write_atomically(path, kept.as_bytes())
            .map_err(|e| Error::io(path, "rewrite", e))?;
        if !dropped.is_empty() {
            eprintln!(
                "{}: dropped {} rows after step {step}, the checkpoint's (written by a run \
                 that stopped before its next checkpoint)",
                path.display(),
                dropped.len()
            );
        }
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, "append to", e))?;
    Ok((file, pad))
}
