//! ResNets: ResNet-20 of every variant trains a few steps on a small batch and its loss
//! falls (the CI depth check on software Vulkan; ReZero also with the zero-padded identity
//! shortcut); `rezero train resnet` end to end on tiny
//! IDX files (28×28 padded to 32×32): a run with augmentation, a resumed run that matches
//! an uninterrupted one bit for bit, --compare with a target accuracy, and clear errors.

mod common;

use common::cli::{rezero, temp_dir, text, tiny_dataset, tiny_resnet_args};
use rezero::nn::resnet::ShortcutKind;
use rezero::nn::{Resnet, ResnetConfig, ResnetVariant, init};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::tape::Tape;
use rezero::train::checkpoint;

/// Images whose class sets the frequency of vertical stripes (1 to 10 periods across),
/// plus noise: a task a convolution followed by global pooling can learn.
fn banded_batch(batch: usize) -> (Vec<f32>, Vec<u32>) {
    let labels: Vec<u32> = (0..batch as u32).map(|i| i * 3 % 10).collect();
    let noise = init::normal(5, batch * 3 * 32 * 32, 0.3);
    let x = noise
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (image, col) = (i / (3 * 32 * 32), i % 32);
            let periods = (labels[image] + 1) as f32;
            n + (std::f32::consts::TAU * periods * col as f32 / 32.0).cos()
        })
        .collect();
    (x, labels)
}

#[test]
fn resnet20_every_variant_lowers_the_loss_on_a_fixed_batch() {
    let gpu = require_gpu!();
    let batch = 10;
    let (x, y) = banded_batch(batch);
    let cases = ResnetVariant::ALL
        .map(|v| (v, ShortcutKind::Projection))
        .into_iter()
        .chain([(ResnetVariant::Rezero, ShortcutKind::Identity)]);
    for (variant, shortcut) in cases {
        let config = ResnetConfig {
            variant,
            depth: 20,
            in_channels: 3,
            classes: 10,
            shortcut,
            alpha_init: 0.0,
            seed: 3,
        };
        let model = Resnet::new(gpu, config).unwrap();
        let params = model.params();
        // Without BatchNorm, or with parameter-free shortcuts, the net starts as little more
        // than a linear probe of the stem and needs a larger step.
        let lr = if variant == ResnetVariant::RezeroNoBn || shortcut == ShortcutKind::Identity {
            0.1
        } else {
            0.05
        };
        let opt = OptimizerConfig {
            method: Method::Sgd { momentum: 0.9 },
            lr,
            weight_decay: 1e-4,
            clip: None,
            schedule: Schedule::default(),
        };
        let mut optimizer = Optimizer::new(gpu, &params, opt).unwrap();
        let mut tape = Tape::new(gpu);
        let mut losses = Vec::new();
        for _ in 0..10 {
            let xt = tape.input(&x, &[batch, 3, 32, 32]).unwrap();
            let logits = model.forward(&mut tape, &xt, true).unwrap();
            let loss = tape.cross_entropy(&logits, &y).unwrap();
            tape.backward(&loss).unwrap();
            optimizer.step_on_tape(&mut tape, &params).unwrap();
            losses.push(pollster::block_on(tape.read(&loss)).unwrap()[0]);
            tape.reset();
        }
        let (first, last) = (losses[0], losses[losses.len() - 1]);
        assert!(
            last.is_finite() && last < 0.8 * first,
            "{} ({} shortcut): losses {losses:?}",
            variant.name(),
            shortcut.name()
        );
        if let Some(alphas) = &model.alphas {
            let a = pollster::block_on(gpu.read_f32(&alphas.value, alphas.len())).unwrap();
            assert!(a.iter().any(|&v| v != 0.0), "α moved from 0: {a:?}");
        }
    }
}

#[test]
fn eval_mode_uses_running_statistics() {
    let gpu = require_gpu!();
    let config = ResnetConfig {
        variant: ResnetVariant::Standard,
        depth: 8,
        in_channels: 3,
        classes: 10,
        shortcut: ShortcutKind::Identity,
        alpha_init: 0.0,
        seed: 1,
    };
    let model = Resnet::new(gpu, config).unwrap();
    let (x, _) = banded_batch(4);
    let mut tape = Tape::new(gpu);
    tape.set_grad_enabled(false);
    let xt = tape.input(&x, &[4, 3, 32, 32]).unwrap();
    let logits = model.forward(&mut tape, &xt, false).unwrap();
    let before = pollster::block_on(tape.read(&logits)).unwrap();
    // A training-mode pass moves the running statistics, so eval outputs change.
    model.forward(&mut tape, &xt, true).unwrap();
    let logits = model.forward(&mut tape, &xt, false).unwrap();
    let after = pollster::block_on(tape.read(&logits)).unwrap();
    assert!(before.iter().zip(&after).any(|(a, b)| a != b));
    let err = Resnet::new(
        gpu,
        ResnetConfig {
            depth: 21,
            ..model.config.clone()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("6n + 2"), "{err}");
}

fn train_args<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    [
        tiny_resnet_args(data, out),
        vec!["--epochs", epochs, "--augment"],
    ]
    .concat()
}

#[test]
fn train_resnet_resume_compare_and_errors() {
    let _gpu = require_gpu!();
    let dir = temp_dir("resnet");
    tiny_dataset(&dir);
    let data = dir.to_str().unwrap();
    let (straight, resumed) = (dir.join("straight"), dir.join("resumed"));
    let (s, r) = (straight.to_str().unwrap(), resumed.to_str().unwrap());

    let out = rezero(&train_args(data, s, "2"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("resnet8-rezero: 6 steps"),
        "{}",
        text(&out)
    );
    let metrics = std::fs::read_to_string(straight.join("metrics.csv")).unwrap();
    assert!(metrics.starts_with(
        "step,epoch,loss,lr,images_per_s,alpha_min,alpha_mean,alpha_max,alpha_0,alpha_1,alpha_2\n"
    ));
    assert_eq!(metrics.lines().count(), 7, "{metrics}");
    let eval = std::fs::read_to_string(straight.join("eval.csv")).unwrap();
    assert_eq!(eval.lines().count(), 3, "{eval}");

    // Resumed at an epoch boundary, and from the middle of the second epoch (4 of 6 steps).
    let midway = dir.join("midway");
    let m = midway.to_str().unwrap();
    let first_parts = [
        train_args(data, r, "1"),
        [&train_args(data, m, "2")[..], &["--steps", "4"]].concat(),
    ];
    for (run, first) in [(&resumed, &first_parts[0]), (&midway, &first_parts[1])] {
        let out = rezero(first);
        assert!(out.status.success(), "{}", text(&out));
        let args = train_args(data, run.to_str().unwrap(), "2");
        // Without the tuning cache: the checkpoint's kernel choices alone make the
        // resumed part run the kernels the straight run ran.
        let out = rezero(&[&args[..], &["--resume", "--no-tuning-cache"]].concat());
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("resuming"), "{}", text(&out));
        let a = checkpoint::load(&straight.join("model.safetensors")).unwrap();
        let b = checkpoint::load(&run.join("model.safetensors")).unwrap();
        assert_eq!(a.metadata.get("epoch").map(String::as_str), Some("2"));
        assert_eq!(b.metadata.get("step").map(String::as_str), Some("6"));
        assert_eq!(a.tensors.len(), b.tensors.len());
        for (name, (shape, values)) in &a.tensors {
            let (shape_b, values_b) = &b.tensors[name];
            assert_eq!(shape, shape_b, "{name}");
            assert!(
                values == values_b,
                "{name} differs after resuming {}",
                run.display()
            );
        }
        assert!(a.tensors.contains_key("stem.bn.running_var"));
        // One loss row a step, whatever the interruption.
        let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        assert_eq!(metrics.lines().count(), 7, "{metrics}");
    }
    // A finished run has nothing to resume.
    let out = rezero(&[&train_args(data, s, "2")[..], &["--resume"]].concat());
    assert!(
        !out.status.success() && text(&out).contains("raise --epochs"),
        "{}",
        text(&out)
    );

    let cmp = dir.join("cmp");
    let mut args = train_args(data, cmp.to_str().unwrap(), "2");
    args.extend([
        "--compare",
        "standard,rezero,rezero-nobn",
        "--target-acc",
        "5",
    ]);
    let out = rezero(&args);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("epochs to 5.0%") && shown.contains("resnet8-rezero-nobn"),
        "{shown}"
    );
    let svg = std::fs::read_to_string(cmp.join("test_accuracy.svg")).unwrap();
    assert!(svg.contains("resnet8-standard") && svg.contains("epoch"));

    // Resuming with another depth, and a bad depth, are refused with a clear message.
    let mut args = train_args(data, r, "3");
    args[7] = "14";
    let out = rezero(&[&args[..], &["--resume"]].concat());
    assert!(
        out.status.code() == Some(1)
            && text(&out).contains("--depth is 14 here")
            && text(&out).contains("started with --depth 8"),
        "{}",
        text(&out)
    );
    let mut args = train_args(data, s, "1");
    args[7] = "9";
    let out = rezero(&args);
    assert!(
        !out.status.success() && text(&out).contains("6n + 2"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resnet20_conv_flops_match_the_paper_count() {
    // ResNet-20 on CIFAR: about 41 million multiply-adds per image (He et al. 2016).
    let gpu = require_gpu!();
    let model = rezero::nn::Resnet::new(
        gpu,
        rezero::nn::ResnetConfig {
            variant: rezero::nn::ResnetVariant::Standard,
            depth: 20,
            in_channels: 3,
            classes: 10,
            shortcut: rezero::nn::resnet::ShortcutKind::Projection,
            alpha_init: 0.0,
            seed: 0,
        },
    )
    .unwrap();
    let macs = rezero::bench::resnet_conv_flops(&model, 1, 32) / 2.0;
    assert!((40e6..42e6).contains(&macs), "{macs}");
}
