//! Launchers for `shaders/cast.wgsl`: f32 ↔ f16 buffer conversions, with a scale factor
//! (mixed precision's f16 weight copies, and reading f16 activations back as f32).

use crate::gpu::{Gpu, Kernel, Recorder, Result, Shader, Work};

use super::precision::{Dtype, check_len_of, require};
use super::{check_nonempty, grid_stride};

pub(crate) const SHADER: Shader = Shader {
    name: "cast",
    wgsl: super::wgsl!("cast.wgsl", "grid.wgsl"),
    uniform_bytes: std::mem::size_of::<Params>(),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    scale: f32,
    _pad: [u32; 2],
}

/// Records `entry` over `n` elements, out = scale · x converted to `to`.
fn launch(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    entry: &'static str,
    (out, to): (&wgpu::Buffer, Dtype),
    (x, from): (&wgpu::Buffer, Dtype),
    n: u32,
    scale: f32,
) -> Result<()> {
    require(gpu, entry, Dtype::F16)?;
    check_nonempty(entry, &[("n", n)])?;
    if !scale.is_finite() {
        return Err(crate::gpu::Error::Invalid {
            what: format!("{entry} scale"),
            why: format!("{scale} is not a finite number"),
        });
    }
    check_len_of(entry, "out", out, n as u64, to)?;
    check_len_of(entry, "x", x, n as u64, from)?;
    let params = Params {
        n,
        scale,
        _pad: [0; 2],
    };
    let bytes = n as f64 * (to.bytes() + from.bytes()) as f64;
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, entry).work(Work::Bytes(bytes)),
        &params,
        &[out, x],
        grid_stride(n as u64),
    )
}

/// out = f16(scale · x), rounded to nearest even; beyond f16's range ±inf.
/// out: [n] f16; x: [n] f32. Needs `SHADER_F16`.
pub fn to_f16(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    x: &wgpu::Buffer,
    n: u32,
    scale: f32,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "to_f16",
        (out, Dtype::F16),
        (x, Dtype::F32),
        n,
        scale,
    )
}

/// out = scale · x. out: [n] f32; x: [n] f16. Needs `SHADER_F16`.
pub fn to_f32(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    x: &wgpu::Buffer,
    n: u32,
    scale: f32,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "to_f32",
        (out, Dtype::F32),
        (x, Dtype::F16),
        n,
        scale,
    )
}
