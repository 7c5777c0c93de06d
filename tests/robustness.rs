//! Hostile input to the training commands, one defect class at a time: each case gives the
//! command, the exit status it must end with and a fragment of its message, and the
//! data-loss cases check that the earlier checkpoint is byte-identical afterwards.

mod common;

use std::path::Path;

use common::cli::{TINY_LM, expect, rezero, summary_field, temp_dir, text, tiny_dataset, tiny_mlp};
use rezero::train::core::DivergenceGuard;

#[test]
fn divergence_is_a_loss_that_is_not_finite_or_explodes() {
    let mut guard = DivergenceGuard::default();
    assert_eq!(
        guard.check(2.3, false),
        None,
        "the first loss sets the scale"
    );
    assert_eq!(guard.check(200.0, false), None, "under 100x the first");
    let why = guard.check(231.0, false).expect("over 100x the first");
    assert!(why.contains("100x its first value 2.3"), "{why}");
    assert_eq!(guard.check(1e9, true), None, "allowed on purpose");
    assert!(guard.check(f32::NAN, true).unwrap().contains("NaN"));
    assert!(guard.check(f32::INFINITY, true).unwrap().contains("inf"));
    // A run that starts exploded (an un-gated deep residual stack: 5e9 at step 1) is
    // caught at once, though its losses never grow 100x.
    let mut exploded = DivergenceGuard::default();
    let why = exploded.check(5.1e9, false).expect("over the ceiling");
    assert!(why.contains("is over 1e6"), "{why}");
    assert_eq!(exploded.check(5.1e9, true), None, "allowed on purpose");
    let mut high = DivergenceGuard::default();
    assert_eq!(high.check(9.9e5, false), None, "under the ceiling");
}

#[test]
fn a_diverging_run_stops_exits_non_zero_and_keeps_its_checkpoint() {
    let _gpu = require_gpu!();
    let dir = temp_dir("robust-diverge");
    tiny_dataset(&dir);
    let run = dir.join("run");
    expect(&tiny_mlp(&dir, &run, &["--epochs", "1"]), 0, &["20 steps"]);
    let good = std::fs::read(run.join("model.safetensors")).unwrap();
    // Resumed for a second epoch at a learning rate that blows the weights up.
    let wild = ["--epochs", "2", "--resume", "--lr", "1e30"];
    let out = tiny_mlp(&dir, &run, &wild);
    expect(&out, 1, &["diverged at step", "training loss"]);
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), good);
    assert_eq!(summary_field(&run, "diverged"), "true");
    assert!(!summary_field(&run, "diverged_at_step").is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // --compare marks a diverged variant and goes on to the next.
    let cmp = dir.join("cmp");
    let args = ["--compare", "plain,rezero", "--lr", "1e30"];
    let out = tiny_mlp(&dir, &cmp, &args);
    expect(&out, 0, &["plain-2x8", "rezero-2x8", "diverged at step"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resume_compares_the_flags_and_the_step() {
    let _gpu = require_gpu!();
    let dir = temp_dir("robust-resume");
    tiny_dataset(&dir);
    let run = dir.join("run");
    expect(&tiny_mlp(&dir, &run, &["--steps", "12"]), 0, &["12 steps"]);
    let good = std::fs::read(run.join("model.safetensors")).unwrap();
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    // Another width, another seed, another batch: each refused by name.
    for (flag, value) in [("--width", "16"), ("--seed", "3"), ("--batch", "5")] {
        let mut args = vec!["--steps", "15", "--resume"];
        args.extend([flag, value]);
        let out = tiny_mlp(&dir, &run, &args);
        expect(&out, 1, &[&format!("{flag} is {value} here"), "--resume"]);
    }
    // --steps at or below the checkpoint's step.
    expect(
        &tiny_mlp(&dir, &run, &["--steps", "12", "--resume"]),
        1,
        &["already took 12 steps"],
    );
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), good);
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
        metrics
    );
    // A row written after the checkpoint (by a run that stopped before its next one) is
    // dropped on resume, so every step has one row.
    std::fs::write(
        run.join("metrics.csv"),
        format!("{metrics}999,1,0.5,0.01,1\n"),
    )
    .unwrap();
    expect(
        &tiny_mlp(&dir, &run, &["--steps", "16", "--resume"]),
        0,
        &["16 steps"],
    );
    let resumed = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(!resumed.contains("\n999,"), "{resumed}");
    assert!(resumed.starts_with(&metrics), "{resumed}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn numeric_flags_are_checked_before_anything_runs() {
    let dir = temp_dir("robust-flags");
    let out = dir.join("never");
    let cases: [(&[&str], &str); 12] = [
        (&["--lr", "NaN"], "not a finite number"),
        (&["--lr=-1"], "is negative"),
        (&["--alpha-init", "inf"], "not a finite number"),
        (&["--momentum", "1.5"], "not below 1"),
        (&["--clip", "0"], "not above 0"),
        (&["--weight-decay=-0.1"], "is negative"),
        (&["--log-every", "0"], "--log-every"),
        (&["--test-limit", "0"], "--test-limit"),
        (&["--train-limit", "0"], "--train-limit"),
        (&["--epochs", "0"], "--epochs"),
        (&["--optimizer", "adamm"], "possible values"),
        (
            &["--compare", "plain", "--variant", "rezero"],
            "cannot be used with",
        ),
    ];
    for (args, fragment) in cases {
        let got = tiny_mlp(&dir, &out, args);
        expect(&got, 2, &[fragment]);
    }
    let lm = |args: &[&str]| rezero(&[&["train", "lm", "--quiet"][..], args].concat());
    expect(&lm(&["--eval-every", "0"]), 2, &["--eval-every"]);
    expect(&lm(&["--eval-windows", "0"]), 2, &["--eval-windows"]);
    expect(&lm(&["--target-bpb", "NaN"]), 2, &["not a finite number"]);
    expect(&lm(&["--variant", "rezro"]), 2, &["possible values"]);
    assert!(!out.exists(), "nothing was created");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn duplicate_or_resumed_comparisons_are_refused() {
    let _gpu = require_gpu!();
    let dir = temp_dir("robust-compare");
    tiny_dataset(&dir);
    let out = dir.join("cmp");
    let got = tiny_mlp(&dir, &out, &["--compare", "rezero,plain,rezero"]);
    expect(&got, 1, &["--compare", "names rezero twice"]);
    let got = tiny_mlp(&dir, &out, &["--compare", "rezero,plain", "--resume"]);
    expect(&got, 1, &["does not combine with --compare"]);
    assert!(!out.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sizes_no_machine_holds_are_refused_before_allocating() {
    let _gpu = require_gpu!();
    let dir = temp_dir("robust-sizes");
    tiny_dataset(&dir);
    let out = dir.join("run");
    let huge_width = tiny_mlp(&dir, &out, &["--width", "3000000000"]);
    expect(&huge_width, 1, &["--width 3000000000"]);
    let overflow = tiny_mlp(&dir, &out, &["--width", "18446744073709551615"]);
    expect(&overflow, 1, &["overflows"]);
    let deep = tiny_mlp(&dir, &out, &["--depth", "100000000", "--width", "4096"]);
    expect(&deep, 1, &["--depth 100000000", "memory"]);
    let lm = |args: &[&str]| {
        let base = ["train", "lm", "--quiet", "--out", out.to_str().unwrap()];
        rezero(&[&base[..], args].concat())
    };
    expect(
        &lm(&["--seq", "100000", "--batch", "64"]),
        1,
        &["--seq 100000"],
    );
    expect(
        &lm(&["--d-model", "4000000000"]),
        1,
        &["--d-model 4000000000"],
    );
    assert!(!out.exists(), "nothing was created");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_final_train_loss_does_not_depend_on_log_every() {
    let _gpu = require_gpu!();
    let dir = temp_dir("robust-final");
    tiny_dataset(&dir);
    let (a, b) = (dir.join("a"), dir.join("b"));
    expect(
        &tiny_mlp(&dir, &a, &["--steps", "30", "--log-every", "1"]),
        0,
        &[],
    );
    expect(
        &tiny_mlp(&dir, &b, &["--steps", "30", "--log-every", "7"]),
        0,
        &[],
    );
    let (fa, fb) = (
        summary_field(&a, "final_train_loss"),
        summary_field(&b, "final_train_loss"),
    );
    assert!(!fa.is_empty());
    assert_eq!(fa, fb);
    // Nor does an epoch's train loss, the mean of every step's: 3 epochs of 20 steps,
    // a loss read at step 1 and in the last ten steps only, against one read every step.
    let (c, d) = (dir.join("c"), dir.join("d"));
    let epochs = |run: &Path, log_every: &str| {
        expect(
            &tiny_mlp(&dir, run, &["--epochs", "3", "--log-every", log_every]),
            0,
            &[],
        );
        let eval = std::fs::read_to_string(run.join("eval.csv")).unwrap();
        let second = eval.lines().nth(2).unwrap().to_string();
        assert!(
            second.starts_with("40,2,") && !second.starts_with("40,2,,"),
            "{eval}"
        );
        eval
    };
    assert_eq!(epochs(&c, "1000"), epochs(&d, "1"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_refuses_sizes_over_the_limits_before_running_anything() {
    let _gpu = require_gpu!();
    let cases: [(&str, &str, &str); 5] = [
        ("matmul", "200000", "matmul 200000: A [M, K]"),
        ("mlp", "4x300000x100", "--width 300000"),
        ("lm", "2x4000000000x64x8", "overflows"),
        ("lm", "2x64x100000x64", "feed-forward or logits"),
        ("resnet", "20x100000", "--batch 100000"),
    ];
    for (family, size, fragment) in cases {
        let out = rezero(&["bench", family, "--sizes", size]);
        expect(&out, 1, &[fragment]);
    }
}

#[test]
fn piped_progress_is_plain_lines_without_carriage_returns() {
    let _gpu = require_gpu!();
    let dir = temp_dir("robust-progress");
    tiny_dataset(&dir);
    let out = dir.join("run");
    let args = [
        "train",
        "mlp",
        "--data-dir",
        dir.to_str().unwrap(),
        "--depth",
        "2",
        "--width",
        "8",
        "--batch",
        "10",
        "--log-every",
        "5",
        "--out",
        out.to_str().unwrap(),
    ];
    let got = rezero(&args);
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(got.status.success(), "{stderr}");
    assert!(!stderr.contains('\r'), "{stderr:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(" step ")).collect();
    // The first step's time on its own line, then steps 5, 10, 15 and 20 of the epoch's
    // 20, each with its loss, the rate over its window and the ETA.
    assert_eq!(lines.len(), 5, "{stderr}");
    assert!(
        lines[0].starts_with("rezero-2x8: first step ") && lines[0].contains("compiling"),
        "{stderr}"
    );
    let lines = &lines[1..];
    assert!(
        lines[0].contains("step 5 (5/20) loss") && lines[0].contains("images/s ETA"),
        "{stderr}"
    );
    assert!(stderr.contains("epoch 1: train loss"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_comparison_can_give_warm_up_to_the_baselines_only() {
    let _gpu = require_gpu!();
    let dir = temp_dir("robust-warmup");
    let out = dir.join("cmp");
    let lm = |extra: &[&str]| {
        let base = [
            "train",
            "lm",
            "--quiet",
            "--steps",
            "3",
            "--eval-every",
            "3",
            "--eval-windows",
            "2",
            "--sample",
            "0",
        ];
        rezero(&[&base[..], &TINY_LM, extra].concat())
    };
    let args = [
        "--compare",
        "postnorm:warmup,rezero",
        "--warmup",
        "5",
        "--alpha-lr-mult",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let got = lm(&args);
    expect(&got, 0, &["warm-up"]);
    let shown = text(&got);
    let row = |label: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(label) && !l.contains(':'))
            .unwrap_or_else(|| panic!("no {label} row in {shown}"))
            .to_string()
    };
    assert!(row("postnorm-warmup-1x8").contains("5 steps"), "{shown}");
    assert!(row("rezero-1x8").contains("none"), "{shown}");
    // α over training for the ReZero variant only, and `rezero plot --alpha` of its run.
    assert!(
        out.join("alpha-rezero.svg").exists() && !out.join("alpha-postnorm-warmup.svg").exists()
    );
    let svg = dir.join("alpha.svg");
    let run = out.join("rezero");
    let args = [
        "plot",
        run.to_str().unwrap(),
        "--alpha",
        "-o",
        svg.to_str().unwrap(),
    ];
    expect(&rezero(&args), 0, &["wrote"]);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<rect"));
    let postnorm = out.join("postnorm-warmup");
    let args = ["plot", postnorm.to_str().unwrap(), "--alpha"];
    expect(&rezero(&args), 1, &["ReZero variant"]);
    // The multiplier is one of the run's recorded flags.
    let checkpoint = rezero::train::checkpoint::load(&out.join("rezero/model.safetensors"));
    let flags = checkpoint.unwrap().metadata["flags"].clone();
    assert!(flags.contains("--alpha-lr-mult=2"), "{flags}");
    expect(&lm(&["--compare", "postnorm:alpha=1"]), 2, &["no α"]);
    let twice = ["--compare", "rezero:alpha=1,prenorm,rezero:alpha=1.0"];
    expect(&lm(&twice), 1, &["names rezero-alpha1 twice"]);
    expect(
        &lm(&["--alpha-lr-mult", "NaN"]),
        2,
        &["not a finite number"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_paper_flags_and_eval_refuse_bad_input() {
    let dir = temp_dir("robust-paper");
    let lm = |args: &[&str]| rezero(&[&["train", "lm", "--quiet"][..], args].concat());
    expect(&lm(&["--dropout", "1"]), 2, &["not below 1"]);
    expect(&lm(&["--dropout", "NaN"]), 2, &["not a finite number"]);
    expect(&lm(&["--dropout=-0.1"]), 2, &["is negative"]);
    expect(&lm(&["--alpha-lr-mult=-1"]), 2, &["is negative"]);
    expect(&lm(&["--optimizer", "lambb"]), 2, &["possible values"]);
    let eval = |args: &[&str]| rezero(&[&["eval"][..], args].concat());
    expect(
        &eval(&["--checkpoint", "x", "--data", "y", "--batch", "0"]),
        2,
        &["--batch"],
    );
    expect(
        &eval(&["--checkpoint", "x", "--data", "y", "--seq", "0"]),
        2,
        &["--seq"],
    );
    if common::gpu().is_none() {
        return std::fs::remove_dir_all(dir).unwrap();
    }
    // A real checkpoint against text that is missing, too short, or endless.
    let run = dir.join("run");
    let rest = [
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--eval-windows",
        "2",
        "--sample",
        "0",
        "--out",
        run.to_str().unwrap(),
    ];
    expect(&lm(&[&TINY_LM[..], &rest].concat()), 0, &[]);
    let short = dir.join("short.txt");
    std::fs::write(&short, b"abc").unwrap();
    let ck = run.to_str().unwrap();
    let missing = dir.join("missing.txt");
    expect(
        &eval(&["--checkpoint", ck, "--data", missing.to_str().unwrap()]),
        1,
        &["cannot read"],
    );
    expect(
        &eval(&["--checkpoint", ck, "--data", short.to_str().unwrap()]),
        1,
        &["3 bytes"],
    );
    expect(
        &eval(&["--checkpoint", ck, "--data", "/dev/zero"]),
        1,
        &["/dev/zero"],
    );
    let text = dir.join("text.txt");
    std::fs::write(
        &text,
        "the quick brown fox jumps over the lazy dog. ".repeat(20),
    )
    .unwrap();
    let t = text.to_str().unwrap();
    expect(
        &eval(&["--checkpoint", ck, "--data", t, "--seq", "9"]),
        1,
        &["the model's 8"],
    );
    expect(
        &eval(&["--checkpoint", ck, "--data", t]),
        0,
        &["bits/byte over"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}
