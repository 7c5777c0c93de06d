//! Launchers for `shaders/softmax.wgsl`: stable softmax over rows and its backward.

use crate::gpu::{Gpu, Result, Shader};

use super::{check_len, check_nonempty, dispatch_rows, elements};

const SHADER: Shader = Shader {
    name: "softmax",
    wgsl: include_str!("../../shaders/softmax.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    _pad: u32,
}

fn launch(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    entry: &'static str,
    buffers: &[&wgpu::Buffer],
    rows: u32,
    cols: u32,
    accumulate: bool,
) -> Result<()> {
    check_nonempty(entry, &[("rows", rows), ("cols", cols)])?;
    let len = elements(entry, &[rows, cols])?;
    for b in buffers {
        check_len(entry, "[rows, cols]", b, len)?;
    }
    let params = Params {
        rows,
        cols,
        accumulate: accumulate as u32,
        _pad: 0,
    };
    dispatch_rows(gpu, pass, SHADER, entry, &params, buffers, rows)
}

/// y = softmax(x) over each row; y, x: [rows, cols]
pub fn softmax_forward(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    rows: u32,
    cols: u32,
) -> Result<()> {
    launch(gpu, pass, "softmax_forward", &[y, x], rows, cols, false)
}

/// dx (+)= y ⊙ (dy − Σ_row dy·y); dx, y, dy: [rows, cols]
#[allow(clippy::too_many_arguments)]
pub fn softmax_backward(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    dx: &wgpu::Buffer,
    y: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    accumulate: bool,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "softmax_backward",
        &[dx, y, dy],
        rows,
        cols,
        accumulate,
    )
}
