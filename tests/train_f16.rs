//! `--precision f16` (mixed precision) on the training commands: `train mlp` learns with
//! its loss scale and skipped steps in metrics.csv, a resumed f16 run matches an unbroken
//! one bit for bit, a run may switch precision on resume, `train resnet` follows its f32
//! loss curve in every variant and resumes bit for bit, and a device without f16 is
//! refused before anything is allocated.

mod common;

use common::cli::{
    TINY_LM, expect, rezero, summary_field, temp_dir, text, tiny_dataset, tiny_mlp,
    tiny_resnet_args,
};
use rezero::train::checkpoint;
use std::path::Path;

/// The tensors of two checkpoints, equal bit for bit (the loss scaler's state included).
fn assert_same_checkpoint(a: &std::path::Path, b: &std::path::Path) {
    let (a, b) = (
        checkpoint::load(&a.join("model.safetensors")).unwrap(),
        checkpoint::load(&b.join("model.safetensors")).unwrap(),
    );
    assert_eq!(a.tensors.len(), b.tensors.len());
    assert!(a.tensors.contains_key("optimizer.loss_scale"));
    for (name, (shape, values)) in &a.tensors {
        let (shape_b, values_b) = &b.tensors[name];
        assert_eq!(shape, shape_b, "{name}");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(values),
            bits(values_b),
            "{name} differs after resuming"
        );
    }
}

#[test]
fn train_mlp_at_f16_learns_and_logs_its_loss_scale() {
    let Some(_gpu) = common::f16_gpu() else {
        return;
    };
    let dir = temp_dir("f16-mlp");
    tiny_dataset(&dir);
    let (run16, run32) = (dir.join("f16"), dir.join("f32"));
    let epochs = ["--epochs", "2", "--log-every", "5"];
    let out = tiny_mlp(
        &dir,
        &run16,
        &[&epochs[..], &["--precision", "f16"]].concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = tiny_mlp(&dir, &run32, &epochs);
    assert!(out.status.success(), "{}", text(&out));
    let metrics = std::fs::read_to_string(run16.join("metrics.csv")).unwrap();
    let header = metrics.lines().next().unwrap();
    assert!(header.ends_with(",loss_scale,skipped_steps"), "{header}");
    let last = metrics.lines().last().unwrap();
    assert!(
        last.ends_with(",65536,0"),
        "no overflow expected here: {last}"
    );
    let f32_metrics = std::fs::read_to_string(run32.join("metrics.csv")).unwrap();
    assert!(!f32_metrics.contains("loss_scale"), "{f32_metrics}");
    // Both learn the tiny set; the f16 run's test loss stays near the f32 one's.
    let loss = |run: &std::path::Path| summary_field(run, "test_loss").parse::<f32>().unwrap();
    let (l16, l32) = (loss(&run16), loss(&run32));
    let first: f32 = metrics
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        l16 < 0.5 * first,
        "f16 did not learn: first loss {first}, test loss {l16}"
    );
    assert!(
        (l16 - l32).abs() <= 0.05 + 0.1 * l32,
        "f16 {l16} vs f32 {l32}"
    );
}

#[test]
fn an_f16_run_resumes_bit_for_bit_and_may_switch_precision() {
    let Some(_gpu) = common::f16_gpu() else {
        return;
    };
    let dir = temp_dir("f16-resume");
    tiny_dataset(&dir);
    let f16 = ["--epochs", "2", "--precision", "f16"];
    let (straight, resumed) = (dir.join("straight"), dir.join("resumed"));
    let out = tiny_mlp(&dir, &straight, &f16);
    assert!(out.status.success(), "{}", text(&out));
    // Stopped mid-epoch, then resumed to the end: the same weights, moments and scale.
    let out = tiny_mlp(&dir, &resumed, &[&f16[..], &["--steps", "13"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let out = tiny_mlp(
        &dir,
        &resumed,
        &[&f16[..], &["--resume", "--no-tuning-cache"]].concat(),
    );
    expect(&out, 0, &["resuming"]);
    assert_same_checkpoint(&straight, &resumed);

    // An f32 run continued at f16 (the scale starts afresh), and back: both run.
    let switched = dir.join("switched");
    let f32_args = ["--epochs", "1", "--precision", "f32"];
    let out = tiny_mlp(&dir, &switched, &f32_args);
    assert!(out.status.success(), "{}", text(&out));
    let out = tiny_mlp(
        &dir,
        &switched,
        &["--epochs", "2", "--precision", "f16", "--resume"],
    );
    expect(&out, 0, &["resuming"]);
    let metrics = std::fs::read_to_string(switched.join("metrics.csv")).unwrap();
    assert!(
        metrics.lines().last().unwrap().ends_with(",65536,0"),
        "{metrics}"
    );
    let out = tiny_mlp(
        &dir,
        &switched,
        &["--epochs", "3", "--precision", "f32", "--resume"],
    );
    expect(&out, 0, &["resuming"]);
    // One table: the scale's columns came with the f16 part, empty in the f32 rows.
    let metrics = std::fs::read_to_string(switched.join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    let columns = lines.next().unwrap().split(',').count();
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter().all(|r| r.split(',').count() == columns),
        "{metrics}"
    );
    let scaled = rows.iter().filter(|r| r.ends_with(",65536,0")).count();
    assert!(scaled > 0 && scaled < rows.len(), "{metrics}");
}

/// Each training command on a device without f16 (wgpu's GL fallback, asked for with
/// `--backend gl`) is refused naming the feature, before its run folder exists.
#[test]
fn a_device_without_f16_is_refused_before_anything_is_allocated() {
    let Some(_gpu) = common::gpu() else { return };
    let dir = temp_dir("f16-refused");
    tiny_dataset(&dir);
    let data = dir.to_str().unwrap();
    let commands = [
        &["mlp", "--data-dir", data][..],
        &["lm", "--dropout", "0.1"],
        &["resnet", "--dataset", "fashion-mnist", "--data-dir", data],
    ];
    for command in commands {
        let run = dir.join(command[0]);
        let flags = ["--backend", "gl", "--precision", "f16", "--out"];
        let out = rezero(&[&["train"][..], command, &flags, &[run.to_str().unwrap()]].concat());
        if text(&out).contains("no adapter") && !common::ci() {
            common::skip("no GL adapter to refuse f16 on");
            return;
        }
        expect(
            &out,
            1,
            &["--precision", "SHADER_F16", "use f32 on this device"],
        );
        assert!(!run.exists(), "train {} made {}", command[0], run.display());
    }
    let out = rezero(&["train", "mlp", "--precision", "f8"]);
    expect(&out, 2, &["'f8' is not f32 or f16"]);
}

/// `train resnet` on the tiny data set (`tiny_resnet_args`), then `extra`.
fn tiny_resnet(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let args = tiny_resnet_args(data.to_str().unwrap(), out.to_str().unwrap());
    rezero(&[&args[..], extra].concat())
}

/// The training loss of each logged step of `run`.
fn losses(run: &Path) -> Vec<f32> {
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let lines = metrics.lines().skip(1);
    lines
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn train_resnet_at_f16_follows_f32_in_every_variant_and_resumes_bit_for_bit() {
    let Some(_gpu) = common::f16_gpu() else {
        return;
    };
    let dir = temp_dir("f16-resnet");
    tiny_dataset(&dir);
    // Each variant (BatchNorm or not; projection or identity shortcuts) at both precisions:
    // the f16 loss follows the f32 one step by step (f16 activations move each loss by
    // about 1e-4 here; allowed: 1e-2 + 1%). The ReZero variant learns in these 6 steps.
    let variants = [
        &["--variant", "rezero"][..],
        &["--variant", "standard", "--shortcut", "identity"],
        &["--variant", "rezero-nobn"],
    ];
    for (i, variant) in variants.iter().enumerate() {
        let run = |p: &str| dir.join(format!("{i}-{p}"));
        for p in ["f16", "f32"] {
            let extra = [&variant[..], &["--epochs", "2", "--precision", p]].concat();
            let out = tiny_resnet(&dir, &run(p), &extra);
            assert!(out.status.success(), "{variant:?} {p}: {}", text(&out));
        }
        let (l16, l32) = (losses(&run("f16")), losses(&run("f32")));
        assert_eq!(l16.len(), 6, "{variant:?}");
        for (step, (a, b)) in l16.iter().zip(&l32).enumerate() {
            assert!(
                (a - b).abs() <= 1e-2 + 1e-2 * b.abs(),
                "{variant:?} step {}: f16 {a} vs f32 {b}",
                step + 1
            );
        }
        assert!(i > 0 || l16[5] < l16[0], "f16 did not learn: {l16:?}");
    }
    // Stopped mid-epoch (4 of 6 steps), then resumed: the unbroken run's checkpoint.
    let resumed = dir.join("resumed");
    let f16 = ["--epochs", "2", "--precision", "f16"];
    let out = tiny_resnet(&dir, &resumed, &[&f16[..], &["--steps", "4"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let out = tiny_resnet(
        &dir,
        &resumed,
        &[&f16[..], &["--resume", "--no-tuning-cache"]].concat(),
    );
    expect(&out, 0, &["resuming"]);
    assert_same_checkpoint(&dir.join("0-f16"), &resumed);
}

/// `train lm` at f16 with dropout (its masks drawn from the seed and the step): a run
/// stopped at step 3 and resumed ends on the unbroken run's checkpoint, bit for bit.
#[test]
fn train_lm_at_f16_with_dropout_resumes_bit_for_bit() {
    let Some(_gpu) = common::f16_gpu() else {
        return;
    };
    let dir = temp_dir("f16-lm");
    let lm = |run: &Path, steps: &str, extra: &[&str]| {
        let flags = [
            "--dropout",
            "0.1",
            "--precision",
            "f16",
            "--eval-every",
            "3",
        ];
        let tail = [
            "--eval-windows",
            "2",
            "--sample",
            "0",
            "--quiet",
            "--steps",
            steps,
        ];
        let out = ["--out", run.to_str().unwrap()];
        let args = [&["train", "lm"][..], &TINY_LM, &flags, &tail, &out, extra].concat();
        rezero(&args)
    };
    let (straight, resumed) = (dir.join("straight"), dir.join("resumed"));
    let out = lm(&straight, "6", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lm(&resumed, "3", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lm(&resumed, "6", &["--resume", "--no-tuning-cache"]);
    expect(&out, 0, &["resuming"]);
    assert_same_checkpoint(&straight, &resumed);
}

/// `bench lm --precision f16` times a mixed-precision step (loss-scaled, as in training)
/// and names its row.
#[test]
fn bench_lm_times_an_f16_step() {
    let Some(_gpu) = common::f16_gpu() else {
        return;
    };
    let size = ["--sizes", "1x64x16x2", "--runs", "1", "--warmup", "0"];
    let args = [
        &["--no-tuning-cache", "bench", "lm"][..],
        &size,
        &["--precision", "f16"],
    ];
    let out = rezero(&args.concat());
    expect(&out, 0, &["f16:rezero", "tokens/s", "activations"]);
}
