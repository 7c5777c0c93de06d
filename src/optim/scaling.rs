//! Loss scaling (mixed precision) on the optimizer: the scaler's state on the GPU, and its
//! update recorded after each step's parameter updates.

use crate::gpu::{Gpu, Result};
use crate::kernels::loss_scale::{LossScaleRule, loss_scale_update};

use super::Optimizer;

impl Optimizer {
    /// Turns on loss scaling by `rule`, from its initial scale: the gradients the updates
    /// read are then the scale's multiple (the loss's gradient was multiplied by it: see
    /// [`Optimizer::loss_scale_state`]). Each step sums the squared global norm (as for
    /// clipping), skips the update where it is inf or NaN, and records the scale's update
    /// after the parameters'. A skipped step still counts (the schedule and Adam's bias
    /// corrections move on: the host does not know it was skipped until it reads the state).
    pub fn enable_loss_scaling(&mut self, gpu: &Gpu, rule: LossScaleRule) -> Result<()> {
        rule.check()?;
        let state = gpu.upload("loss scaler state", &rule.initial_state().to_values());
        self.loss_scale = Some((rule, state));
        Ok(())
    }

    /// The scaler's state buffer ([`crate::kernels::loss_scale::ScalerState`], 16 bytes)
    /// when loss scaling is on: what the loss's gradient is multiplied by, and what the
    /// trainer reads back with the loss.
    pub fn loss_scale_state(&self) -> Option<&wgpu::Buffer> {
        self.loss_scale.as_ref().map(|(_, state)| state)
    }

    /// Records the loss scale's update after a step's parameter updates.
    pub(crate) fn record_scale_update(
        &self,
        gpu: &Gpu,
        pass: &mut dyn crate::gpu::Recorder,
    ) -> Result<()> {
        match &self.loss_scale {
            Some((rule, state)) => loss_scale_update(gpu, pass, state, &self.norm_sq, rule),
            None => Ok(()),
        }
    }
}
