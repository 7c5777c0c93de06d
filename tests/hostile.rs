//! What a hostile user's review found, one class a test: a checkpoint only of a model that
//! evaluates to finite numbers, no command that blocks on a file, sizes checked before
//! allocating, run folders that keep what the user put there, requests that cannot be
//! honoured said so, and per-epoch losses that do not depend on `--log-every`.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cli::{
    TINY_LM, expect, rezero, summary_field, temp_cache, temp_dir, text, tiny_dataset, tiny_mlp,
};

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

/// Runs the binary with `args` and the tuning cache under `cache`, killed if it has not
/// ended within a minute (a command that blocks then fails the test instead of hanging it).
fn rezero_within_a_minute(cache: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rezero"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("XDG_CACHE_HOME", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the rezero binary runs");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("rezero {args:?} still ran after a minute:\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_model_that_evaluates_to_nan_is_never_checkpointed() {
    let _gpu = require_gpu!();
    let dir = temp_dir("hostile-nan-eval");
    tiny_dataset(&dir);
    let run = dir.join("run");
    expect(&tiny_mlp(&dir, &run, &["--epochs", "1"]), 0, &["20 steps"]);
    let good = std::fs::read(run.join("model.safetensors")).unwrap();
    // One step at an absurd rate: its loss (read before the update) is finite, its weights
    // near 1e30 are finite too, but the model's test loss is not.
    let out = tiny_mlp(
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

/// Makes a named pipe at `path` (nothing ever writes to it: opening it to read blocks).
fn fifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn no_command_blocks_on_a_pipe_or_mistakes_a_directory_for_a_missing_file() {
    let _gpu = require_gpu!();
    let dir = temp_dir("hostile-fifo");
    let cache = temp_cache();
    let pipe = dir.join("pipe");
    fifo(&pipe);
    let p = pipe.to_str().unwrap();
    let text_file = dir.join("text.txt");
    std::fs::write(
        &text_file,
        "the quick brown fox jumps over the lazy dog. ".repeat(20),
    )
    .unwrap();
    let t = text_file.to_str().unwrap();
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    let cases: [&[&str]; 4] = [
        &["train", "lm", "--quiet", "--data", p, "--out", r],
        &["eval", "--checkpoint", p, "--data", t],
        &["sample", "--checkpoint", p],
        &["isometry", "--checkpoint", p],
    ];
    for args in cases {
        let out = rezero_within_a_minute(&cache, args);
        expect(&out, 1, &[p, "is a pipe (FIFO), not a regular file"]);
    }
    // A run folder whose checkpoint is a pipe, resumed.
    let first = ["--steps", "2", "--eval-every", "2"];
    expect(&lm(&run, &first), 0, &[]);
    let checkpoint = run.join("model.safetensors");
    std::fs::remove_file(&checkpoint).unwrap();
    fifo(&checkpoint);
    let mut args = vec!["train", "lm", "--quiet", "--sample", "0", "--out", r];
    args.extend(TINY_LM);
    args.extend(["--steps", "3", "--resume"]);
    let out = rezero_within_a_minute(&cache, &args);
    expect(&out, 1, &["model.safetensors", "is a pipe (FIFO)"]);
    // A run folder whose metrics are a pipe, plotted.
    let piped = dir.join("piped");
    std::fs::create_dir(&piped).unwrap();
    fifo(&piped.join("metrics.csv"));
    let svg = dir.join("loss.svg");
    let args = ["plot", piped.to_str().unwrap(), "-o", svg.to_str().unwrap()];
    let out = rezero_within_a_minute(&cache, &args);
    expect(&out, 1, &["metrics.csv", "is a pipe (FIFO)"]);
    // A directory where a file is expected is named as one.
    let folder = dir.join("folder");
    std::fs::create_dir_all(folder.join("model.safetensors")).unwrap();
    let f = folder.to_str().unwrap();
    let out = rezero_within_a_minute(&cache, &["eval", "--checkpoint", f, "--data", t]);
    expect(&out, 1, &["model.safetensors", "is a directory"]);
    let out = rezero_within_a_minute(&cache, &["train", "lm", "--data", f, "--out", r]);
    expect(&out, 1, &[f, "is a directory"]);
    let images = dir.join("images");
    std::fs::create_dir(&images).unwrap();
    tiny_dataset(&images);
    std::fs::remove_file(images.join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::create_dir(images.join("train-images-idx3-ubyte.gz")).unwrap();
    let out = tiny_mlp(&images, &dir.join("mlp"), &[]);
    expect(&out, 1, &["train-images-idx3-ubyte.gz", "is a directory"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_tuning_cache_that_is_a_pipe_is_ignored_with_a_warning() {
    let _gpu = require_gpu!();
    let cache = temp_dir("hostile-cache");
    let info = rezero_within_a_minute(&cache, &["info"]);
    expect(&info, 0, &["cache file"]);
    let shown = text(&info);
    let file = shown
        .lines()
        .find_map(|l| {
            l.split_once("cache file ")
                .map(|(_, f)| f.trim().to_string())
        })
        .expect("info names the cache file");
    let file = Path::new(&file);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(file);
    fifo(file);
    let out = rezero_within_a_minute(&cache, &["info"]);
    expect(&out, 0, &["ignoring the tuning cache", "is a pipe (FIFO)"]);
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn isometry_and_bench_refuse_sizes_past_the_limits_before_allocating() {
    let _gpu = require_gpu!();
    let cache = temp_cache();
    let cases: [(&[&str], &[&str]); 8] = [
        (
            &["isometry", "--width", "1000000000000"],
            &["--width 1000000000000", "at most 8192"],
        ),
        (
            &[
                "isometry",
                "--model",
                "transformer",
                "--seq",
                "100000",
                "--d-model",
                "100000",
            ],
            &["--seq 100000 --d-model 100000", "at most 8192"],
        ),
        (
            &["isometry", "--depth", "1000000000000", "--width", "64"],
            &["memory"],
        ),
        (
            &["bench", "rezero", "--sizes", "1000000000"],
            &["bench rezero 1000000000", "device limit"],
        ),
        (
            &["bench", "optim", "--sizes", "1000000000"],
            &["device limit"],
        ),
        (
            &["bench", "embedding", "--sizes", "100x100x100000000"],
            &["the table", "device limit"],
        ),
        (
            &["bench", "batchnorm", "--sizes", "1000x1000x1000"],
            &["device limit"],
        ),
        (
            &["bench", "conv2d", "--sizes", "128x64x256x64x3x1"],
            &["the input", "device limit"],
        ),
    ];
    for (args, fragments) in cases {
        expect(&rezero_within_a_minute(&cache, args), 1, fragments);
    }
}

/// `checkpoint` with each metadata `(key, value)` replaced, written to `to`.
fn with_metadata(checkpoint: &Path, changes: &[(&str, &str)], to: &Path) {
    let loaded = rezero::train::checkpoint::load(checkpoint).unwrap();
    let mut metadata = loaded.metadata.clone();
    for (key, value) in changes {
        metadata.insert(key.to_string(), value.to_string());
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = (loaded.tensors.iter())
        .map(|(name, (shape, values))| {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), shape.clone(), bytes)
        })
        .collect();
    let views = bytes.iter().map(|(name, shape, data)| {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data);
        (name.clone(), view.unwrap())
    });
    std::fs::write(to, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

#[test]
fn a_checkpoints_sizes_are_checked_and_a_sample_of_any_length_streams() {
    let _gpu = require_gpu!();
    let dir = temp_dir("hostile-meta");
    let cache = temp_cache();
    let run = dir.join("run");
    expect(&lm(&run, &["--steps", "2", "--eval-every", "2"]), 0, &[]);
    let good = run.join("model.safetensors");
    let bad = dir.join("bad.safetensors");
    let b = bad.to_str().unwrap();
    let text_file = dir.join("text.txt");
    std::fs::write(
        &text_file,
        "the quick brown fox jumps over the lazy dog. ".repeat(20),
    )
    .unwrap();
    let t = text_file.to_str().unwrap();
    for change in [
        ("seq", "1000000000000"),
        ("d_model", "4000000000"),
        ("layers", "1000000000000"),
        ("d_ff", "18446744073709551615"),
    ] {
        with_metadata(&good, &[change], &bad);
        for args in [
            &["eval", "--checkpoint", b, "--data", t][..],
            &["sample", "--checkpoint", b, "--len", "3"],
            &["isometry", "--checkpoint", b],
        ] {
            let out = rezero_within_a_minute(&cache, args);
            expect(
                &out,
                1,
                &[b, "metadata describes a model that cannot be built"],
            );
        }
    }
    // A sample far longer than anything buffers shows its first bytes at once.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rezero"))
        .args(["sample", "--checkpoint", good.to_str().unwrap()])
        .args(["--prompt", "ab", "--len", "1000000000000"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("XDG_CACHE_HOME", &cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut first = [0u8; 12];
        std::io::Read::read_exact(&mut stdout, &mut first).map(|_| first)
    });
    let start = Instant::now();
    while !reader.is_finished() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = reader
        .join()
        .unwrap()
        .expect("the sample streams its bytes");
    assert!(first.starts_with(b"ab"), "{first:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_run_folder_never_mixes_runs_nor_names_a_checkpoint_it_lacks() {
    let _gpu = require_gpu!();
    let dir = temp_dir("hostile-mix");
    tiny_dataset(&dir);
    let (a, b) = (dir.join("a"), dir.join("b"));
    let keep = ["--steps", "20", "--keep-checkpoints"];
    expect(&tiny_mlp(&dir, &a, &keep), 0, &[]);
    expect(
        &tiny_mlp(&dir, &b, &[&keep[..], &["--seed", "3"]].concat()),
        0,
        &[],
    );
    // Another run's checkpoint among a run's kept ones is refused by name.
    let kept = |run: &Path, step: u32| run.join(format!("checkpoints/step-{step:08}.safetensors"));
    std::fs::copy(kept(&b, 20), kept(&a, 19)).unwrap();
    let out = rezero(&["isometry", "--run", a.to_str().unwrap()]);
    expect(
        &out,
        1,
        &["step-00000019", "is not a checkpoint of the model in"],
    );
    // A folder that holds only another run's kept checkpoints is not taken over.
    for file in [
        "model.safetensors",
        "summary.txt",
        "metrics.csv",
        "eval.csv",
    ] {
        std::fs::remove_file(b.join(file)).unwrap();
    }
    expect(
        &tiny_mlp(&dir, &b, &["--steps", "20"]),
        1,
        &["already holds a run"],
    );
    // A run that diverges before its first checkpoint names none.
    let lm_run = dir.join("lm");
    let wild = ["--steps", "4", "--eval-every", "4", "--lr", "1e30"];
    let out = lm(&lm_run, &wild);
    expect(&out, 1, &["diverged at step", "checkpoint: none written"]);
    assert!(!text(&out).contains("model.safetensors"), "{}", text(&out));
    // Its folder is reused by the next run, its logs set aside.
    expect(
        &lm(&lm_run, &["--steps", "2", "--eval-every", "2"]),
        0,
        &["stopped-run"],
    );
    assert!(lm_run.join("stopped-run/metrics.csv").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn requests_that_cannot_be_honoured_are_refused_before_training() {
    let _gpu = require_gpu!();
    let dir = temp_dir("hostile-honour");
    tiny_dataset(&dir);
    let out = dir.join("run");
    let got = tiny_mlp(&dir, &out, &["--steps", "20", "--profile", "21"]);
    expect(&got, 1, &["--profile", "step 21 is not among the steps"]);
    assert!(!out.exists(), "nothing was written");
    let compare = |entries: &str, warmup: &str| {
        let args = ["--steps", "2", "--compare", entries, "--warmup", warmup];
        lm(&out, &args)
    };
    let got = compare("postnorm:warmup,rezero", "0");
    expect(
        &got,
        1,
        &["postnorm-warmup asks for warm-up", "--warmup is 0"],
    );
    let got = compare("rezero,rezero:alpha=0", "0");
    expect(&got, 1, &["rezero and rezero-alpha0 train identically"]);
    let got = compare("prenorm,rezero:warmup,rezero:warmup:alpha=0", "3");
    expect(
        &got,
        1,
        &["rezero-warmup and rezero-warmup-alpha0 train identically"],
    );
    assert!(!out.exists(), "nothing was written");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_per_epoch_train_loss_does_not_depend_on_log_every() {
    let _gpu = require_gpu!();
    let dir = temp_dir("hostile-epoch-loss");
    tiny_dataset(&dir);
    let resnet = |name: &str, log_every: &str| {
        let out = dir.join(name);
        let args = [
            "train",
            "resnet",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            dir.to_str().unwrap(),
            "--depth",
            "8",
            "--batch",
            "5",
            "--train-limit",
            "60",
            "--test-limit",
            "10",
            "--epochs",
            "2",
            "--log-every",
            log_every,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        expect(&rezero(&args), 0, &[]);
        let eval = std::fs::read_to_string(out.join("eval.csv")).unwrap();
        let losses: Vec<String> = (eval.lines().skip(1))
            .map(|row| row.split(',').nth(2).unwrap().to_string())
            .collect();
        assert_eq!(losses.len(), 2, "{eval}");
        assert!(losses.iter().all(|l| l.parse::<f32>().is_ok()), "{eval}");
        losses
    };
    // 12 steps an epoch: with a loss read at step 1 and in the last ten steps only, the
    // first epoch's would be one step's loss if it were the mean of the losses read.
    assert_eq!(resnet("every", "1"), resnet("rarely", "1000"));
    std::fs::remove_dir_all(dir).unwrap();
}
