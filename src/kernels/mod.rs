//! The embeddable layer: one module per shader file, each with its typed uniform and its
//! launcher functions. A launcher takes `&Gpu` (which may wrap another program's device,
//! see [`Gpu::from_device`](crate::gpu::Gpu::from_device)), the compute pass to record
//! into, output buffers first, then inputs, then dimensions. The caller owns every
//! buffer; shapes and device limits are checked before anything is recorded.

pub mod attention;
pub mod attention_tiled;
pub mod attention_tune;
pub mod autotune;
pub mod batchnorm;
pub mod bias;
pub mod cast;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod heads;
pub mod layernorm;
pub mod loss_scale;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod precision;
pub mod reduce;
pub mod rezero;
pub mod shortcut;
pub mod softmax;

pub use precision::Dtype;

use crate::gpu::{Error, Recorder, Result, Shader};

/// A shader's source: the named files of `shaders/`, preludes first (`workgroup.wgsl`:
/// the workgroup reductions and the accumulate rule of the row and reduction shaders;
/// `grid.wgsl`: the grid-stride loop). For the kernel modules, at any depth.
macro_rules! wgsl {
    ($($file:literal),+) => {
        concat!($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file))),+)
    };
}
pub(crate) use wgsl;

/// A family built twice from the same sources: on f32 activations (`elem_f32.wgsl` first)
/// and on f16 ones (`elem_f16_out16.wgsl`: `Operand` and `Out` are f16), under its own
/// name. Parameters, statistics, losses and α stay f32 in both: those bindings say `f32`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Typed {
    pub f32: Shader,
    pub f16: Shader,
}

impl Typed {
    /// The module whose activations are `dtype`.
    pub fn get(self, dtype: Dtype) -> Shader {
        match dtype {
            Dtype::F32 => self.f32,
            Dtype::F16 => self.f16,
        }
    }
}

/// The [`Typed`] pair of the family `$name` with uniform `$params`, built from `$file`s
/// after each element prelude.
macro_rules! typed {
    ($name:literal, $params:ty, $($file:literal),+) => {
        $crate::kernels::Typed {
            f32: $crate::gpu::Shader::new(
                $name,
                $crate::kernels::wgsl!("elem_f32.wgsl", $($file),+),
                std::mem::size_of::<$params>(),
            ),
            f16: $crate::gpu::Shader::new(
                concat!($name, "_f16"),
                $crate::kernels::wgsl!("elem_f16_out16.wgsl", $($file),+),
                std::mem::size_of::<$params>(),
            ),
        }
    };
}
pub(crate) use typed;

/// A gradient a backward launcher writes: its buffer, and whether the kernel adds to what
/// is there (`+=`: a parameter's gradient, or an activation that feeds a second op) or
/// overwrites it (`=`). Every backward launcher takes one for each gradient it writes, so
/// the caller's rule alone decides.
#[derive(Clone, Copy, Debug)]
pub struct Grad<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub accumulate: bool,
}

impl<'a> Grad<'a> {
    /// Overwrite `buffer` with the gradient.
    pub fn write(buffer: &'a wgpu::Buffer) -> Grad<'a> {
        Grad {
            buffer,
            accumulate: false,
        }
    }

    /// Add the gradient to what `buffer` holds.
    pub fn add(buffer: &'a wgpu::Buffer) -> Grad<'a> {
        Grad {
            buffer,
            accumulate: true,
        }
    }

    pub fn new(buffer: &'a wgpu::Buffer, accumulate: bool) -> Grad<'a> {
        Grad { buffer, accumulate }
    }
}

/// What a normalisation's backward reads: the forward's input, the mean and 1/std it saved
/// (per row for LayerNorm, per channel for BatchNorm), and the gain (γ).
#[derive(Clone, Copy, Debug)]
pub struct NormSaved<'a> {
    pub x: &'a wgpu::Buffer,
    pub mean: &'a wgpu::Buffer,
    pub rstd: &'a wgpu::Buffer,
    pub gain: &'a wgpu::Buffer,
}

/// The shaders' accumulate flags for `grads`: bit i set when the i-th adds.
pub(crate) fn accumulate_bits(grads: &[Grad]) -> u32 {
    grads
        .iter()
        .enumerate()
        .map(|(i, g)| (g.accumulate as u32) << i)
        .sum()
}

/// Every shader the launchers build from: its family name and full WGSL source (with the
/// tile prelude, for the shaders that include it). `tests/shaders_validate.rs` checks them.
pub fn shaders() -> Vec<Shader> {
    vec![
        cast::SHADER,
        heads::SHADER,
        loss_scale::SHADER,
        optim::SHADER,
        reduce::SHADER,
        crate::gpu::SUBGROUP_PROBE,
    ]
    .into_iter()
    .chain(
        [
            attention::SHADERS,
            attention_tiled::SHADERS,
            attention_tiled::SUBGROUP_SHADERS,
            batchnorm::SHADERS,
            bias::SHADERS,
            cross_entropy::SHADERS,
            dropout::SHADERS,
            embedding::SHADERS,
            elementwise::SHADERS,
            layernorm::SHADERS,
            pool::SHADERS,
            rezero::SHADERS,
            shortcut::SHADERS,
            softmax::SHADERS,
        ]
        .into_iter()
        .flat_map(|typed| [typed.f32, typed.f16]),
    )
    .chain(matmul::SHADERS)
    .chain(conv2d::SHADERS)
    .collect()
}

/// Errors unless `buffer` holds at least `len` 4-byte elements.
pub(crate) fn check_len(
    op: &'static str,
    what: &str,
    buffer: &wgpu::Buffer,
    len: u64,
) -> Result<()> {
    precision::check_len_of(op, what, buffer, len, Dtype::F32)
}

/// Errors if any named dimension is zero.
pub(crate) fn check_nonempty(op: &'static str, dims: &[(&str, u32)]) -> Result<()> {
    for &(name, value) in dims {
        if value == 0 {
            return Err(Error::Empty {
                op,
                what: format!("dimension {name}"),
            });
        }
    }
    Ok(())
}

/// `a · b` as u64, erroring if the element count overflows what a u32 index can reach.
pub(crate) fn elements(op: &'static str, dims: &[u32]) -> Result<u64> {
    let total = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    if total > u32::MAX as u64 {
        return Err(Error::Limits {
            what: format!("{op}: elements addressable by a u32 index"),
            needed: total,
            limit: u32::MAX as u64,
        });
    }
    Ok(total)
}

/// Most workgroups a grid-stride kernel is launched with: enough to fill a large GPU,
/// few enough that each invocation loops (software Vulkan pays per workgroup).
pub const GRID_STRIDE_GROUPS: u64 = 1024;

/// A 1D grid for a grid-stride kernel of 256 invocations a workgroup (`GRID_WG` in
/// `shaders/grid.wgsl`) over `n` items.
pub(crate) fn grid_stride(n: u64) -> [u32; 3] {
    [n.div_ceil(256).clamp(1, GRID_STRIDE_GROUPS) as u32, 1, 1]
}

/// Records a one-workgroup-a-row kernel: `rows` workgroups (laid out within the device's
/// per-dimension limit) of the device's row workgroup size (the `WG` override constant).
pub(crate) fn dispatch_rows<P: bytemuck::Pod>(
    gpu: &crate::gpu::Gpu,
    pass: &mut dyn Recorder,
    shader: crate::gpu::Shader,
    entry: &'static str,
    params: &P,
    buffers: &[&wgpu::Buffer],
    rows: u32,
) -> Result<()> {
    let constants = [("WG", gpu.row_workgroup_size() as f64)];
    let kernel = crate::gpu::Kernel::with(shader, entry, &constants);
    let groups = crate::gpu::grid_1d(
        rows as u64,
        gpu.limits().max_compute_workgroups_per_dimension,
    );
    gpu.dispatch(pass, &kernel, params, buffers, groups)
}
