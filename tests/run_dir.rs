//! Run folders: a new run never takes over a folder that holds one, a default folder
//! moves on to the next free name, and a lock keeps a second run out while one writes.

use std::path::PathBuf;

use rezero::train::run_dir::{LOCK_FILE, claim, fresh_default, holds_run};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rezero-rundir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_folder_that_holds_a_run_is_never_taken_over() {
    let root = scratch("refuse");
    let run = root.join("run");
    assert!(!holds_run(&run));
    let lock = claim(&run, false).unwrap();
    assert!(run.join(LOCK_FILE).exists());
    std::fs::write(run.join("metrics.csv"), "step,loss\n1,2.5\n").unwrap();
    drop(lock);
    assert!(
        !run.join(LOCK_FILE).exists(),
        "dropping the lock frees the folder"
    );
    assert!(holds_run(&run));
    let err = claim(&run, false).unwrap_err().to_string();
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
        "step,loss\n1,2.5\n"
    );
    // Resuming needs a checkpoint.
    let err = claim(&run, true).unwrap_err().to_string();
    assert!(err.contains("no model.safetensors"), "{err}");
    std::fs::write(run.join("model.safetensors"), b"x").unwrap();
    drop(claim(&run, true).unwrap());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn default_folders_move_on_to_the_next_free_name() {
    let root = scratch("default");
    let base = root.join("lm-rezero");
    assert_eq!(fresh_default(&base), base);
    std::fs::create_dir_all(&base).unwrap();
    assert_eq!(fresh_default(&base), base, "an empty folder holds no run");
    std::fs::write(base.join("model.safetensors"), b"x").unwrap();
    assert_eq!(fresh_default(&base), root.join("lm-rezero-2"));
    std::fs::create_dir_all(root.join("lm-rezero-2")).unwrap();
    std::fs::write(root.join("lm-rezero-2").join("summary.txt"), b"x").unwrap();
    assert_eq!(fresh_default(&base), root.join("lm-rezero-3"));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_locked_folder_is_refused_and_a_crashed_runs_lock_is_taken_over() {
    let root = scratch("lock");
    let run = root.join("run");
    let held = claim(&run, false).unwrap();
    let err = claim(&run, false).unwrap_err().to_string();
    assert!(err.contains("in use by another run"), "{err}");
    drop(held);
    // A lock whose process no longer exists (pid far above any real one).
    std::fs::write(run.join(LOCK_FILE), "4000000000").unwrap();
    if cfg!(target_os = "linux") {
        let lock = claim(&run, false).unwrap();
        let owner = std::fs::read_to_string(run.join(LOCK_FILE)).unwrap();
        assert_eq!(owner, std::process::id().to_string());
        drop(lock);
    }
    std::fs::remove_dir_all(root).unwrap();
}
