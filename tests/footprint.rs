//! The footprint that refuses oversized runs before anything is allocated, against what a
//! training step really holds: the tape's peak (`Tape::peak_bytes_held`, every activation
//! and gradient buffer the step took from its pool) after a forward, a backward and an
//! optimizer step of an MLP, a Transformer and a ResNet at two sizes each, at f32 and at
//! f16 (mixed precision). The estimate must cover the peak (or the check lets through a run
//! that does not fit) and be within a small factor of it (or the check refuses runs that
//! fit).

mod common;

use common::precision::dtypes;
use rezero::kernels::Dtype;
use rezero::nn::resnet::ShortcutKind;
use rezero::nn::{BlockVariant, Mlp, MlpConfig, MlpVariant, Resnet, ResnetConfig};
use rezero::nn::{ResnetVariant, Transformer, TransformerConfig, init};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::tape::{Param, Tape, Tensor};
use rezero::{Gpu, Result};

/// The peak as a fraction of the estimate. Above 1 the check lets through runs that do not
/// fit; far below, it refuses runs that do. Measured on lavapipe: 0.92 to 0.99 (before the
/// estimate counted the pool's power-of-two buffers and the layers outside the blocks,
/// 1.04 to 1.92).
const LOWEST: f64 = 0.75;
const HIGHEST: f64 = 1.0;

/// The peak of one training step (forward, backward, an SGD step) of `forward`'s model on
/// a tape of `dtype`.
fn measured_peak(
    gpu: &Gpu,
    params: &[&Param],
    dtype: Dtype,
    forward: impl Fn(&mut Tape) -> Result<Tensor>,
) -> u64 {
    let config = OptimizerConfig {
        method: Method::Sgd { momentum: 0.9 },
        lr: 0.01,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut optimizer = Optimizer::new(gpu, params, config).unwrap();
    let mut tape = Tape::new(gpu);
    tape.set_precision(dtype).unwrap();
    let loss = forward(&mut tape).unwrap();
    tape.backward(&loss).unwrap();
    optimizer.step_on_tape(&mut tape, params).unwrap();
    pollster::block_on(gpu.sync()).unwrap();
    tape.peak_bytes_held()
}

fn assert_within(what: &str, measured: u64, estimate: u64) {
    let ratio = measured as f64 / estimate as f64;
    eprintln!("{what}: measured {measured} bytes, estimated {estimate} ({ratio:.2})");
    assert!(
        (LOWEST..=HIGHEST).contains(&ratio),
        "{what}: the step held {measured} bytes, the footprint estimated {estimate} bytes \
         ({ratio:.2}x)"
    );
}

#[test]
fn the_mlp_footprint_bounds_the_measured_peak() {
    let gpu = require_gpu!();
    let sizes = [(8, 64, 32), (3, 200, 100)];
    for ((depth, width, batch), dtype) in sizes.into_iter().flat_map(|s| with_dtypes(gpu, s)) {
        let config = MlpConfig {
            variant: MlpVariant::Rezero,
            depth,
            width,
            inputs: width,
            classes: 10,
            alpha_init: 0.0,
            seed: 1,
        };
        let estimate = config.footprint(batch, dtype).unwrap().activation_bytes;
        let model = Mlp::new(gpu, config).unwrap();
        let x = init::normal(2, batch * width, 1.0);
        let y: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
        let peak = measured_peak(gpu, &model.params(), dtype, |tape| {
            let xt = tape.input(&x, &[batch, width])?;
            let logits = model.forward(tape, &xt)?;
            tape.cross_entropy(&logits, &y)
        });
        assert_within(
            &format!("MLP {depth}x{width} batch {batch} {dtype}"),
            peak,
            estimate,
        );
    }
}

#[test]
fn the_transformer_footprint_bounds_the_measured_peak() {
    let gpu = require_gpu!();
    let sizes = [(4, 32, 16, 4), (2, 64, 32, 2)];
    for ((layers, d_model, seq, batch), dtype) in
        sizes.into_iter().flat_map(|s| with_dtypes(gpu, s))
    {
        let config = TransformerConfig {
            variant: BlockVariant::PreNorm,
            layers,
            d_model,
            heads: 4,
            d_ff: 4 * d_model,
            seq,
            gelu: true,
            alpha_per_sublayer: false,
            alpha_init: 0.0,
            seed: 1,
        };
        let estimate = config.footprint(batch, dtype).unwrap().activation_bytes;
        let model = Transformer::new(gpu, config).unwrap();
        let ids: Vec<u32> = (0..(batch * seq) as u32)
            .map(|i| (i * 7 + 3) % 256)
            .collect();
        let targets: Vec<u32> = ids.iter().map(|i| (i + 1) % 256).collect();
        let peak = measured_peak(gpu, &model.params(), dtype, |tape| {
            let logits = model.forward(tape, &ids, batch)?;
            tape.cross_entropy(&logits, &targets)
        });
        let what = format!("Transformer {layers}x{d_model} seq {seq} batch {batch} {dtype}");
        assert_within(&what, peak, estimate);
    }
}

#[test]
fn the_resnet_footprint_bounds_the_measured_peak() {
    let gpu = require_gpu!();
    let sizes = [(8, 4, 16), (14, 2, 32)];
    for ((depth, batch, size), dtype) in sizes.into_iter().flat_map(|s| with_dtypes(gpu, s)) {
        let config = ResnetConfig {
            variant: ResnetVariant::Rezero,
            depth,
            in_channels: 3,
            classes: 10,
            shortcut: ShortcutKind::Projection,
            alpha_init: 0.0,
            seed: 1,
        };
        let estimate = config
            .footprint(batch, size, dtype)
            .unwrap()
            .activation_bytes;
        let model = Resnet::new(gpu, config).unwrap();
        let x = init::normal(2, batch * 3 * size * size, 1.0);
        let y: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
        let peak = measured_peak(gpu, &model.params(), dtype, |tape| {
            let xt = tape.input(&x, &[batch, 3, size, size])?;
            let logits = model.forward(tape, &xt, true)?;
            tape.cross_entropy(&logits, &y)
        });
        assert_within(
            &format!("ResNet-{depth} batch {batch} {size}x{size} {dtype}"),
            peak,
            estimate,
        );
    }
}

/// `size` with each activation type this device runs.
fn with_dtypes<S: Copy>(gpu: &Gpu, size: S) -> Vec<(S, Dtype)> {
    dtypes(gpu).into_iter().map(|d| (size, d)).collect()
}
