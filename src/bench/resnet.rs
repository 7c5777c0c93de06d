//! A whole ResNet training step (forward in training mode, backward, SGD with momentum) on
//! a seeded batch of 32×32 images, timed, with its convolution FLOPs and the memory it
//! holds: images per second against depth.

use super::{StepProfile, StepTiming, time_step, wait};
use crate::gpu::{Gpu, Result};
use crate::kernels::Dtype;
use crate::nn::resnet::ConvLayer;
use crate::nn::{Resnet, ResnetConfig, ResnetVariant, init};
use crate::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use crate::tape::{Tape, tune};

/// The measured step.
#[derive(Clone, Debug)]
pub struct ResnetStep {
    /// One more step under the profiler, when asked.
    pub profile: Option<StepProfile>,
    /// Median seconds a step.
    pub seconds: f64,
    pub images: usize,
    /// Convolution multiply-adds × 2, forward and both backwards (three times the forward).
    pub flops: f64,
    /// Peak bytes of the tape's pool: activations and their gradients.
    pub peak_activation_bytes: u64,
    /// Parameters, gradients and optimizer state.
    pub param_bytes: u64,
}

/// Forward FLOPs of every convolution of `model` on `batch` images of `size` × `size`.
pub fn resnet_conv_flops(model: &Resnet, batch: usize, size: usize) -> f64 {
    // (layer, input side) → (forward flops, output side)
    let layer = |l: &ConvLayer, side: usize| {
        let [c_out, c_in, k, _] = l.w.shape[..] else {
            unreachable!("conv weights are 4D")
        };
        let out = (side + 2 * l.pad as usize - k) / l.stride as usize + 1;
        (2.0 * (batch * c_out * out * out * c_in * k * k) as f64, out)
    };
    let (mut flops, mut side) = layer(&model.stem, size);
    for block in &model.blocks {
        let (f1, out) = layer(&block.conv1, side);
        let (f2, _) = layer(&block.conv2, out);
        let f3 = block.projection().map_or(0.0, |s| layer(s, side).0);
        flops += f1 + f2 + f3;
        side = out;
    }
    flops
}

/// The benchmarked ResNet: 3 input channels, 10 classes, projection shortcuts.
pub fn resnet_config(variant: ResnetVariant, depth: usize) -> ResnetConfig {
    ResnetConfig {
        variant,
        depth,
        in_channels: 3,
        classes: 10,
        shortcut: crate::nn::resnet::ShortcutKind::Projection,
        alpha_init: 0.0,
        seed: 1,
    }
}

/// Times training steps of a ResNet of `depth` on `batch` seeded 3×32×32 images, after
/// tuning the kernels the step meets that the tuning table lacks.
pub fn resnet_step(
    gpu: &Gpu,
    variant: ResnetVariant,
    depth: usize,
    batch: usize,
    timing: StepTiming,
) -> Result<ResnetStep> {
    let classes = 10;
    let config = resnet_config(variant, depth);
    // Sizes the device or this machine cannot hold are refused before anything is made.
    config.footprint(batch, 32, Dtype::F32)?.check(gpu, 1)?;
    let model = Resnet::new(gpu, config)?;
    let config = OptimizerConfig {
        method: Method::Sgd { momentum: 0.9 },
        lr: 0.1,
        weight_decay: 1e-4,
        clip: None,
        schedule: Schedule::default(),
    };
    let params = model.params();
    let mut optimizer = Optimizer::new(gpu, &params, config)?;
    let x = init::normal(2, batch * 3 * 32 * 32, 1.0);
    let y: Vec<u32> = (0..batch as u32).map(|i| i % classes as u32).collect();
    wait(tune::tune_step(gpu, crate::kernels::Dtype::F32, |tape| {
        let xt = tape.input(&x, &[batch, 3, 32, 32])?;
        let logits = model.forward(tape, &xt, true)?;
        tape.cross_entropy(&logits, &y)
    }))?;
    let mut tape = Tape::new(gpu);
    let (seconds, profile) = time_step(
        gpu,
        || {
            let xt = tape.input(&x, &[batch, 3, 32, 32])?;
            let logits = model.forward(&mut tape, &xt, true)?;
            let loss = tape.cross_entropy(&logits, &y)?;
            tape.backward(&loss)?;
            optimizer.step_on_tape(&mut tape, &params)?;
            tape.reset();
            wait(gpu.sync())
        },
        timing,
    )?;
    Ok(ResnetStep {
        profile,
        seconds,
        images: batch,
        flops: 3.0 * resnet_conv_flops(&model, batch, 32),
        peak_activation_bytes: tape.peak_bytes_held(),
        param_bytes: 2 * model.param_bytes() + optimizer.state_bytes(),
    })
}
