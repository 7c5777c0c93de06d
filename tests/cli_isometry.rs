//! `rezero isometry` as the paper measures it: a fresh ReZero stack (MLP or Transformer) is
//! the identity and the others are not, the residual blocks alone (a flag adds Pre-Norm's
//! final norm), and the spectrum along a run from the checkpoints it kept.

mod common;

use common::cli::{rezero, temp_dir, text};

fn isometry(extra: &[&str]) -> String {
    let base = [
        "isometry",
        "--model",
        "transformer",
        "--layers",
        "2",
        "--d-model",
        "8",
        "--heads",
        "2",
        "--seq",
        "4",
    ];
    let out = rezero(&[&base[..], extra].concat());
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

/// The "singular values: ... mean squared M" line's M.
fn mean_squared(shown: &str) -> f64 {
    let line = shown
        .lines()
        .find(|l| l.starts_with("singular values"))
        .unwrap();
    let after = line.split("mean squared").nth(1).unwrap();
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn the_final_norm_is_left_out_unless_asked_for() {
    let _gpu = require_gpu!();
    // ReZero at α = 0: the blocks are the identity.
    let rezero_blocks = isometry(&["--variant", "rezero"]);
    assert!(
        (mean_squared(&rezero_blocks) - 1.0).abs() < 1e-5,
        "{rezero_blocks}"
    );
    let blocks = isometry(&["--variant", "prenorm"]);
    let with_norm = isometry(&["--variant", "prenorm", "--with-final-norm"]);
    assert!(!blocks.contains("final norm") && with_norm.contains("and the final norm"));
    let (a, b) = (mean_squared(&blocks), mean_squared(&with_norm));
    assert!(
        (a - b).abs() > 1e-3,
        "the final norm changes the spectrum: {a} and {b}"
    );
}

#[test]
fn a_run_with_kept_checkpoints_has_its_spectrum_along_the_steps() {
    let _gpu = require_gpu!();
    let dir = temp_dir("isometry-run");
    let run = dir.join("run");
    let train = [
        "train",
        "lm",
        "--quiet",
        "--layers",
        "2",
        "--d-model",
        "8",
        "--heads",
        "2",
        "--d-ff",
        "16",
        "--seq",
        "8",
        "--batch",
        "2",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--eval-windows",
        "2",
        "--sample",
        "0",
        "--keep-checkpoints",
        "--out",
        run.to_str().unwrap(),
    ];
    let out = rezero(&train);
    assert!(out.status.success(), "{}", text(&out));
    for step in [2, 4] {
        let kept = run.join(format!("checkpoints/step-{step:08}.safetensors"));
        assert!(kept.exists(), "{}", kept.display());
    }
    let shown = isometry(&["--run", run.to_str().unwrap()]);
    assert!(shown.contains("mean σ²"), "{shown}");
    let csv = std::fs::read_to_string(run.join("isometry.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("2,"), "{csv}");
    assert!(run.join("isometry.svg").exists());
    // A run that kept none says how to get them.
    let bare = dir.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let out = rezero(&["isometry", "--run", bare.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("--keep-checkpoints"), "{}", text(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn isometry_of_a_fresh_rezero_transformer_is_one_and_of_postnorm_is_not() {
    let _gpu = require_gpu!();
    let base = [
        "isometry",
        "--model",
        "transformer",
        "--layers",
        "2",
        "--d-model",
        "8",
        "--heads",
        "2",
        "--seq",
        "3",
    ];
    let out = rezero(&[&base[..], &["--variant", "rezero"]].concat());
    assert!(
        out.status.success()
            && text(&out)
                .contains("singular values: 24  mean squared 1.000000  min 1.000000  max 1.000000"),
        "{}",
        text(&out)
    );
    let out = rezero(&[&base[..], &["--variant", "postnorm"]].concat());
    assert!(
        out.status.success() && !text(&out).contains("mean squared 1.000000  min 1.000000"),
        "{}",
        text(&out)
    );
    let out = rezero(&[&base[..], &["--variant", "plain"]].concat());
    assert!(
        !out.status.success() && text(&out).contains("postnorm, prenorm, rezero"),
        "{}",
        text(&out)
    );
}

#[test]
fn isometry_of_a_fresh_rezero_stack_is_one() {
    let _gpu = require_gpu!();
    let out = rezero(&[
        "isometry",
        "--model",
        "mlp",
        "--variant",
        "rezero",
        "--depth",
        "8",
        "--width",
        "16",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("mean squared 1.000000  min 1.000000  max 1.000000"),
        "{}",
        text(&out)
    );
}
