//! What a hostile user's review found, one class a test: a checkpoint only of a model that
//! evaluates to finite numbers, no command that blocks on a file, sizes checked before
//! allocating, run folders that keep what the user put there, requests that cannot be
//! honoured said so, and per-epoch losses that do not depend on `--log-every`.

mod common;

use std::path::Path;
use std::process::Output;

use common::cli::{TINY_LM, rezero, temp_dir, text, tiny_dataset};

/// `train mlp` on the tiny data set in `data` into `out`: 2 blocks of width 8, batches of
/// 10 (20 steps an epoch), then `extra`.
fn mlp(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = [
        "train",
        "mlp",
        "--data-dir",
        data.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--depth",
        "2",
        "--width",
        "8",
        "--batch",
        "10",
    ];
    rezero(&[&args[..], extra].concat())
}

/// `train lm` of the tiny Transformer into `out`: evaluated on two windows, no sample.
fn lm(out: &Path, extra: &[&str]) -> Output {
    let base = [
        "train",
        "lm",
        "--quiet",
        "--eval-windows",
        "2",
        "--sample",
        "0",
        "--out",
        out.to_str().unwrap(),
    ];
    rezero(&[&base[..], &TINY_LM, extra].concat())
}

fn expect(out: &Output, code: i32, fragments: &[&str]) {
    let shown = text(out);
    assert_eq!(out.status.code(), Some(code), "{shown}");
    for f in fragments {
        assert!(shown.contains(f), "missing {f:?} in:\n{shown}");
    }
}

fn summary_field(run: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(run.join("summary.txt")).unwrap();
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_string()
}

#[test]
fn a_model_that_evaluates_to_nan_is_never_checkpointed() {
    let _gpu = require_gpu!();
    let dir = temp_dir("hostile-nan-eval");
    tiny_dataset(&dir);
    let run = dir.join("run");
    expect(&mlp(&dir, &run, &["--epochs", "1"]), 0, &["20 steps"]);
    let good = std::fs::read(run.join("model.safetensors")).unwrap();
    // One step at an absurd rate: its loss (read before the update) is finite, its weights
    // near 1e30 are finite too, but the model's test loss is not.
    let out = mlp(
        &dir,
        &run,
        &["--epochs", "2", "--steps", "21", "--resume", "--lr", "1e30"],
    );
    expect(&out, 1, &["diverged at step 21", "the test loss is"]);
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), good);
    assert_eq!(summary_field(&run, "diverged"), "true");

    // The same for a language model's validation.
    let run = dir.join("lm");
    let first = ["--steps", "2", "--eval-every", "1"];
    expect(&lm(&run, &first), 0, &[]);
    let good = std::fs::read(run.join("model.safetensors")).unwrap();
    let wild = [
        "--steps",
        "3",
        "--eval-every",
        "1",
        "--resume",
        "--lr",
        "1e30",
    ];
    let out = lm(&run, &wild);
    expect(
        &out,
        1,
        &["diverged at step 3", "validation bits per byte is"],
    );
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), good);
    std::fs::remove_dir_all(dir).unwrap();
}
