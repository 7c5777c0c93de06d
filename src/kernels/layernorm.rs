//! Launchers for `shaders/layernorm.wgsl`: LayerNorm over rows with gain and bias, and its backward.
//! x, y, dy and dx are f32 or f16 activations (`LayerNormShape::dtype`); gain, bias, their
//! gradients and the saved statistics are always f32.

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result};

use super::precision::{check_len_of, require};
use super::{
    Dtype, Grad, NormSaved, Typed, accumulate_bits, check_len, check_nonempty, dispatch_rows,
    elements,
};

pub(crate) const SHADERS: Typed =
    super::typed!("layernorm", Params, "workgroup.wgsl", "layernorm.wgsl");

/// Rows summed by one invocation in the first stage of the gain/bias gradient (the
/// shader's `ROW_BLOCK`).
const ROW_BLOCK: u32 = 64;

/// Length (f32 elements) of the scratch buffer `layernorm_backward` needs: the partial
/// gain and bias sums of each block of 64 rows.
pub fn layernorm_scratch_len(rows: u32, cols: u32) -> usize {
    2 * rows.div_ceil(ROW_BLOCK) as usize * cols as usize
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    accumulate: u32,
    blocks: u32,
    _pad: [u32; 3],
}

/// Errors unless the device takes the shape's type, and the activations (`full`, of that
/// type), statistics and column vectors (f32) are long enough.
fn check(
    op: &'static str,
    gpu: &Gpu,
    shape: LayerNormShape,
    full: &[&wgpu::Buffer],
    per_row: &[&wgpu::Buffer],
    per_col: &[&wgpu::Buffer],
) -> Result<()> {
    let LayerNormShape { rows, cols, dtype } = shape;
    require(gpu, op, dtype)?;
    check_nonempty(op, &[("rows", rows), ("cols", cols)])?;
    let len = elements(op, &[rows, cols])?;
    for b in full {
        check_len_of(op, "[rows, cols]", b, len, dtype)?;
    }
    for b in per_row {
        check_len(op, "[rows]", b, rows as u64)?;
    }
    for b in per_col {
        check_len(op, "[cols]", b, cols as u64)?;
    }
    Ok(())
}

/// Rows normalised, their length, and the activations' type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerNormShape {
    pub rows: u32,
    pub cols: u32,
    /// The type of x, y, dy and dx.
    pub dtype: Dtype,
}

/// y = (x − mean)·rstd·gain + bias per row, saving mean and rstd.
/// y, x: [rows, cols]; mean, rstd: [rows]; gain, bias: [cols]
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    mean: &wgpu::Buffer,
    rstd: &wgpu::Buffer,
    x: &wgpu::Buffer,
    gain: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    shape: LayerNormShape,
    eps: f32,
) -> Result<()> {
    const OP: &str = "layernorm_forward";
    let LayerNormShape { rows, cols, dtype } = shape;
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::Invalid {
            what: "layernorm eps".into(),
            why: format!("{eps} is not a positive number"),
        });
    }
    check(OP, gpu, shape, &[y, x], &[mean, rstd], &[gain, bias])?;
    let params = Params {
        rows,
        cols,
        eps,
        ..Default::default()
    };
    dispatch_rows(
        gpu,
        pass,
        SHADERS.get(dtype),
        OP,
        &params,
        &[y, mean, rstd, x, gain, bias],
        rows,
    )
}

/// Backward: dx (+)= ∂L/∂x, dgain (+)= Σ_rows dy·x̂, dbias (+)= Σ_rows dy, each written or
/// added to as its [`Grad`] says.
/// dx, dy, x: [rows, cols]; mean, rstd: [rows]; dgain, dbias, gain: [cols];
/// scratch: [`layernorm_scratch_len`] floats.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: Grad,
    dgain: Grad,
    dbias: Grad,
    scratch: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    saved: NormSaved,
    shape: LayerNormShape,
) -> Result<()> {
    const OP: &str = "layernorm_backward";
    let LayerNormShape { rows, cols, dtype } = shape;
    let NormSaved {
        x,
        mean,
        rstd,
        gain,
    } = saved;
    let (dxb, dgb, dbb) = (dx.buffer, dgain.buffer, dbias.buffer);
    check(
        OP,
        gpu,
        shape,
        &[dxb, dy, x],
        &[mean, rstd],
        &[dgb, dbb, gain],
    )?;
    let scratch_len = layernorm_scratch_len(rows, cols) as u64;
    check_len(OP, "scratch", scratch, scratch_len)?;
    let blocks = rows.div_ceil(ROW_BLOCK);
    let params = Params {
        rows,
        cols,
        accumulate: accumulate_bits(&[dx, dgain, dbias]),
        blocks,
        ..Default::default()
    };
    let input = [dxb, dy, x, mean, rstd, gain];
    let shader = SHADERS.get(dtype);
    dispatch_rows(
        gpu,
        pass,
        shader,
        "layernorm_backward_input",
        &params,
        &input,
        rows,
    )?;
    gpu.dispatch(
        pass,
        &Kernel::new(shader, "layernorm_backward_params_partial"),
        &params,
        &[scratch, dy, x, mean, rstd],
        [cols.div_ceil(64), blocks, 1],
    )?;
    gpu.dispatch(
        pass,
        &Kernel::new(shader, "layernorm_backward_params_finish"),
        &params,
        &[dgb, dbb, scratch],
        [cols.div_ceil(64), 1, 1],
    )
}
