//! A whole training step of a deep MLP (forward, backward, optimizer), timed, with the
//! memory it holds: the figure for depth scaling.

use super::{StepProfile, StepTiming, time_step, wait};
use crate::gpu::{Gpu, Result};
use crate::kernels::Dtype;
use crate::nn::{Mlp, MlpConfig, MlpVariant, init};
use crate::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use crate::tape::{Tape, tune};

/// The measured step.
#[derive(Clone, Debug)]
pub struct MlpStep {
    /// One more step under the profiler, when asked.
    pub profile: Option<StepProfile>,
    /// Median seconds a step.
    pub seconds: f64,
    /// Multiply-adds × 2 of the linear layers, forward and backward (3 products each).
    pub flops: f64,
    /// Peak bytes of the tape's pool: activations and their gradients.
    pub peak_activation_bytes: u64,
    /// Parameters, gradients and optimizer state.
    pub param_bytes: u64,
}

/// The benchmarked MLP: inputs = width, 10 classes.
pub fn mlp_config(variant: MlpVariant, depth: usize, width: usize) -> MlpConfig {
    MlpConfig {
        variant,
        depth,
        width,
        inputs: width,
        classes: 10,
        alpha_init: 0.0,
        seed: 1,
    }
}

/// Times steps of a `variant` MLP of `depth` blocks of `width` on a seeded batch of
/// `batch` examples (inputs = width, 10 classes), Adagrad, after tuning the kernels the
/// step meets that the tuning table lacks.
pub fn mlp_step(
    gpu: &Gpu,
    variant: MlpVariant,
    depth: usize,
    width: usize,
    batch: usize,
    timing: StepTiming,
) -> Result<MlpStep> {
    let classes = 10;
    let config = mlp_config(variant, depth, width);
    // Sizes the device or this machine cannot hold are refused before anything is made.
    config.footprint(batch, Dtype::F32)?.check(gpu, 1)?;
    let model = Mlp::new(gpu, config)?;
    let config = OptimizerConfig {
        method: Method::Adagrad { eps: 1e-10 },
        lr: 0.01,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut optimizer = Optimizer::new(gpu, &model.params(), config)?;
    let params = model.params();
    let x = init::normal(2, batch * width, 1.0);
    let y: Vec<u32> = (0..batch as u32).map(|i| i % classes as u32).collect();
    wait(tune::tune_step(gpu, crate::kernels::Dtype::F32, |tape| {
        let xt = tape.input(&x, &[batch, width])?;
        let logits = model.forward(tape, &xt)?;
        tape.cross_entropy(&logits, &y)
    }))?;
    let mut tape = Tape::new(gpu);
    let (seconds, profile) = time_step(
        gpu,
        || {
            let xt = tape.input(&x, &[batch, width])?;
            let logits = model.forward(&mut tape, &xt)?;
            let loss = tape.cross_entropy(&logits, &y)?;
            tape.backward(&loss)?;
            optimizer.step_on_tape(&mut tape, &params)?;
            tape.reset();
            wait(gpu.sync())
        },
        timing,
    )?;
    let linear =
        |inputs: usize, outputs: usize| 6.0 * batch as f64 * inputs as f64 * outputs as f64;
    Ok(MlpStep {
        profile,
        seconds,
        flops: linear(width, width) * (depth + 1) as f64 + linear(width, classes),
        peak_activation_bytes: tape.peak_bytes_held(),
        param_bytes: 2 * model.param_bytes() + optimizer.state_bytes(),
    })
}
