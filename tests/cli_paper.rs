//! `rezero train lm --preset`: the paper's comparison in one flag, its entries with their
//! own warm-up and initial α, each in its own folder; the flags given win over the preset.

mod common;

use common::cli::{TINY_LM, rezero, temp_dir, text};

#[test]
fn the_small_paper_preset_runs_each_entry_with_its_own_settings() {
    let _gpu = require_gpu!();
    let dir = temp_dir("paper-preset");
    let out = dir.join("cmp");
    let args = [
        "train",
        "lm",
        "--preset",
        "paper-small",
        "--quiet",
        "--steps",
        "3",
        "--eval-every",
        "3",
        "--eval-windows",
        "2",
        "--warmup",
        "2",
        "--sample",
        "0",
        "--compare",
        "postnorm:warmup,postnorm,rezero:alpha=1",
        "--out",
        out.to_str().unwrap(),
    ];
    let got = rezero(&[&args[..], &TINY_LM].concat());
    let shown = text(&got);
    assert!(got.status.success(), "{shown}");
    // The preset's values fill the flags left out; the ones given are not in its list.
    let preset = shown
        .lines()
        .find(|l| l.starts_with("--preset paper-small:"));
    let preset = preset.unwrap_or_else(|| panic!("no preset line in {shown}"));
    for set in [
        "--optimizer lamb",
        "--lr 0.016",
        "--dropout 0.1",
        "--target-bpb 3",
    ] {
        assert!(preset.contains(set), "{preset}");
    }
    assert!(
        !preset.contains("--layers") && !preset.contains("--compare"),
        "{preset}"
    );
    let row = |label: &str| {
        let line = shown
            .lines()
            .find(|l| l.starts_with(label) && !l.contains(':'));
        line.unwrap_or_else(|| panic!("no {label} row in {shown}"))
            .to_string()
    };
    assert!(row("postnorm-warmup-1x8 ").contains("2 steps"), "{shown}");
    assert!(row("postnorm-1x8 ").contains("none"), "{shown}");
    assert!(row("rezero-alpha1-1x8 ").contains("none"), "{shown}");
    assert!(
        shown.contains("speed-up: the steps postnorm-warmup-1x8 took"),
        "{shown}"
    );
    // Each entry in its own folder, with the flags it trained with.
    let flags = |entry: &str| {
        let path = out.join(entry).join("model.safetensors");
        rezero::train::checkpoint::load(&path).unwrap().metadata["flags"].clone()
    };
    assert!(flags("rezero-alpha1").contains("--alpha-init=1"));
    assert!(flags("postnorm").contains("--alpha-init=0"));
    assert!(flags("postnorm-warmup").contains("--dropout=0.1"));
    assert!(out.join("alpha-rezero-alpha1.svg").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn presets_and_entries_refuse_nonsense() {
    let bad = |args: &[&str], says: &str| {
        let got = rezero(&[&["train", "lm"], args].concat());
        assert_eq!(got.status.code(), Some(2), "{}", text(&got));
        assert!(text(&got).contains(says), "{}", text(&got));
    };
    bad(
        &["--preset", "paper-huge"],
        "possible values: paper, paper-small",
    );
    bad(&["--compare", "rezero:alpha=1:alpha=2"], "twice");
    bad(&["--compare", "prenorm:warm"], "VARIANT[:warmup][:alpha=X]");
    bad(
        &[
            "--preset",
            "paper",
            "--variant",
            "rezero",
            "--compare",
            "rezero",
        ],
        "cannot be used with",
    );
}
