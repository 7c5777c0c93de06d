//! Launchers for `shaders/elementwise.wgsl`: add, scale, relu, gelu (with backwards), fill, copy.
//! Each takes the `Dtype` of its buffers (all of one type: f32, or f16 activations with
//! f32 arithmetic).

use crate::gpu::{Gpu, Kernel, Recorder, Result, Work};

use super::precision::{check_len_of, require};
use super::{Dtype, Typed, check_nonempty, grid_stride};

pub(crate) const SHADERS: Typed = super::typed!(
    "elementwise",
    Params,
    "grid.wgsl",
    "activation.wgsl",
    "elementwise.wgsl"
);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    accumulate: u32,
    scalar: f32,
    _pad: u32,
}

/// Records `entry` over `n` elements: out (+)= f(a, b).
#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    entry: &'static str,
    out: &wgpu::Buffer,
    inputs: &[&wgpu::Buffer],
    n: u32,
    scalar: f32,
    accumulate: bool,
    dtype: Dtype,
) -> Result<()> {
    require(gpu, entry, dtype)?;
    check_nonempty(entry, &[("n", n)])?;
    check_len_of(entry, "out", out, n as u64, dtype)?;
    for input in inputs {
        check_len_of(entry, "input", input, n as u64, dtype)?;
    }
    let params = Params {
        n,
        accumulate: accumulate as u32,
        scalar,
        _pad: 0,
    };
    let mut buffers = vec![out];
    buffers.extend_from_slice(inputs);
    let items = if entry.ends_with("_vec4") { n / 4 } else { n };
    // Reads every input (and the output when accumulating), writes the output.
    let streams = inputs.len() + 1 + accumulate as usize;
    let bytes = streams as f64 * n as f64 * dtype.bytes() as f64;
    gpu.dispatch(
        pass,
        &Kernel::new(SHADERS.get(dtype), entry).work(Work::Bytes(bytes)),
        &params,
        &buffers,
        grid_stride(items as u64),
    )
}

/// out (+)= a + b; a, b, out: [n]
#[allow(clippy::too_many_arguments)]
pub fn add(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    n: u32,
    accumulate: bool,
    dtype: Dtype,
) -> Result<()> {
    launch(gpu, pass, "add", out, &[a, b], n, 0.0, accumulate, dtype)
}

/// out (+)= s · a; a, out: [n]. Also the backward of scale (with the same s).
#[allow(clippy::too_many_arguments)]
pub fn scale(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    a: &wgpu::Buffer,
    s: f32,
    n: u32,
    accumulate: bool,
    dtype: Dtype,
) -> Result<()> {
    launch(gpu, pass, "scale", out, &[a], n, s, accumulate, dtype)
}

/// out = max(x, 0); x, out: [n]
pub fn relu(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    x: &wgpu::Buffer,
    n: u32,
    dtype: Dtype,
) -> Result<()> {
    launch(gpu, pass, "relu", out, &[x], n, 0.0, false, dtype)
}

/// dx (+)= dy · [x > 0]; dx, dy, x: [n]
#[allow(clippy::too_many_arguments)]
pub fn relu_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    n: u32,
    accumulate: bool,
    dtype: Dtype,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "relu_backward",
        dx,
        &[dy, x],
        n,
        0.0,
        accumulate,
        dtype,
    )
}

/// out = gelu(x), tanh form; x, out: [n]
pub fn gelu(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    x: &wgpu::Buffer,
    n: u32,
    dtype: Dtype,
) -> Result<()> {
    launch(gpu, pass, "gelu", out, &[x], n, 0.0, false, dtype)
}

/// dx (+)= dy · gelu'(x); dx, dy, x: [n]
#[allow(clippy::too_many_arguments)]
pub fn gelu_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    n: u32,
    accumulate: bool,
    dtype: Dtype,
) -> Result<()> {
    launch(
        gpu,
        pass,
        "gelu_backward",
        dx,
        &[dy, x],
        n,
        0.0,
        accumulate,
        dtype,
    )
}

/// out = value; out: [n]
pub fn fill(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    value: f32,
    n: u32,
    dtype: Dtype,
) -> Result<()> {
    launch(gpu, pass, "fill", out, &[], n, value, false, dtype)
}

/// out = a; a, out: [n]. The plain copy kernel, one float an iteration: the reference of
/// memory-bound benchmarks.
pub fn copy(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    a: &wgpu::Buffer,
    n: u32,
    dtype: Dtype,
) -> Result<()> {
    launch(gpu, pass, "copy", out, &[a], n, 0.0, false, dtype)
}

/// out = a, four floats an iteration; a, out: [n], n a multiple of 4. The ceiling for
/// memory-bound kernels: software Vulkan moves vec4s that are not computed on much faster.
pub fn copy_vec4(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    a: &wgpu::Buffer,
    n: u32,
    dtype: Dtype,
) -> Result<()> {
    if n % 4 != 0 {
        return Err(crate::gpu::Error::Unsupported {
            op: "copy",
            variant: "vec4".into(),
            why: format!("n = {n} is not a multiple of 4"),
        });
    }
    launch(gpu, pass, "copy_vec4", out, &[a], n, 0.0, false, dtype)
}
