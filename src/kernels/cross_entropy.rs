//! Launchers for `shaders/cross_entropy.wgsl`: mean cross-entropy of logits and its gradient.

use crate::gpu::{Gpu, Recorder, Result};

use super::precision::{check_len_of, require};
use super::{Dtype, Typed, check_len, check_nonempty, dispatch_rows, elements};

pub(crate) const SHADERS: Typed = super::typed!(
    "cross_entropy",
    Params,
    "workgroup.wgsl",
    "cross_entropy.wgsl"
);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    grad_scale: f32,
    loss_scaled: u32,
}

/// loss[0] = mean over rows of −log softmax(logits)[target], and dlogits = its gradient
/// ((softmax − onehot) / rows). A target ≥ cols marks a row to ignore (zero loss and gradient,
/// still counted in the mean). loss: [1]; dlogits, logits: [rows, cols]; row_loss: [rows]
/// (scratch, left holding each row's loss); targets: [rows] (u32). Logits and dlogits are
/// `dtype` (f16 activations: the sums and the loss stay f32). With `loss_scale` (the loss
/// scaler's state, [`super::loss_scale::ScalerState`]) dlogits is the gradient times its scale.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    loss: &wgpu::Buffer,
    dlogits: &wgpu::Buffer,
    row_loss: &wgpu::Buffer,
    logits: &wgpu::Buffer,
    targets: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    dtype: Dtype,
    loss_scale: Option<&wgpu::Buffer>,
) -> Result<()> {
    const OP: &str = "cross_entropy";
    require(gpu, OP, dtype)?;
    check_nonempty(OP, &[("rows", rows), ("cols", cols)])?;
    let len = elements(OP, &[rows, cols])?;
    check_len(OP, "loss [1]", loss, 1)?;
    check_len_of(OP, "dlogits [rows, cols]", dlogits, len, dtype)?;
    check_len(OP, "row_loss [rows]", row_loss, rows as u64)?;
    check_len_of(OP, "logits [rows, cols]", logits, len, dtype)?;
    check_len(OP, "targets [rows]", targets, rows as u64)?;
    if let Some(state) = loss_scale {
        check_len(OP, "loss scaler state [4]", state, 4)?;
    }
    let params = Params {
        rows,
        cols,
        grad_scale: 1.0 / rows as f32,
        loss_scaled: loss_scale.is_some() as u32,
    };
    // Without a scaler its binding holds the targets (read-only, never read).
    let scaler = loss_scale.unwrap_or(targets);
    dispatch_rows(
        gpu,
        pass,
        SHADERS.get(dtype),
        "cross_entropy_rows",
        &params,
        &[dlogits, row_loss, logits, targets, scaler],
        rows,
    )?;
    // One workgroup averages the rows.
    dispatch_rows(
        gpu,
        pass,
        SHADERS.get(dtype),
        "cross_entropy_mean",
        &params,
        &[loss, row_loss],
        1,
    )
}
