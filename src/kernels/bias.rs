//! Launchers for `shaders/bias.wgsl`: a linear layer's bias gradient (the column sums of
//! dy), alone or through the activation that followed the bias, whose gradient it writes
//! on the way. The forward of that activation is the matmul's store
//! ([`matmul_activation`](super::matmul::matmul_activation)). dy, pre and dx are f32 or f16
//! activations (`BiasShape::dtype`); dbias is always f32.

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Work};

use super::precision::{check_len_of, require};
use super::{Dtype, Grad, Typed, accumulate_bits, check_len, check_nonempty, elements};

pub(crate) const SHADERS: Typed = super::typed!("bias", Params, "bias.wgsl", "activation.wgsl");

/// An activation applied right after a linear layer's bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// GELU, tanh form
    Gelu,
}

impl Activation {
    /// Its `ACT_*` value in `shaders/activation.wgsl`.
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::Relu => 1,
            Activation::Gelu => 2,
        }
    }
}

/// The gradient's shape: dy [rows, cols] for a bias of `cols`, and the type of dy, pre and dx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BiasShape {
    pub rows: u32,
    pub cols: u32,
    pub dtype: Dtype,
}

/// Up to this many rows one pass writes dbias; beyond, workgroups of `CHUNK_ROWS` rows (more
/// where the chunks would pass WebGPU's 65,535 workgroups a dimension) write partial sums
/// and a second pass adds them up.
const ONE_PASS_ROWS: u32 = 1024;
const CHUNK_ROWS: u32 = 128;
const MAX_CHUNKS: u32 = 65_535;

impl BiasShape {
    /// (rows a workgroup covers, chunks of rows).
    fn chunks(&self) -> (u32, u32) {
        if self.rows <= ONE_PASS_ROWS {
            (self.rows, 1)
        } else {
            let chunk_rows = CHUNK_ROWS.max(self.rows.div_ceil(MAX_CHUNKS));
            (chunk_rows, self.rows.div_ceil(chunk_rows))
        }
    }

    /// Floats of scratch the backward needs for its partial sums (0 with one pass).
    pub fn scratch_len(&self) -> usize {
        match self.chunks() {
            (_, 1) => 0,
            (_, chunks) => chunks as usize * self.cols as usize,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    chunk_rows: u32,
    chunks: u32,
    /// bit 0: dbias is added to, bit 1: dx is added to
    accumulate: u32,
    _pad: [u32; 3],
}

/// dbias (+)= Σ_rows dy. dbias: [cols]; dy: [rows, cols]; scratch: at least
/// [`BiasShape::scratch_len`] floats, needed (`Some`) only when that is above 0.
pub fn bias_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dbias: Grad,
    scratch: Option<&wgpu::Buffer>,
    dy: &wgpu::Buffer,
    shape: BiasShape,
) -> Result<()> {
    record(gpu, pass, dbias, None, scratch, dy, shape)
}

/// The backward of y = act(pre), pre = product + bias: dx (+)= dy·act'(pre) and
/// dbias (+)= Σ_rows of it, in one pass over dy (two beyond 1,024 rows).
/// dx, dy, pre: [rows, cols]; dbias: [cols]; scratch as for [`bias_backward`].
#[allow(clippy::too_many_arguments)]
pub fn bias_activation_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: Grad,
    dbias: Grad,
    scratch: Option<&wgpu::Buffer>,
    dy: &wgpu::Buffer,
    pre: &wgpu::Buffer,
    activation: Activation,
    shape: BiasShape,
) -> Result<()> {
    record(
        gpu,
        pass,
        dbias,
        Some((dx, pre, activation)),
        scratch,
        dy,
        shape,
    )
}

fn record(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dbias: Grad,
    through: Option<(Grad, &wgpu::Buffer, Activation)>,
    scratch: Option<&wgpu::Buffer>,
    dy: &wgpu::Buffer,
    shape: BiasShape,
) -> Result<()> {
    const OP: &str = "bias_backward";
    let BiasShape { rows, cols, dtype } = shape;
    require(gpu, OP, dtype)?;
    check_nonempty(OP, &[("rows", rows), ("cols", cols)])?;
    let len = elements(OP, &[rows, cols])?;
    check_len_of(OP, "dy [rows, cols]", dy, len, dtype)?;
    check_len(OP, "dbias [cols]", dbias.buffer, cols as u64)?;
    // With one pass the partial sums are never written: a placeholder fills their binding
    // (a writable binding never shares a buffer: WebGPU refuses).
    let scratch = match (shape.scratch_len(), scratch) {
        (0, _) => gpu.placeholder(0),
        (len, Some(scratch)) => {
            check_len(OP, "scratch", scratch, len as u64)?;
            scratch
        }
        (len, None) => {
            return Err(Error::Invalid {
                what: format!("{OP} of {rows}x{cols}"),
                why: format!("needs a scratch buffer of {len} floats"),
            });
        }
    };
    if let Some((dx, pre, _)) = through {
        check_len_of(OP, "dx [rows, cols]", dx.buffer, len, dtype)?;
        check_len_of(OP, "pre [rows, cols]", pre, len, dtype)?;
    }
    let (chunk_rows, chunks) = shape.chunks();
    let params = Params {
        rows,
        cols,
        chunk_rows,
        chunks,
        accumulate: accumulate_bits(&[dbias, through.map_or(dbias, |(dx, ..)| dx)]),
        _pad: [0; 3],
    };
    // Reads dy; with an activation also pre, and writes dx.
    let (code, dx, pre, passes) = match through {
        Some((dx, pre, activation)) => (activation.code(), dx.buffer, pre, 3.0),
        None => (0, gpu.placeholder(1), dy, 1.0),
    };
    let constants = [("ACTIVATION", code as f64)];
    let shader = SHADERS.get(dtype);
    let bytes = passes * dtype.bytes() as f64 * len as f64;
    let kernel = Kernel::with(shader, OP, &constants).work(Work::Bytes(bytes));
    // With no activation dx and pre are never touched: a placeholder and dy (read-only)
    // fill their bindings.
    let buffers = [(1, dbias.buffer), (2, scratch), (3, dx), (4, dy), (5, pre)];
    let column_groups = cols.div_ceil(64);
    gpu.dispatch_bound(pass, &kernel, &params, &buffers, [column_groups, chunks, 1])?;
    if chunks > 1 {
        let finish = Kernel::with(shader, "bias_backward_finish", &constants)
            .work(Work::Bytes(4.0 * shape.scratch_len() as f64));
        let buffers = [(1, dbias.buffer), (2, scratch)];
        gpu.dispatch_bound(pass, &finish, &params, &buffers, [column_groups, 1, 1])?;
    }
    Ok(())
}
