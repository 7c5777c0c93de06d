//! Launchers for `shaders/batchnorm.wgsl`: batch normalisation of NCHW activations per
//! channel, in training mode (batch statistics; running statistics updated on the GPU) and
//! eval mode, and the training-mode backward. x, y, dy and dx are f32 or f16 activations
//! (`BatchNormShape::dtype`); gamma, beta, their gradients and every statistic are f32.

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result};

use super::precision::{check_len_of, require};
use super::{
    Dtype, Grad, NormSaved, Typed, accumulate_bits, check_len, check_nonempty, elements,
    grid_stride,
};

pub(crate) const SHADERS: Typed = super::typed!(
    "batchnorm",
    Params,
    "workgroup.wgsl",
    "grid.wgsl",
    "batchnorm.wgsl"
);

/// The activations a batch norm sees: [batch, channels, pixels] (pixels = h·w), and
/// their type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormShape {
    pub batch: u32,
    pub channels: u32,
    pub pixels: u32,
    /// The type of x, y, dy and dx.
    pub dtype: Dtype,
}

impl BatchNormShape {
    /// f32 activations [batch, channels, pixels].
    pub fn new(batch: u32, channels: u32, pixels: u32) -> BatchNormShape {
        BatchNormShape {
            batch,
            channels,
            pixels,
            dtype: Dtype::F32,
        }
    }

    pub fn len(&self) -> u64 {
        self.batch as u64 * self.channels as u64 * self.pixels as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(
        &self,
        op: &'static str,
        gpu: &Gpu,
        full: &[&wgpu::Buffer],
        per_channel: &[&wgpu::Buffer],
    ) -> Result<()> {
        require(gpu, op, self.dtype)?;
        check_nonempty(
            op,
            &[
                ("batch", self.batch),
                ("channels", self.channels),
                ("pixels", self.pixels),
            ],
        )?;
        let len = elements(op, &[self.batch, self.channels, self.pixels])?;
        for b in full {
            check_len_of(op, "[batch, channels, pixels]", b, len, self.dtype)?;
        }
        for b in per_channel {
            check_len(op, "[channels]", b, self.channels as u64)?;
        }
        Ok(())
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    channels: u32,
    pixels: u32,
    eps: f32,
    momentum: f32,
    accumulate: u32,
    blocks: u32,
    block_len: u32,
}

/// Statistics options: `eps` under the square root, `momentum` of the running averages,
/// and how the per-channel sums are split over workgroups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    pub eps: f32,
    pub momentum: f32,
    /// Elements of a channel each workgroup reduces in the split path; a channel that fits
    /// one block gets one workgroup (`Some(u32::MAX)` forces that path). `None` picks: one
    /// workgroup per channel on CPU adapters, blocks of [`SPLIT_BLOCK`] on GPUs.
    pub block: Option<u32>,
}

/// Elements of a channel per workgroup when the reductions are split on a GPU.
pub const SPLIT_BLOCK: u32 = 4096;

impl Default for BatchNormConfig {
    /// The frameworks' defaults: eps 1e-5, momentum 0.1.
    fn default() -> BatchNormConfig {
        BatchNormConfig {
            eps: 1e-5,
            momentum: 0.1,
            block: None,
        }
    }
}

impl BatchNormConfig {
    fn validate(&self) -> Result<()> {
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(Error::Invalid {
                what: "batchnorm eps".into(),
                why: format!("{} is not a positive number", self.eps),
            });
        }
        if self.block == Some(0) {
            return Err(Error::Invalid {
                what: "batchnorm block".into(),
                why: "a block holds at least one element".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(Error::Invalid {
                what: "batchnorm momentum".into(),
                why: format!("{} is not in [0, 1]", self.momentum),
            });
        }
        Ok(())
    }

    /// (blocks per channel, elements per block) of the split path, or None for one
    /// workgroup per channel.
    fn split(&self, gpu: &Gpu, s: &BatchNormShape) -> Option<(u32, u32)> {
        let count = s.batch * s.pixels;
        let block = match self.block {
            Some(b) => b,
            None if gpu.is_software() => return None,
            None => SPLIT_BLOCK,
        };
        // A channel that fits one block is one workgroup's work either way.
        (count > block).then(|| (count.div_ceil(block), block))
    }

    /// The uniform; `accumulate`: the backward's flags (`accumulate_bits`), 0 forward.
    fn params(&self, gpu: &Gpu, s: &BatchNormShape, accumulate: u32) -> Params {
        let (blocks, block_len) = self.split(gpu, s).unwrap_or((1, s.batch * s.pixels));
        Params {
            batch: s.batch,
            channels: s.channels,
            pixels: s.pixels,
            eps: self.eps,
            momentum: self.momentum,
            accumulate,
            blocks,
            block_len,
        }
    }
}

/// Length (f32 elements) of the scratch buffer the training forward and the backward need
/// on `gpu` with `config` (partial sums of the split path; 1 when there is none).
pub fn batchnorm_scratch_len(gpu: &Gpu, shape: &BatchNormShape, config: &BatchNormConfig) -> usize {
    match config.split(gpu, shape) {
        Some((blocks, _)) => 2 * blocks as usize * shape.channels as usize,
        None => 1,
    }
}

/// A per-channel kernel (sized by the row workgroup, `WG`) of the module for `shape`.
fn per_channel_kernel<'a>(
    shape: &BatchNormShape,
    entry: &'static str,
    constants: &'a [(&'static str, f64)],
) -> Kernel<'a> {
    Kernel::with(SHADERS.get(shape.dtype), entry, constants)
}

/// An elementwise or per-channel-loop kernel of the module for `shape`.
fn kernel(shape: &BatchNormShape, entry: &'static str) -> Kernel<'static> {
    Kernel::new(SHADERS.get(shape.dtype), entry)
}

/// Training mode: y = (x − mean)·rstd·gamma + beta with the batch's per-channel mean and
/// rstd (saved for backward); running_mean and running_var move toward them.
/// y, x: [batch, channels, pixels]; mean, rstd, running_mean, running_var, gamma, beta:
/// [channels]; scratch: [`batchnorm_scratch_len`].
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    mean: &wgpu::Buffer,
    rstd: &wgpu::Buffer,
    running_mean: &wgpu::Buffer,
    running_var: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
    x: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
) -> Result<()> {
    const OP: &str = "batchnorm_train_forward";
    config.validate()?;
    shape.check(
        OP,
        gpu,
        &[y, x],
        &[mean, rstd, running_mean, running_var, gamma, beta],
    )?;
    let scratch_len = batchnorm_scratch_len(gpu, shape, config) as u64;
    check_len(OP, "scratch", scratch, scratch_len)?;
    let params = config.params(gpu, shape, 0);
    let constants = [("WG", gpu.row_workgroup_size() as f64)];
    let Some((blocks, _)) = config.split(gpu, shape) else {
        return gpu.dispatch(
            pass,
            &per_channel_kernel(shape, "batchnorm_train_forward", &constants),
            &params,
            &[y, mean, rstd, running_mean, running_var, x, gamma, beta],
            [shape.channels, 1, 1],
        );
    };
    gpu.dispatch(
        pass,
        &per_channel_kernel(shape, "batchnorm_partial_stats", &constants),
        &params,
        &[scratch, x],
        [blocks, shape.channels, 1],
    )?;
    gpu.dispatch(
        pass,
        &kernel(shape, "batchnorm_merge_stats"),
        &params,
        &[mean, rstd, running_mean, running_var, scratch],
        [shape.channels.div_ceil(64), 1, 1],
    )?;
    gpu.dispatch(
        pass,
        &kernel(shape, "batchnorm_apply"),
        &params,
        &[y, x, mean, rstd, gamma, beta],
        grid_stride(shape.len()),
    )
}

/// Eval mode: y = (x − running_mean)·rsqrt(running_var + eps)·gamma + beta.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_eval_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    running_mean: &wgpu::Buffer,
    running_var: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
) -> Result<()> {
    const OP: &str = "batchnorm_eval_forward";
    config.validate()?;
    shape.check(OP, gpu, &[y, x], &[running_mean, running_var, gamma, beta])?;
    gpu.dispatch(
        pass,
        &kernel(shape, "batchnorm_eval_forward"),
        &config.params(gpu, shape, 0),
        &[y, x, running_mean, running_var, gamma, beta],
        grid_stride(shape.len()),
    )
}

/// Training-mode backward: dx (+)= ∂L/∂x, dgamma (+)= Σ dy·x̂, dbeta (+)= Σ dy, each
/// written or added to as its [`Grad`] says, with the mean and rstd the forward saved;
/// scratch: [`batchnorm_scratch_len`].
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: Grad,
    dgamma: Grad,
    dbeta: Grad,
    scratch: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    saved: NormSaved,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
) -> Result<()> {
    const OP: &str = "batchnorm_backward";
    let flags = accumulate_bits(&[dx, dgamma, dbeta]);
    config.validate()?;
    let NormSaved {
        x,
        mean,
        rstd,
        gain: gamma,
    } = saved;
    let (dx, dgamma, dbeta) = (dx.buffer, dgamma.buffer, dbeta.buffer);
    shape.check(OP, gpu, &[dx, dy, x], &[dgamma, dbeta, mean, rstd, gamma])?;
    let scratch_len = batchnorm_scratch_len(gpu, shape, config) as u64;
    check_len(OP, "scratch", scratch, scratch_len)?;
    let params = config.params(gpu, shape, flags);
    let constants = [("WG", gpu.row_workgroup_size() as f64)];
    let Some((blocks, _)) = config.split(gpu, shape) else {
        return gpu.dispatch(
            pass,
            &per_channel_kernel(shape, "batchnorm_backward", &constants),
            &params,
            &[dx, dgamma, dbeta, dy, x, mean, rstd, gamma],
            [shape.channels, 1, 1],
        );
    };
    gpu.dispatch_bound(
        pass,
        &per_channel_kernel(shape, "batchnorm_backward_partial", &constants),
        &params,
        &[(1, scratch), (2, dy), (3, x), (4, mean), (5, rstd)],
        [blocks, shape.channels, 1],
    )?;
    gpu.dispatch(
        pass,
        &kernel(shape, "batchnorm_backward_sums"),
        &params,
        &[dgamma, dbeta, scratch],
        [shape.channels.div_ceil(64), 1, 1],
    )?;
    gpu.dispatch(
        pass,
        &kernel(shape, "batchnorm_backward_apply"),
        &params,
        &[dx, dy, x, mean, rstd, gamma, scratch],
        grid_stride(shape.len()),
    )
}
