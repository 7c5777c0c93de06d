//! Launchers for `shaders/dropout.wgsl`: dropout drawn from a counter-based random stream
//! (no mask stored), forward and backward. A mask is a function of the site (which dropout
//! of the model, and the run's seed: in the uniform) and of the step (a one-element buffer
//! written once a step, so a training loop keeps its uniforms and bind groups).

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Work};

use super::precision::{check_len_of, require};
use super::{Dtype, Grad, Typed, check_len, check_nonempty, grid_stride};

pub(crate) const SHADERS: Typed = super::typed!("dropout", Params, "grid.wgsl", "dropout.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    threshold: u32,
    site: u32,
    accumulate: u32,
    scale: f32,
    _pad: [u32; 3],
}

/// Which elements one dropout drops: each with probability `p` in [0, 1), drawn from the
/// stream of its `site` ([`Mask::site_key`]) and of the step (the `step` buffer of the
/// launchers, holding [`Mask::step_key`]); the same keys give the same mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask {
    pub p: f32,
    pub site: u32,
}

/// SplitMix64's finaliser: a well-mixed 64-bit function of `z`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Mask {
    /// The stream of dropout site `site` of a run seeded with `seed`.
    pub fn site_key(seed: u64, site: u32) -> u32 {
        (mix(mix(seed) ^ site as u64) >> 32) as u32
    }

    /// The stream of step `step` (what the launchers' `step` buffer holds).
    pub fn step_key(step: u64) -> u32 {
        (mix(step ^ 0x5851_f42d_4c95_7f2d) >> 32) as u32
    }

    /// The draw below which an element is dropped: p·2³².
    pub fn threshold(&self) -> u32 {
        (self.p as f64 * 4_294_967_296.0).min(u32::MAX as f64) as u32
    }

    fn params(&self, op: &'static str, n: u32, accumulate: bool) -> Result<Params> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(Error::Invalid {
                what: format!("{op}: dropout probability"),
                why: format!("{} is not in [0, 1)", self.p),
            });
        }
        Ok(Params {
            n,
            threshold: self.threshold(),
            site: self.site,
            accumulate: accumulate as u32,
            scale: 1.0 / (1.0 - self.p),
            ..Default::default()
        })
    }
}

fn launch(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    entry: &'static str,
    [out, x, step]: [&wgpu::Buffer; 3],
    params: &Params,
    dtype: Dtype,
) -> Result<()> {
    require(gpu, entry, dtype)?;
    check_nonempty(entry, &[("n", params.n)])?;
    check_len_of(entry, "out [n]", out, params.n as u64, dtype)?;
    check_len_of(entry, "x [n]", x, params.n as u64, dtype)?;
    check_len(entry, "step [1]", step, 1)?;
    let bytes = (2 + params.accumulate as u64) * dtype.bytes() * params.n as u64;
    gpu.dispatch(
        pass,
        &Kernel::new(SHADERS.get(dtype), entry).work(Work::Bytes(bytes as f64)),
        params,
        &[out, x, step],
        grid_stride(params.n as u64),
    )
}

/// y = x · keep / (1 − p), keep drawn from `mask` and the step key in `step`;
/// y, x: [n] of `dtype`; step: [1] u32
#[allow(clippy::too_many_arguments)]
pub fn dropout_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    step: &wgpu::Buffer,
    n: u32,
    mask: Mask,
    dtype: Dtype,
) -> Result<()> {
    let params = mask.params("dropout_forward", n, false)?;
    launch(gpu, pass, "dropout_forward", [y, x, step], &params, dtype)
}

/// dx (+)= dy · keep / (1 − p), the mask the forward drew with the same `mask` and `step`;
/// dx, dy: [n] of `dtype`; step: [1] u32
#[allow(clippy::too_many_arguments)]
pub fn dropout_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: Grad,
    dy: &wgpu::Buffer,
    step: &wgpu::Buffer,
    n: u32,
    mask: Mask,
    dtype: Dtype,
) -> Result<()> {
    let params = mask.params("dropout_backward", n, dx.accumulate)?;
    let buffers = [dx.buffer, dy, step];
    launch(gpu, pass, "dropout_backward", buffers, &params, dtype)
}
