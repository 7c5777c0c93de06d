//! Running the `rezero` binary from tests: its output, scratch directories, and a tiny
//! Fashion-MNIST-shaped data set in IDX files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rezero::data::idx;

/// The shape of the smallest Transformer the `train lm` tests run: one layer of d_model 8
/// (2 heads, d_ff 16) on batches of two 8-byte windows.
pub const TINY_LM: [&str; 12] = [
    "--layers",
    "1",
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
];

pub fn rezero(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rezero"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        // The tuning cache goes to a scratch directory, never the user's.
        .env("XDG_CACHE_HOME", temp_cache())
        .output()
        .expect("the rezero binary runs")
}

/// This test process's scratch cache directory (XDG_CACHE_HOME of the binary it runs).
pub fn temp_cache() -> PathBuf {
    std::env::temp_dir().join(format!("rezero-cli-cache-{}", std::process::id()))
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rezero-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny Fashion-MNIST-shaped data set whose label is written into the image.
pub fn tiny_dataset(dir: &Path) {
    for (prefix, count) in [("train", 200), ("t10k", 50)] {
        let labels: Vec<u8> = (0..count).map(|i| (i * 7 % 10) as u8).collect();
        let pixels: Vec<u8> = labels
            .iter()
            .flat_map(|&l| (0..784).map(move |p| if p / 78 == l as usize { 255 } else { 0 }))
            .collect();
        idx::write_images(
            &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            count,
            28,
            28,
            &pixels,
        )
        .unwrap();
        idx::write_labels(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), &labels).unwrap();
    }
}

/// `train mlp` on the tiny data set in `data` into `out`: 2 blocks of width 8, batches of
/// 10 (20 steps an epoch), unless `extra` gives those flags itself.
pub fn tiny_mlp(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "mlp",
        "--data-dir",
        data.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    for (flag, value) in [("--depth", "2"), ("--width", "8"), ("--batch", "10")] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    rezero(&[&args[..], extra].concat())
}

/// Asserts the exit status and that the output holds every fragment.
pub fn expect(out: &Output, code: i32, fragments: &[&str]) {
    let shown = text(out);
    assert_eq!(out.status.code(), Some(code), "{shown}");
    for f in fragments {
        assert!(shown.contains(f), "missing {f:?} in:\n{shown}");
    }
}

/// The value of `key=` in the run's summary.txt.
pub fn summary_field(run: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(run.join("summary.txt")).unwrap();
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_string()
}

/// `train resnet` on the tiny data set in `data` into `out`: depth 8, batches of 20 of 60
/// training images (3 steps an epoch), 20 test images, lr 0.05, every step logged.
pub fn tiny_resnet_args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "resnet",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        data,
        "--depth",
        "8",
        "--batch",
        "20",
        "--train-limit",
        "60",
        "--test-limit",
        "20",
        "--lr",
        "0.05",
        "--quiet",
        "--log-every",
        "1",
        "--out",
        out,
    ]
}
