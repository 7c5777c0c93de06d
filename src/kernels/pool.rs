//! Launchers for `shaders/pool.wgsl`: global average pooling of NCHW activations and its
//! backward, on f32 or f16 activations (the trailing `Dtype`; the sums are f32).

use crate::gpu::{Gpu, Kernel, Recorder, Result};

use super::precision::{check_len_of, require};
use super::{Dtype, Typed, check_nonempty, elements, grid_stride};

pub(crate) const SHADERS: Typed = super::typed!("pool", Params, "grid.wgsl", "pool.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    pixels: u32,
    accumulate: u32,
    _pad: u32,
}

/// Errors unless the device takes `dtype`, and the images and means (both of `dtype`)
/// hold [rows, pixels] and [rows].
fn check(
    op: &'static str,
    gpu: &Gpu,
    [rows, pixels]: [u32; 2],
    [images, means]: [&wgpu::Buffer; 2],
    dtype: Dtype,
) -> Result<()> {
    require(gpu, op, dtype)?;
    check_nonempty(op, &[("batch·channels", rows), ("pixels", pixels)])?;
    let len = elements(op, &[rows, pixels])?;
    check_len_of(op, "[batch·channels, pixels]", images, len, dtype)?;
    check_len_of(op, "[batch·channels]", means, rows as u64, dtype)
}

/// y[r] = mean of x[r, ..]. y: [rows] (rows = batch·channels); x: [rows, pixels].
pub fn global_avg_pool_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    rows: u32,
    pixels: u32,
    dtype: Dtype,
) -> Result<()> {
    const OP: &str = "global_avg_pool_forward";
    check(OP, gpu, [rows, pixels], [x, y], dtype)?;
    let params = Params {
        rows,
        pixels,
        ..Default::default()
    };
    gpu.dispatch(
        pass,
        &Kernel::new(SHADERS.get(dtype), OP),
        &params,
        &[y, x],
        grid_stride(rows as u64),
    )
}

/// dx[r, i] (+)= dy[r] / pixels. dx: [rows, pixels]; dy: [rows].
#[allow(clippy::too_many_arguments)]
pub fn global_avg_pool_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    rows: u32,
    pixels: u32,
    accumulate: bool,
    dtype: Dtype,
) -> Result<()> {
    const OP: &str = "global_avg_pool_backward";
    check(OP, gpu, [rows, pixels], [dx, dy], dtype)?;
    let params = Params {
        rows,
        pixels,
        accumulate: accumulate as u32,
        ..Default::default()
    };
    gpu.dispatch(
        pass,
        &Kernel::new(SHADERS.get(dtype), OP),
        &params,
        &[dx, dy],
        grid_stride(rows as u64 * pixels as u64),
    )
}
