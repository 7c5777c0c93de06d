//! Launchers for `shaders/rezero.wgsl`: the fused ReZero residual y = x + α·f and its backward.
//! x, f, y and their gradients are f32 or f16 activations (`RezeroShape::dtype`); α and dα
//! are always f32.

use crate::gpu::{Gpu, Kernel, Recorder, Result, Work};

use super::precision::{check_len_of, require};
use super::{Dtype, Grad, Typed, accumulate_bits, check_len, check_nonempty, grid_stride};

pub(crate) const SHADERS: Typed = super::typed!(
    "rezero",
    Params,
    "workgroup.wgsl",
    "grid.wgsl",
    "rezero.wgsl"
);

/// Length (f32 elements) of the scratch buffer `rezero_backward` needs for its partial sums.
pub const REZERO_SCRATCH_LEN: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    /// Backward: bit 0 dx, bit 1 df, bit 2 dα set where that gradient is added to.
    accumulate: u32,
    groups: u32,
    alpha_index: u32,
}

/// Which α of the alpha buffer a residual uses, its length and its activations' type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RezeroShape {
    /// Elements of x, f and y.
    pub n: u32,
    /// α = alpha[alpha_index] (one buffer may hold every block's α).
    pub alpha_index: u32,
    /// The type of x, f, y, dy, dx and df.
    pub dtype: Dtype,
}

impl RezeroShape {
    /// `n` f32 elements, α = alpha[alpha_index].
    pub fn new(n: u32, alpha_index: u32) -> RezeroShape {
        RezeroShape {
            n,
            alpha_index,
            dtype: Dtype::F32,
        }
    }

    /// Errors unless the device takes `dtype` and n > 0.
    fn check(&self, op: &'static str, gpu: &Gpu) -> Result<()> {
        require(gpu, op, self.dtype)?;
        check_nonempty(op, &[("n", self.n)])
    }
}

/// y = x + α·f with α = alpha[alpha_index]; y, x, f: [n]; alpha: [> alpha_index] (a GPU
/// buffer, so the optimizer updates it with no readback; one buffer may hold every block's α)
pub fn rezero_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    f: &wgpu::Buffer,
    alpha: &wgpu::Buffer,
    shape: RezeroShape,
) -> Result<()> {
    const OP: &str = "rezero_forward";
    shape.check(OP, gpu)?;
    let RezeroShape {
        n,
        alpha_index,
        dtype,
    } = shape;
    for (what, b) in [("y", y), ("x", x), ("f", f)] {
        check_len_of(OP, what, b, n as u64, dtype)?;
    }
    check_len(OP, "alpha [> alpha_index]", alpha, alpha_index as u64 + 1)?;
    let params = Params {
        n,
        accumulate: 0,
        groups: 0,
        alpha_index,
    };
    // Four elements an iteration when n allows it (about twice as fast on software Vulkan).
    let (entry, items) = if n % 4 == 0 {
        ("rezero_forward_vec4", n / 4)
    } else {
        (OP, n)
    };
    gpu.dispatch(
        pass,
        // reads x and f, writes y
        &Kernel::new(SHADERS.get(dtype), entry)
            .work(Work::Bytes(3.0 * dtype.bytes() as f64 * n as f64)),
        &params,
        &[y, x, f, alpha],
        grid_stride(items as u64),
    )
}

/// Backward of y = x + α·f given dy: dx (+)= dy, df (+)= α·dy, dα (+)= Σ dy·f, each
/// written or added to as its [`Grad`] says. x is not needed. `scratch` holds
/// [`REZERO_SCRATCH_LEN`] floats of partial sums. α = alpha[alpha_index] and the sum goes
/// to dalpha[alpha_index].
/// dx, df, dy, f: [n]; dalpha, alpha: [> alpha_index]
#[allow(clippy::too_many_arguments)]
pub fn rezero_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: Grad,
    df: Grad,
    dalpha: Grad,
    scratch: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    f: &wgpu::Buffer,
    alpha: &wgpu::Buffer,
    shape: RezeroShape,
) -> Result<()> {
    const OP: &str = "rezero_backward";
    shape.check(OP, gpu)?;
    let RezeroShape {
        n,
        alpha_index,
        dtype,
    } = shape;
    for (what, b) in [("dx", dx.buffer), ("df", df.buffer), ("dy", dy), ("f", f)] {
        check_len_of(OP, what, b, n as u64, dtype)?;
    }
    for (what, b, len) in [
        (
            "dalpha [> alpha_index]",
            dalpha.buffer,
            alpha_index as u64 + 1,
        ),
        ("scratch", scratch, REZERO_SCRATCH_LEN as u64),
        ("alpha [> alpha_index]", alpha, alpha_index as u64 + 1),
    ] {
        check_len(OP, what, b, len)?;
    }
    // At least 8 elements an invocation: every workgroup pays for a tree of barriers.
    let groups = (n as u64).div_ceil(256 * 8).min(REZERO_SCRATCH_LEN as u64) as u32;
    let params = Params {
        n,
        accumulate: accumulate_bits(&[dx, df, dalpha]),
        groups,
        alpha_index,
    };
    // reads dy and f (and dx, df where they are added to), writes dx and df
    let reads = 2 + dx.accumulate as u8 + df.accumulate as u8;
    let bytes = (reads + 2) as f64 * dtype.bytes() as f64 * n as f64;
    let shader = SHADERS.get(dtype);
    gpu.dispatch(
        pass,
        &Kernel::new(shader, OP).work(Work::Bytes(bytes)),
        &params,
        &[dx.buffer, df.buffer, scratch, dy, f, alpha],
        [groups, 1, 1],
    )?;
    gpu.dispatch(
        pass,
        &Kernel::new(shader, "rezero_alpha_reduce"),
        &params,
        &[dalpha.buffer, scratch],
        [1, 1, 1],
    )
}
