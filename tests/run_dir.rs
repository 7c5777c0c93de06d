//! Run folders: a new run never takes over a folder that holds one (a checkpoint, kept
//! checkpoints), sets aside what a run stopped before its first checkpoint wrote, a default
//! folder moves on to the next free name, a lock keeps a second run out while one writes
//! (a stale one is taken over), and a resumed CSV keeps the user's notes.

use std::path::PathBuf;

use rezero::train::run_dir::{LOCK_FILE, RunDir, claim, fresh_default, holds_run};

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
    std::fs::write(run.join("model.safetensors"), b"x").unwrap();
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
    std::fs::create_dir_all(root.join("lm-rezero-2/checkpoints")).unwrap();
    std::fs::write(
        root.join("lm-rezero-2/checkpoints/step-1.safetensors"),
        b"x",
    )
    .unwrap();
    assert_eq!(fresh_default(&base), root.join("lm-rezero-3"));
    // A live run before its first checkpoint holds its folder too.
    let live = claim(&root.join("lm-rezero-3"), false).unwrap();
    assert_eq!(fresh_default(&base), root.join("lm-rezero-4"));
    drop(live);
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
    let left: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a taken-over lock left {left:?}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn the_logs_of_a_run_stopped_before_its_first_checkpoint_are_set_aside_not_lost() {
    let root = scratch("stopped");
    let run = root.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("metrics.csv"), "step,loss\n1,2.5\n").unwrap();
    std::fs::write(run.join("eval.csv"), "step,val\n").unwrap();
    std::fs::write(run.join("summary.txt"), "diverged=true\n").unwrap();
    assert!(!holds_run(&run), "logs alone are a stopped run");
    let err = claim(&run, true).unwrap_err().to_string();
    assert!(
        err.contains("no model.safetensors") && err.contains("drop --resume"),
        "{err}"
    );
    drop(claim(&run, false).unwrap());
    let aside = run.join("stopped-run");
    assert_eq!(
        std::fs::read_to_string(aside.join("metrics.csv")).unwrap(),
        "step,loss\n1,2.5\n"
    );
    assert!(aside.join("eval.csv").exists() && aside.join("summary.txt").exists());
    assert!(!run.join("metrics.csv").exists());
    // A second stopped run goes beside the first.
    std::fs::write(run.join("metrics.csv"), "step,loss\n").unwrap();
    drop(claim(&run, false).unwrap());
    assert!(run.join("stopped-run-2/metrics.csv").exists());
    // Kept checkpoints alone hold a run: a new run would mix its own with them.
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::write(run.join("checkpoints/step-00000001.safetensors"), b"x").unwrap();
    assert!(holds_run(&run));
    let err = claim(&run, false).unwrap_err().to_string();
    assert!(err.contains("already holds a run"), "{err}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn an_empty_or_garbled_lock_is_stale() {
    let root = scratch("empty-lock");
    let run = root.join("run");
    std::fs::create_dir_all(&run).unwrap();
    for stale in ["", "\n", "not a pid", "-3"] {
        std::fs::write(run.join(LOCK_FILE), stale).unwrap();
        let lock = claim(&run, false).unwrap();
        let owner = std::fs::read_to_string(run.join(LOCK_FILE)).unwrap();
        assert_eq!(owner, std::process::id().to_string());
        drop(lock);
    }
    let left: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a taken-over lock left {left:?}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_resumed_csv_keeps_the_users_notes_and_drops_only_later_rows() {
    let root = scratch("notes");
    let run = root.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("model.safetensors"), b"x").unwrap();
    let eval = "step,val_bpb\n10,2.5\n# lr too high? try 3e-4\n20,2.4\n30,2.3\n\n";
    std::fs::write(run.join("eval.csv"), eval).unwrap();
    // A note appended by hand without its newline: the next row must not be glued to it.
    std::fs::write(run.join("metrics.csv"), "step,loss\n20,1.0\nnote").unwrap();
    let mut dir = RunDir::open(&run, Some(20), "step,loss", "step,val_bpb").unwrap();
    dir.eval_row("30,2.2").unwrap();
    dir.metrics_row("30,0.9").unwrap();
    drop(dir);
    assert_eq!(
        std::fs::read_to_string(run.join("eval.csv")).unwrap(),
        "step,val_bpb\n10,2.5\n# lr too high? try 3e-4\n20,2.4\n\n30,2.2\n"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
        "step,loss\n20,1.0\nnote\n30,0.9\n"
    );
    std::fs::remove_dir_all(root).unwrap();
}
