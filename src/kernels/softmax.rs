//! Launchers for `shaders/softmax.wgsl`: stable softmax over rows and its backward.
//! Every buffer is `dtype`: f32, or f16 activations (the statistics stay f32 in the kernel).

use crate::gpu::{Gpu, Recorder, Result};

use super::precision::{check_len_of, require};
use super::{Dtype, Typed, check_nonempty, dispatch_rows, elements};

pub(crate) const SHADERS: Typed =
    super::typed!("softmax", Params, "workgroup.wgsl", "softmax.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    causal: u32,
    scale: f32,
    _pad: [u32; 3],
}

/// What softmax does to its rows besides normalising them.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Form {
    scale: f32,
    causal: bool,
}

const PLAIN: Form = Form {
    scale: 1.0,
    causal: false,
};

#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    entry: &'static str,
    buffers: &[&wgpu::Buffer],
    rows: u32,
    cols: u32,
    accumulate: bool,
    form: Form,
    dtype: Dtype,
) -> Result<()> {
    require(gpu, entry, dtype)?;
    check_nonempty(entry, &[("rows", rows), ("cols", cols)])?;
    let len = elements(entry, &[rows, cols])?;
    for b in buffers {
        check_len_of(entry, "[rows, cols]", b, len, dtype)?;
    }
    if !(form.scale.is_finite() && form.scale > 0.0) {
        return Err(crate::gpu::Error::Invalid {
            what: "softmax scale".into(),
            why: format!("{} is not a positive number", form.scale),
        });
    }
    let params = Params {
        rows,
        cols,
        accumulate: accumulate as u32,
        causal: form.causal as u32,
        scale: form.scale,
        _pad: [0; 3],
    };
    dispatch_rows(gpu, pass, SHADERS.get(dtype), entry, &params, buffers, rows)
}

/// y = softmax(x) over each row; y, x: [rows, cols]
pub fn softmax_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    dtype: Dtype,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "softmax_forward",
        &[y, x],
        rows,
        cols,
        false,
        PLAIN,
        dtype,
    )
}

/// dx (+)= y ⊙ (dy − Σ_row dy·y); dx, y, dy: [rows, cols]
#[allow(clippy::too_many_arguments)]
pub fn softmax_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: &wgpu::Buffer,
    y: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    accumulate: bool,
    dtype: Dtype,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "softmax_backward",
        &[dx, y, dy],
        rows,
        cols,
        accumulate,
        PLAIN,
        dtype,
    )
}

/// Causal attention probabilities from materialised scores: y = softmax(scale·x) over
/// each row of a stack of [t, t] score matrices, row r keeping columns 0 ..= r % t.
/// y, x: [heads · t, t]
#[allow(clippy::too_many_arguments)]
pub fn softmax_causal_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    rows: u32,
    t: u32,
    scale: f32,
    dtype: Dtype,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "softmax_forward",
        &[y, x],
        rows,
        t,
        false,
        Form {
            scale,
            causal: true,
        },
        dtype,
    )
}

/// Backward of `softmax_causal_forward`: dx (+)= scale · y ⊙ (dy − Σ_row dy·y).
#[allow(clippy::too_many_arguments)]
pub fn softmax_causal_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: &wgpu::Buffer,
    y: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    rows: u32,
    t: u32,
    scale: f32,
    accumulate: bool,
    dtype: Dtype,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "softmax_backward",
        &[dx, y, dy],
        rows,
        t,
        accumulate,
        Form {
            scale,
            causal: true,
        },
        dtype,
    )
}
