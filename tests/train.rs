//! Training end to end on software Vulkan: a 1,000-layer ReZero MLP trains (its loss falls,
//! nothing is NaN), and steady-state steps allocate nothing.

mod common;

use rezero::data::Images;
use rezero::nn::{Mlp, MlpConfig, MlpVariant};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::tape::Tape;
use rezero::train::{RunConfig, train_classifier};

/// A learnable synthetic task: labels are the argmax of a fixed random linear map of the
/// inputs.
fn synthetic(seed: u64, count: usize, inputs: usize, classes: usize) -> Images {
    let x = rezero::nn::init::normal(seed, count * inputs, 1.0);
    let map = rezero::nn::init::normal(999, classes * inputs, 1.0);
    let labels = x
        .chunks(inputs)
        .map(|row| {
            let scores = map
                .chunks(inputs)
                .map(|m| m.iter().zip(row).map(|(a, b)| a * b).sum::<f32>());
            scores
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, s)| if s > b.1 { (i, s) } else { b },
                )
                .0 as u32
        })
        .collect();
    Images {
        images: x,
        labels,
        count,
        channels: 1,
        height: 1,
        width: inputs,
        classes,
        background: vec![0.0],
    }
}

fn adagrad(lr: f32) -> OptimizerConfig {
    OptimizerConfig {
        method: Method::parse("adagrad").unwrap(),
        lr,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    }
}

#[test]
fn a_thousand_layer_rezero_mlp_trains() {
    let gpu = require_gpu!();
    let (inputs, classes) = (16, 4);
    let (train, test) = (
        synthetic(1, 640, inputs, classes),
        synthetic(2, 128, inputs, classes),
    );
    let config = MlpConfig {
        variant: MlpVariant::Rezero,
        depth: 1000,
        width: 16,
        inputs,
        classes,
        alpha_init: 0.0,
        seed: 3,
    };
    let model = Mlp::new(gpu, config).unwrap();
    let mut optimizer = Optimizer::new(gpu, &model.params(), adagrad(0.05)).unwrap();
    let run = RunConfig {
        label: "rezero-1000x16".into(),
        epochs: 1,
        max_steps: Some(16),
        batch: 32,
        seed: 4,
        log_every: 1,
        out: None,
        show_progress: false,
        profile_step: None,
    };
    let summary = train_classifier(gpu, &model, &mut optimizer, &train, &test, &run).unwrap();
    let losses: Vec<f32> = summary.losses.iter().map(|l| l.1).collect();
    assert_eq!(losses.len(), 16);
    assert!(
        losses.iter().all(|l| l.is_finite()) && !summary.diverged,
        "losses {losses:?}"
    );
    let (first, last) = (losses[0], losses[12..].iter().sum::<f32>() / 4.0);
    assert!(
        last < 0.8 * first,
        "the loss should fall: first {first}, mean of the last four {last}"
    );
    assert!(summary.test_accuracy.is_finite());
    let alphas = gpu
        .read_f32(&model.alphas.as_ref().unwrap().value, 1000)
        .unwrap();
    assert!(
        alphas.iter().all(|a| a.is_finite()) && alphas.iter().any(|&a| a != 0.0),
        "α moved from 0 and stayed finite"
    );
    eprintln!(
        "1000 layers x 16 wide, batch 32: {:.1} MiB of activations and gradients at peak, {:.1} MiB of parameters, gradients and optimizer state, {:.2} s for 16 steps",
        summary.peak_activation_bytes as f64 / 1048576.0,
        summary.param_bytes as f64 / 1048576.0,
        summary.wall_seconds
    );
}

#[test]
fn steady_state_steps_allocate_nothing_and_create_no_bind_group() {
    // A device of its own, so that the bind-group count sees only this loop.
    let Some(_) = common::gpu() else { return };
    let gpu = &rezero::Gpu::new(&rezero::GpuOptions::default()).unwrap();
    let data = synthetic(5, 64, 8, 3);
    let model = Mlp::new(
        gpu,
        MlpConfig {
            variant: MlpVariant::LayerNorm,
            depth: 4,
            width: 8,
            inputs: 8,
            classes: 3,
            alpha_init: 0.0,
            seed: 6,
        },
    )
    .unwrap();
    let mut optimizer = Optimizer::new(gpu, &model.params(), adagrad(0.01)).unwrap();
    let params = model.params();
    let mut tape = Tape::new(gpu);
    let (mut allocations, mut bind_groups) = (Vec::new(), Vec::new());
    for step in 0..5 {
        let (x, y) = data.gather(&(step * 8..step * 8 + 8).collect::<Vec<_>>());
        let xt = tape.input(&x, &[8, 8]).unwrap();
        let logits = model.forward(&mut tape, &xt).unwrap();
        let loss = tape.cross_entropy(&logits, &y).unwrap();
        tape.backward(&loss).unwrap();
        tape.record(|gpu, pass| optimizer.step(gpu, pass, &params))
            .unwrap();
        tape.reset();
        allocations.push(tape.allocations());
        bind_groups.push(gpu.bind_groups_created());
    }
    assert!(allocations[0] > 0);
    assert!(
        allocations[1..].iter().all(|&a| a == allocations[0]),
        "pool allocations per step: {allocations:?}"
    );
    // The pool hands a size class's buffers out last-in first-out, so steps alternate
    // between two assignments of buffers to tensors: two steps make every bind group.
    assert!(bind_groups[0] > 0);
    assert!(
        bind_groups[2..].iter().all(|&b| b == bind_groups[1]),
        "bind groups created by the end of each step: {bind_groups:?}"
    );
}
