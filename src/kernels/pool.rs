//! Launchers for `shaders/pool.wgsl`: global average pooling of NCHW activations and its
//! backward.

use crate::gpu::{Gpu, Kernel, Recorder, Result, Shader};

use super::{check_len, check_nonempty, elements, grid_stride};

pub(crate) const SHADER: Shader = Shader {
    name: "pool",
    wgsl: super::wgsl!("grid.wgsl", "pool.wgsl"),
    uniform_bytes: std::mem::size_of::<Params>(),
};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    pixels: u32,
    accumulate: u32,
    _pad: u32,
}

fn check(
    op: &'static str,
    rows: u32,
    pixels: u32,
    images: &wgpu::Buffer,
    means: &wgpu::Buffer,
) -> Result<()> {
    check_nonempty(op, &[("batch·channels", rows), ("pixels", pixels)])?;
    let len = elements(op, &[rows, pixels])?;
    check_len(op, "[batch·channels, pixels]", images, len)?;
    check_len(op, "[batch·channels]", means, rows as u64)
}

/// y[r] = mean of x[r, ..]. y: [rows] (rows = batch·channels); x: [rows, pixels].
pub fn global_avg_pool_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    rows: u32,
    pixels: u32,
) -> Result<()> {
    check("global_avg_pool_forward", rows, pixels, x, y)?;
    let params = Params {
        rows,
        pixels,
        ..Default::default()
    };
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, "global_avg_pool_forward"),
        &params,
        &[y, x],
        grid_stride(rows as u64),
    )
}

/// dx[r, i] (+)= dy[r] / pixels. dx: [rows, pixels]; dy: [rows].
pub fn global_avg_pool_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    rows: u32,
    pixels: u32,
    accumulate: bool,
) -> Result<()> {
    check("global_avg_pool_backward", rows, pixels, dx, dy)?;
    let params = Params {
        rows,
        pixels,
        accumulate: accumulate as u32,
        ..Default::default()
    };
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, "global_avg_pool_backward"),
        &params,
        &[dx, dy],
        grid_stride(rows as u64 * pixels as u64),
    )
}
