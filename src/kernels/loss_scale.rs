//! Launchers for `shaders/loss_scale.wgsl`: the loss scaler of mixed-precision training,
//! PyTorch's GradScaler rule on the GPU. The loss's gradient is multiplied by the scale
//! (the cross-entropy reads it from the scaler's state), so small f16 gradients do not
//! flush to zero; the optimizer updates divide it out and skip a step whose gradients
//! overflowed ([`super::optim::GlobalNorm`]); [`loss_scale_update`] then adjusts the scale.
//! Nothing is read back: the trainer reads the state with the loss.

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Shader};

use super::check_len;

pub(crate) const SHADER: Shader = Shader {
    name: "loss_scale",
    wgsl: super::wgsl!("finite.wgsl", "loss_scale.wgsl"),
    uniform_bytes: std::mem::size_of::<Params>(),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    growth: f32,
    backoff: f32,
    growth_interval: u32,
    _pad: u32,
}

/// How the scale moves (GradScaler's defaults: start at 2¹⁶, halve on an overflow, double
/// after 2,000 clean steps in a row).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaleRule {
    pub init_scale: f32,
    /// > 1: the factor after `growth_interval` clean steps.
    pub growth: f32,
    /// In (0, 1): the factor after a step that overflowed.
    pub backoff: f32,
    /// ≥ 1 clean steps in a row before the scale grows.
    pub growth_interval: u32,
}

impl Default for LossScaleRule {
    fn default() -> LossScaleRule {
        LossScaleRule {
            init_scale: 65_536.0,
            growth: 2.0,
            backoff: 0.5,
            growth_interval: 2000,
        }
    }
}

impl LossScaleRule {
    /// Errors unless every field is in its range.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str, value: String, rule: &str| {
            Err(Error::Invalid {
                what: format!("loss scale {what}"),
                why: format!("{value} {rule}"),
            })
        };
        if !(self.init_scale > 0.0 && self.init_scale.is_finite()) {
            return bad(
                "init_scale",
                self.init_scale.to_string(),
                "must be a finite number > 0",
            );
        }
        if !(self.growth > 1.0 && self.growth.is_finite()) {
            return bad(
                "growth",
                self.growth.to_string(),
                "must be a finite number > 1",
            );
        }
        if !(self.backoff > 0.0 && self.backoff < 1.0) {
            return bad("backoff", self.backoff.to_string(), "must be in (0, 1)");
        }
        if self.growth_interval == 0 {
            return bad("growth_interval", "0".into(), "must be at least 1");
        }
        Ok(())
    }

    /// The state a run starts from: the initial scale, nothing counted.
    pub fn initial_state(&self) -> ScalerState {
        ScalerState {
            scale: self.init_scale,
            clean_steps: 0.0,
            skipped_steps: 0.0,
            last_skipped: 0.0,
        }
    }
}

/// The scaler's state on the GPU: four f32, the scale first (the updates and the
/// cross-entropy read it there), then counts (exact to 2²⁴), so that a checkpoint keeps it
/// as a tensor like any other. Upload [`LossScaleRule::initial_state`] to start.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ScalerState {
    pub scale: f32,
    /// Clean steps since the scale last changed.
    pub clean_steps: f32,
    /// Steps skipped (their gradients overflowed) so far.
    pub skipped_steps: f32,
    /// 1 when the last step was skipped, else 0.
    pub last_skipped: f32,
}

impl ScalerState {
    /// The state from the four values of its buffer.
    pub fn from_values(values: [f32; 4]) -> ScalerState {
        bytemuck::cast(values)
    }

    /// The state as four values, to upload.
    pub fn to_values(self) -> [f32; 4] {
        bytemuck::cast(self)
    }
}

/// Records the scale's update after a step's updates: the step overflowed when `norm_sq`
/// (the squared global norm of its scaled gradients) is inf or NaN. state: [`ScalerState`];
/// norm_sq: [1].
pub fn loss_scale_update(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    state: &wgpu::Buffer,
    norm_sq: &wgpu::Buffer,
    rule: &LossScaleRule,
) -> Result<()> {
    const OP: &str = "loss_scale_update";
    rule.check()?;
    check_len(OP, "state [4]", state, 4)?;
    check_len(OP, "norm_sq [1]", norm_sq, 1)?;
    let params = Params {
        growth: rule.growth,
        backoff: rule.backoff,
        growth_interval: rule.growth_interval,
        _pad: 0,
    };
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, OP),
        &params,
        &[state, norm_sq],
        [1, 1, 1],
    )
}
