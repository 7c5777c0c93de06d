//! Training end to end on software Vulkan: a 1,000-layer ReZero MLP trains (its loss falls,
//! nothing is NaN), and steady-state steps allocate nothing and create no bind group.

mod common;

use rezero::data::Images;
use rezero::nn::{Mlp, MlpConfig, MlpVariant};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::tape::Tape;
use rezero::train::{ImageRun, RunConfig, train_images};

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

/// The training and test sets of the tests here: 16 inputs, 4 classes.
fn task() -> (Images, Images) {
    (synthetic(1, 640, 16, 4), synthetic(2, 128, 16, 4))
}

/// A ReZero MLP for `task` (α from 0).
fn rezero_mlp(gpu: &rezero::Gpu, depth: usize, width: usize) -> Mlp {
    let config = MlpConfig {
        variant: MlpVariant::Rezero,
        depth,
        width,
        inputs: 16,
        classes: 4,
        alpha_init: 0.0,
        seed: 3,
    };
    Mlp::new(gpu, config).unwrap()
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
    let (train, test) = task();
    let model = rezero_mlp(gpu, 1000, 16);
    let mut optimizer = Optimizer::new(gpu, &model.params(), adagrad(0.05)).unwrap();
    let run = ImageRun {
        run: RunConfig {
            seed: 4,
            // Adagrad's first updates move all 1000 α by about lr at once: at lr 0.05 the
            // loss spikes (to ~1e8 at step 3) before it recovers, which the divergence
            // rule would stop; this test is about getting through the depth.
            allow_divergence: true,
            ..RunConfig::quiet("rezero-1000x16", 32)
        },
        epochs: 1,
        max_steps: Some(16),
        augment: None,
        target_accuracy: None,
    };
    let summary = pollster::block_on(train_images(
        gpu,
        &model,
        &mut optimizer,
        (&train, &test),
        &run,
    ))
    .unwrap();
    let losses: Vec<f32> = summary.run.losses.iter().map(|l| l.1).collect();
    assert_eq!(losses.len(), 16, "{:?}", summary.run.divergence);
    assert!(
        losses.iter().all(|l| l.is_finite()) && !summary.run.diverged(),
        "losses {losses:?}"
    );
    let (first, last) = (losses[0], losses[12..].iter().sum::<f32>() / 4.0);
    assert!(
        last < 0.8 * first,
        "the loss should fall: first {first}, mean of the last four {last}"
    );
    assert!(summary.eval.test_accuracy.is_some_and(f32::is_finite));
    let summary = summary.run;
    let alphas =
        pollster::block_on(gpu.read_f32(&model.alphas.as_ref().unwrap().value, 1000)).unwrap();
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
    let gpu = &pollster::block_on(rezero::Gpu::new(&rezero::GpuOptions::default())).unwrap();
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
    // The first step makes every bind group (the optimizer's first update lands in step 1
    // too); the rest reuse them.
    assert!(bind_groups[0] > 0);
    assert!(
        bind_groups[1..].iter().all(|&b| b == bind_groups[0]),
        "bind groups created by the end of each step: {bind_groups:?}"
    );
}

/// Bind groups created by the end of each of `steps` runs of `step` on `gpu`.
fn bind_groups_per_step(
    gpu: &rezero::Gpu,
    steps: usize,
    mut step: impl FnMut() -> rezero::Result<()>,
) -> Vec<u64> {
    (0..steps)
        .map(|_| {
            step().unwrap();
            gpu.bind_groups_created()
        })
        .collect()
}

#[test]
fn transformer_and_resnet_steps_create_no_bind_group_once_steady() {
    let Some(_) = common::gpu() else { return };
    let adam = |gpu, params: &[&rezero::tape::Param]| {
        let config = OptimizerConfig {
            method: Method::parse("adam").unwrap(),
            lr: 1e-3,
            weight_decay: 0.01,
            clip: Some(1.0),
            schedule: Schedule::parse("cosine:100", 10).unwrap(),
        };
        Optimizer::new(gpu, params, config).unwrap()
    };
    // A Transformer with a learning-rate schedule, clipping and dropout: what changes from
    // step to step (the rate, the dropout masks) lives in buffers, not in uniforms.
    let gpu = pollster::block_on(rezero::Gpu::new(&rezero::GpuOptions::default())).unwrap();
    let config = rezero::nn::TransformerConfig {
        variant: rezero::nn::BlockVariant::Rezero,
        layers: 2,
        d_model: 32,
        heads: 2,
        d_ff: 64,
        seq: 8,
        gelu: true,
        alpha_per_sublayer: false,
        alpha_init: 0.0,
        seed: 1,
    };
    let model = rezero::nn::Transformer::new(&gpu, config).unwrap();
    let params = model.params();
    let mut optimizer = adam(&gpu, &params);
    let mut tape = Tape::new(&gpu);
    let ids: Vec<u32> = (0..16).map(|i| (i * 7 + 3) % 256).collect();
    let targets: Vec<u32> = ids.iter().map(|i| (i + 1) % 256).collect();
    let mut step = 0;
    let created = bind_groups_per_step(&gpu, 4, || {
        let dropout = rezero::tape::DropoutStep { p: 0.1, seed: 3 };
        tape.set_dropout(Some(dropout), step);
        step += 1;
        let logits = model.forward(&mut tape, &ids, 2)?;
        let loss = tape.cross_entropy(&logits, &targets)?;
        tape.backward(&loss)?;
        optimizer.step_on_tape(&mut tape, &params)?;
        tape.reset();
        Ok(())
    });
    assert!(
        created[1..].iter().all(|&c| c == created[0]),
        "transformer: {created:?}"
    );

    let gpu = pollster::block_on(rezero::Gpu::new(&rezero::GpuOptions::default())).unwrap();
    let model = rezero::nn::Resnet::new(
        &gpu,
        rezero::nn::ResnetConfig {
            variant: rezero::nn::ResnetVariant::Rezero,
            depth: 8,
            in_channels: 1,
            classes: 3,
            shortcut: rezero::nn::resnet::ShortcutKind::Projection,
            alpha_init: 0.0,
            seed: 2,
        },
    )
    .unwrap();
    let params = model.params();
    let mut optimizer = adam(&gpu, &params);
    let mut tape = Tape::new(&gpu);
    let x = rezero::nn::init::normal(3, 2 * 32 * 32, 1.0);
    let created = bind_groups_per_step(&gpu, 4, || {
        let xt = tape.input(&x, &[2, 1, 32, 32])?;
        let logits = model.forward(&mut tape, &xt, true)?;
        let loss = tape.cross_entropy(&logits, &[0, 2])?;
        tape.backward(&loss)?;
        optimizer.step_on_tape(&mut tape, &params)?;
        tape.reset();
        Ok(())
    });
    // The tape's shared scratch buffer grows during the first step (a later op wants more
    // than an earlier one), so the second step binds the grown one; from then on, none.
    assert!(
        created[2..].iter().all(|&c| c == created[1]),
        "resnet: {created:?}"
    );
}

/// Mixed precision with a scale that starts far too high (2⁴⁰: the loss's gradient
/// overflows f16 at once): the first steps are skipped, the scale halves each time, and
/// once it fits the run trains as usual (the loss falls). A scale below 1 (what steps that
/// overflow at every scale leave) stops the run as diverged, with the reason given.
#[test]
fn an_f16_run_skips_its_overflowing_steps_and_recovers() {
    let Some(gpu) = common::f16_gpu() else { return };
    let (train, test) = task();
    let model = rezero_mlp(gpu, 8, 32);
    let mut optimizer = Optimizer::new(gpu, &model.params(), adagrad(0.05)).unwrap();
    let rule = rezero::kernels::loss_scale::LossScaleRule {
        init_scale: 2f32.powi(40),
        ..Default::default()
    };
    optimizer.enable_loss_scaling(gpu, rule).unwrap();
    let run = ImageRun {
        run: RunConfig {
            seed: 4,
            precision: rezero::kernels::Dtype::F16,
            ..RunConfig::quiet("rezero-8x32-f16", 32)
        },
        epochs: 2,
        max_steps: Some(40),
        augment: None,
        target_accuracy: None,
    };
    let summary = pollster::block_on(train_images(
        gpu,
        &model,
        &mut optimizer,
        (&train, &test),
        &run,
    ))
    .unwrap();
    assert!(!summary.run.diverged(), "{:?}", summary.run.divergence);
    let state = pollster::block_on(gpu.read_f32(optimizer.loss_scale_state().unwrap(), 4)).unwrap();
    let (scale, skipped) = (state[0], state[2]);
    // 2⁴⁰ must halve below f16's range for the gradients (65504 and less): at least 20 times.
    assert!(
        skipped >= 20.0 && scale <= 2f32.powi(20),
        "scale {scale}, skipped {skipped}"
    );
    assert_eq!(
        scale,
        2f32.powi(40 - skipped as i32),
        "one halving a skipped step"
    );
    let losses: Vec<f32> = summary.run.losses.iter().map(|l| l.1).collect();
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(
        last < 0.8 * first,
        "the loss should fall once the scale fits: {losses:?}"
    );

    let mut optimizer = Optimizer::new(gpu, &model.params(), adagrad(0.05)).unwrap();
    let rule = rezero::kernels::loss_scale::LossScaleRule {
        init_scale: 0.5,
        ..Default::default()
    };
    optimizer.enable_loss_scaling(gpu, rule).unwrap();
    let summary = pollster::block_on(train_images(
        gpu,
        &model,
        &mut optimizer,
        (&train, &test),
        &run,
    ))
    .unwrap();
    let why = summary.run.divergence.map(|d| d.why).unwrap_or_default();
    assert!(why.contains("loss scale fell to 0.5"), "{why}");
}
