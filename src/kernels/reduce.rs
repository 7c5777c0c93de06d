//! Launchers for `shaders/reduce.wgsl`: sums and sums of squares, per row and whole tensor.

use crate::gpu::{Gpu, Kernel, Recorder, Result, Shader};

use super::{check_len, check_nonempty, dispatch_rows, elements};

pub(crate) const SHADER: Shader = Shader {
    name: "reduce",
    wgsl: super::wgsl!("workgroup.wgsl", "reduce.wgsl"),
    uniform_bytes: std::mem::size_of::<Params>(),
};

/// Length (f32 elements) of the scratch buffer `sum_all` needs for its partial sums.
pub const REDUCE_SCRATCH_LEN: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    n: u32,
    square: u32,
    groups: u32,
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
}

/// out[r] (+)= Σ_c x[r, c] (or x², when `square`); out: [rows]; x: [rows, cols]
#[allow(clippy::too_many_arguments)]
pub fn sum_rows(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    x: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    square: bool,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "sum_rows";
    check_nonempty(OP, &[("rows", rows), ("cols", cols)])?;
    check_len(OP, "x [rows, cols]", x, elements(OP, &[rows, cols])?)?;
    check_len(OP, "out [rows]", out, rows as u64)?;
    let params = Params {
        rows,
        cols,
        square: square as u32,
        accumulate: accumulate as u32,
        ..Default::default()
    };
    dispatch_rows(gpu, pass, SHADER, OP, &params, &[out, x], rows)
}

/// out[0] (+)= Σ x (or x², when `square`), in two stages through `scratch`
/// ([`REDUCE_SCRATCH_LEN`] floats). out: [1]; x: [n]
#[allow(clippy::too_many_arguments)]
pub fn sum_all(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
    x: &wgpu::Buffer,
    n: u32,
    square: bool,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "sum_all";
    check_nonempty(OP, &[("n", n)])?;
    check_len(OP, "x [n]", x, n as u64)?;
    check_len(OP, "out [1]", out, 1)?;
    check_len(OP, "scratch", scratch, REDUCE_SCRATCH_LEN as u64)?;
    // At least 8 elements an invocation: every workgroup pays for a tree of barriers.
    let groups = (n as u64).div_ceil(256 * 8).min(REDUCE_SCRATCH_LEN as u64) as u32;
    let params = Params {
        n,
        square: square as u32,
        groups,
        accumulate: accumulate as u32,
        ..Default::default()
    };
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, "sum_partial"),
        &params,
        &[scratch, x],
        [groups, 1, 1],
    )?;
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, "sum_finish"),
        &params,
        &[out, scratch],
        [1, 1, 1],
    )
}
