//! The `rezero` binary end to end: info, bench --json, train mlp (one run and --compare,
//! on small IDX files made here), isometry, plot, and clear errors for bad input.

mod common;

use common::cli::{TINY_LM, rezero, temp_cache, temp_dir, text, tiny_dataset};

#[test]
fn tune_measures_records_and_saves_the_table() {
    let _gpu = require_gpu!();
    let dir = temp_dir("tune");
    let saved = dir.join("saved.tuning");
    let out = rezero(&[
        "tune",
        "--sizes",
        "32,20x36x12:nt",
        "--save",
        saved.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    // Each shape lists its candidates, one of them marked the winner.
    for key in ["matmul/nn/v4/m32/n32/k32/b1", "matmul/nt/v4/m32/n64/k16/b1"] {
        let rows: Vec<_> = stdout.lines().filter(|l| l.contains(key)).collect();
        assert!(rows.len() >= 2, "{key}: {stdout}");
        assert_eq!(
            rows.iter().filter(|l| l.ends_with(" *")).count(),
            1,
            "{stdout}"
        );
    }
    // The table went to the cache directory (this test's XDG_CACHE_HOME) and to --save.
    let table = std::fs::read_to_string(&saved).unwrap();
    assert!(table.starts_with("rezero tuning 1\nadapter\t"), "{table}");
    assert!(table.contains("matmul/nt/v4/m32/n64/k16/b1\t"), "{table}");
    let cached: Vec<_> = std::fs::read_dir(temp_cache().join("rezero"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        cached
            .iter()
            .any(|t| t.contains("matmul/nn/v4/m32/n32/k32/b1"))
    );
    // Empty, zero-sized and malformed shapes are clear errors before anything runs, and
    // so is profiling a step 0 that never comes.
    for (args, says) in [
        (&["tune", "--sizes", "0"][..], "matmul size"),
        (
            &["tune", "--sizes", "none", "--convs", "2x3x0x4x3x1"][..],
            "conv size",
        ),
        (
            &["tune", "--sizes", "none", "--convs", "2x3x8"][..],
            "conv size",
        ),
        (&["train", "lm", "--profile", "0"][..], "--profile"),
    ] {
        let out = rezero(args);
        assert!(
            !out.status.success() && text(&out).contains(says),
            "{args:?}: {}",
            text(&out)
        );
    }
    // A bad layout is a clear error.
    let out = rezero(&["tune", "--sizes", "8x8x8:xy"]);
    assert!(
        !out.status.success() && text(&out).contains("nn, nt, tn or tt"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_failed_write_to_stdout_is_an_error_exit() {
    let _gpu = require_gpu!();
    // Its reader gone before it writes (the benchmark runs first): the write fails.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rezero"))
        .args([
            "--no-tuning-cache",
            "bench",
            "matmul",
            "--sizes",
            "64",
            "--runs",
            "1",
        ])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot write to standard output"),
        "{}",
        text(&out)
    );
}

#[test]
fn bench_step_profile() {
    let _gpu = require_gpu!();
    let out = rezero(&[
        "bench",
        "mlp",
        "--sizes",
        "4x32x8",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--profile",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("\"kernel\":\"mlp_step\""), "{stdout}");
    assert!(stdout.contains("\"profile_entry\":\"matmul_"), "{stdout}");
    assert!(stdout.contains("\"profile_total_ms\""), "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with('{')), "{stdout}");
}

#[test]
fn info_and_bench_json() {
    let _gpu = require_gpu!();
    let out = rezero(&["info"]);
    assert!(
        out.status.success() && text(&out).contains("workgroup storage"),
        "{}",
        text(&out)
    );
    let out = rezero(&[
        "bench",
        "matmul",
        "--sizes",
        "64",
        "--variants",
        "naive,auto",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    for key in [
        "\"kernel\":\"matmul\"",
        "\"gflops\":",
        "\"reference\":\"cpu-sgemm\"",
        "\"ratio\":",
    ] {
        assert!(stdout.contains(key), "{key} missing from {stdout}");
    }
}

#[test]
fn train_mlp_one_run_and_compare() {
    let _gpu = require_gpu!();
    let dir = temp_dir("train");
    tiny_dataset(&dir);
    let data = dir.to_str().unwrap();
    let run = dir.join("run");
    let common = [
        "train",
        "mlp",
        "--data-dir",
        data,
        "--depth",
        "4",
        "--width",
        "16",
        "--batch",
        "10",
        "--steps",
        "20",
        "--quiet",
    ];
    let out = rezero(
        &[
            &common[..],
            &["--out", run.to_str().unwrap(), "--profile", "3"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("rezero-4x16: 20 steps"),
        "{}",
        text(&out)
    );
    // The same --out again without --resume: refused, and the run there is untouched.
    let metrics_before = std::fs::read(run.join("metrics.csv")).unwrap();
    let again = rezero(&[&common[..], &["--out", run.to_str().unwrap()]].concat());
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        text(&again).contains("already holds a run"),
        "{}",
        text(&again)
    );
    assert_eq!(
        std::fs::read(run.join("metrics.csv")).unwrap(),
        metrics_before
    );
    // --profile 3: where step 3's time went, by entry point.
    let shown = text(&out);
    assert!(
        shown.contains("profile of step 3:") && shown.contains("matmul_"),
        "{shown}"
    );
    assert!(
        shown.contains("dispatches") && shown.contains("timed on the GPU"),
        "{shown}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        3,
        "header and two logged steps:\n{metrics}"
    );
    // Rates over each logging window and after the first step; the first step on its own.
    let summary = std::fs::read_to_string(run.join("summary.txt")).unwrap();
    let field = |name: &str| -> f64 {
        let line = summary
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")));
        line.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number {name} in\n{summary}"))
    };
    assert_eq!(field("steps"), 20.0);
    assert!(field("first_step_seconds") > 0.0 && field("items_per_second") > 0.0);
    for row in metrics.lines().skip(1) {
        let rate: f64 = row.split(',').nth(4).unwrap().parse().unwrap();
        assert!(rate > 0.0, "the window's rate: {row}");
    }
    assert!(text(&out).contains("first step"), "{}", text(&out));
    let checkpoint = run.join("model.safetensors");
    let out = rezero(&["isometry", "--checkpoint", checkpoint.to_str().unwrap()]);
    let shown = text(&out);
    assert!(
        out.status.success() && shown.contains("rezero MLP, 4 blocks of width 16, trained weights"),
        "{shown}"
    );

    let cmp = dir.join("cmp");
    let out = rezero(
        &[
            &common[..],
            &["--compare", "plain,rezero", "--out", cmp.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("test accuracy") && text(&out).contains("plain-4x16"),
        "{}",
        text(&out)
    );
    let svg = std::fs::read_to_string(cmp.join("loss.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("plain") && svg.contains("rezero"));

    let out = rezero(&[
        "plot",
        cmp.join("plain").to_str().unwrap(),
        "--metric",
        "test_accuracy",
        "-o",
        dir.join("acc.svg").to_str().unwrap(),
        "--title",
        "Plain, <four> layers & more",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let svg = std::fs::read_to_string(dir.join("acc.svg")).unwrap();
    assert!(
        svg.contains("Plain, &lt;four&gt; layers &amp; more"),
        "the title is drawn, escaped"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code_1() {
    let _gpu = require_gpu!();
    let missing = std::env::temp_dir().join("rezero-no-such-dir");
    let out = rezero(&[
        "train",
        "mlp",
        "--data-dir",
        missing.to_str().unwrap(),
        "--steps",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("fetch-data.sh"), "{}", text(&out));

    let dir = temp_dir("bad");
    tiny_dataset(&dir);
    let out = rezero(&[
        "train",
        "mlp",
        "--data-dir",
        dir.to_str().unwrap(),
        "--lr=-1",
        "--steps",
        "1",
        "--depth",
        "2",
        "--width",
        "8",
    ]);
    // Refused as the flags are parsed: a usage error, exit status 2.
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("--lr") && text(&out).contains("-1 is negative"),
        "{}",
        text(&out)
    );
    let out = rezero(&[
        "train",
        "mlp",
        "--data-dir",
        dir.to_str().unwrap(),
        "--variant",
        "deep",
        "--steps",
        "1",
    ]);
    assert!(
        !out.status.success() && text(&out).contains("plain, residual, layernorm, rezero"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn train_lm_on_a_file_resume_and_sample() {
    let _gpu = require_gpu!();
    let dir = temp_dir("lm");
    let corpus: String = (0..400)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog.\n"))
        .collect();
    let data = dir.join("text.txt");
    std::fs::write(&data, corpus).unwrap();
    let run = dir.join("run");
    let args = |steps: &str| -> Vec<String> {
        let head = ["train", "lm", "--data", data.to_str().unwrap()];
        let tail = [
            "--eval-every",
            "2",
            "--eval-windows",
            "2",
            "--log-every",
            "1",
            "--sample",
            "0",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
            "--steps",
            steps,
        ];
        [&head[..], &TINY_LM, &tail]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let first: Vec<String> = args("4");
    let out = rezero(&first.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success() && text(&out).contains("rezero-1x8: 4 steps"),
        "{}",
        text(&out)
    );
    let mut again = args("6");
    again.push("--resume".into());
    let out = rezero(&again.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success()
            && text(&out).contains("resuming")
            && text(&out).contains("rezero-1x8: 6 steps"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        7
    );
    // A resumed run that diverges (its weights overflow to infinity and NaN) stops at the
    // step whose loss shows it, exits with an error, and the good checkpoint of step 6
    // stays.
    let checkpoint = run.join("model.safetensors");
    let good = std::fs::read(&checkpoint).unwrap();
    let mut wild = args("10");
    wild.extend(["--resume".into(), "--lr".into(), "1e30".into()]);
    let out = rezero(&wild.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("rezero-1x8 diverged at step") && text(&out).contains("training loss"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(&checkpoint).unwrap(),
        good,
        "the good checkpoint is unchanged"
    );
    // The checkpoint on any text: bits per byte over its non-overlapping windows.
    let out = rezero(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && text(&out).contains("bits/byte over"),
        "{}",
        text(&out)
    );
    let out = rezero(&[
        "sample",
        "--checkpoint",
        run.to_str().unwrap(),
        "--prompt",
        "line",
        "--len",
        "10",
    ]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("line"),
        "{}",
        text(&out)
    );
    let short = dir.join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    let out = rezero(&[
        "train",
        "lm",
        "--data",
        short.to_str().unwrap(),
        "--steps",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("short.txt"), "{}", text(&out));
    std::fs::remove_dir_all(dir).unwrap();
}
