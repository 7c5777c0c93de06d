//! A whole Transformer training step (forward, backward, Adam) timed on byte windows: the
//! tokens/s figure of the language-model jobs.

use super::{StepProfile, StepTiming, time_step, wait};
use crate::gpu::{Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::loss_scale::LossScaleRule;
use crate::nn::{BlockVariant, Transformer, TransformerConfig};
use crate::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use crate::tape::{Tape, tune};

/// The measured step.
#[derive(Clone, Debug)]
pub struct LmStep {
    /// One more step under the profiler, when asked.
    pub profile: Option<StepProfile>,
    pub seconds: f64,
    pub tokens: usize,
    /// 6 × (linear weights) × tokens, plus the causal attention's products (forward and
    /// backward, 3× the forward's).
    pub flops: f64,
    pub peak_activation_bytes: u64,
}

/// The benchmarked Transformer: ReZero, d_model/64 heads, d_ff 4·d_model.
pub fn lm_config(layers: usize, d_model: usize, seq: usize) -> TransformerConfig {
    TransformerConfig {
        variant: BlockVariant::Rezero,
        layers,
        d_model,
        heads: (d_model / 64).max(1),
        d_ff: d_model.saturating_mul(4),
        seq,
        gelu: true,
        alpha_per_sublayer: false,
        alpha_init: 0.0,
        seed: 1,
    }
}

/// Times training steps of a ReZero Transformer of `layers` × `d_model` (d_model/64 heads,
/// d_ff 4·d_model) on `batch` windows of `seq` bytes, with activations of `dtype` (f16:
/// mixed precision, with the loss scaling a training run has), after tuning the kernels the
/// step meets that the tuning table lacks.
pub fn lm_step(
    gpu: &Gpu,
    layers: usize,
    d_model: usize,
    seq: usize,
    batch: usize,
    dtype: Dtype,
    timing: StepTiming,
) -> Result<LmStep> {
    let config = lm_config(layers, d_model, seq);
    let heads = config.heads;
    crate::kernels::precision::require(gpu, "bench lm", dtype)?;
    // Sizes the device or this machine cannot hold are refused before anything is made.
    config.footprint(batch, dtype)?.check(gpu, 2)?;
    let model = Transformer::new(gpu, config)?;
    let adam = OptimizerConfig {
        method: Method::parse("adam")?,
        lr: 1e-3,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut optimizer = Optimizer::new(gpu, &model.params(), adam)?;
    if dtype == Dtype::F16 {
        optimizer.enable_loss_scaling(gpu, LossScaleRule::default())?;
    }
    let params = model.params();
    let tokens = batch * seq;
    let ids: Vec<u32> = (0..tokens as u32).map(|i| (i * 7 + 3) % 256).collect();
    let targets: Vec<u32> = ids.iter().map(|i| (i + 1) % 256).collect();
    wait(tune::tune_step(gpu, dtype, |tape| {
        let logits = model.forward(tape, &ids, batch)?;
        tape.cross_entropy(&logits, &targets)
    }))?;
    let mut tape = Tape::new(gpu);
    tape.set_precision(dtype)?;
    tape.set_loss_scale(optimizer.loss_scale_state());
    let (seconds, profile) = time_step(
        gpu,
        || {
            let logits = model.forward(&mut tape, &ids, batch)?;
            let loss = tape.cross_entropy(&logits, &targets)?;
            tape.backward(&loss)?;
            optimizer.step_on_tape(&mut tape, &params)?;
            tape.reset();
            wait(gpu.sync())
        },
        timing,
    )?;
    let linear_weights = layers * (12 * d_model * d_model) + 256 * d_model;
    let attention = 3.0
        * 4.0
        * (batch * heads) as f64
        * (seq * (seq + 1) / 2) as f64
        * (d_model / heads) as f64;
    Ok(LmStep {
        profile,
        seconds,
        tokens,
        flops: 6.0 * linear_weights as f64 * tokens as f64 + attention,
        peak_activation_bytes: tape.peak_bytes_held(),
    })
}
