//! Launchers for `shaders/attention.wgsl`: fused causal attention (flash style) and its
//! backward (delta, dQ, dK/dV), with the tile chosen to fit the device's workgroup memory.
//! q, k, v, o, dO and the gradients are f32 or f16 activations (`AttentionShape::dtype`);
//! lse, delta and the arithmetic are f32.

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Work};

use super::attention_tiled::{self, Tiles};
use super::attention_tune::{self, Pass};
use super::precision::{check_len_of, require};
use super::{
    Dtype, Grad, Typed, accumulate_bits, check_len, check_nonempty, elements, grid_stride,
};

pub(crate) const SHADERS: Typed = super::typed!(
    "attention",
    Params,
    "attention_layout.wgsl",
    "attention.wgsl"
);

/// The largest head dimension the kernels hold in registers (the shader's MAX_D).
pub const MAX_HEAD_DIM: u32 = 128;

/// Shape of one attention call: `bh` independent heads (batch × heads) of `t` positions
/// and head dimension `d`, laid out as `layout` says, of `dtype`; lse: [bh, t] (f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub bh: u32,
    pub t: u32,
    pub d: u32,
    pub layout: AttentionLayout,
    /// The type of q, k, v, o, dO, dq, dk and dv (f32 by the constructors).
    pub dtype: Dtype,
}

/// Where the heads of q, k, v, o (and their gradients) lie in their buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionLayout {
    /// Each of q, k, v, o in a buffer of its own, [bh, t, d].
    Heads,
    /// A Transformer's packed projection: q, k and v side by side in each row of one
    /// [batch·t, 3·heads·d] buffer, passed as each of q, k and v (their gradients likewise
    /// in one buffer); o and dO [batch·t, heads·d]; bh = batch × heads. No copies into
    /// the head layout and back.
    Packed { heads: u32 },
}

impl AttentionShape {
    /// `bh` heads of `t` positions and dimension `d`, each tensor [bh, t, d].
    pub fn heads(bh: u32, t: u32, d: u32) -> AttentionShape {
        let layout = AttentionLayout::Heads;
        let dtype = Dtype::F32;
        AttentionShape {
            bh,
            t,
            d,
            layout,
            dtype,
        }
    }

    /// This shape with activations of `dtype`.
    pub fn dtype(self, dtype: Dtype) -> AttentionShape {
        AttentionShape { dtype, ..self }
    }

    /// The heads of a packed projection [batch·t, 3·heads·d] (see [`AttentionLayout`]);
    /// None when batch × heads overflows.
    pub fn packed(batch: u32, heads: u32, t: u32, d: u32) -> Option<AttentionShape> {
        let layout = AttentionLayout::Packed { heads };
        Some(AttentionShape {
            bh: batch.checked_mul(heads)?,
            t,
            d,
            layout,
            dtype: Dtype::F32,
        })
    }

    /// Heads side by side in a row (1 in the head layout).
    fn heads_a_row(&self) -> u32 {
        match self.layout {
            AttentionLayout::Heads => 1,
            AttentionLayout::Packed { heads } => heads,
        }
    }

    /// Elements the buffers of q, k, v (and their gradients) and of o and dO must hold.
    pub(crate) fn lengths(&self, op: &'static str) -> Result<(u64, u64)> {
        let h = self.heads_a_row();
        let parts = match self.layout {
            AttentionLayout::Heads => 1,
            AttentionLayout::Packed { .. } => 3, // q, k and v side by side
        };
        let width = |parts: u32| elements(op, &[self.bh / h.max(1), self.t, parts, h, self.d]);
        Ok((width(parts)?, width(1)?))
    }

    /// Multiply-adds × 2 of the causal forward pass (QKᵀ and PV, half the square each).
    pub fn forward_flops(&self) -> f64 {
        let pairs = self.t as f64 * (self.t as f64 + 1.0) / 2.0;
        4.0 * self.bh as f64 * pairs * self.d as f64
    }
}

/// The uniform of the attention shaders (`shaders/attention_layout.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    bh: u32,
    t: u32,
    d: u32,
    scale: f32,
    heads: u32,
    in_stride: u32,
    k_offset: u32,
    v_offset: u32,
    out_stride: u32,
    accumulate: u32,
    /// Bit 1: dv is written through dk's binding, bit 2: dq too (one buffer, bound once).
    grads_shared: u32,
    _pad: u32,
}

impl Params {
    fn new(s: &AttentionShape) -> Params {
        let (h, d) = (s.heads_a_row(), s.d);
        // Packed: q, k, v each h·d columns of a 3·h·d row (bounded by `lengths`).
        let (in_stride, width) = match s.layout {
            AttentionLayout::Heads => (d, 0),
            AttentionLayout::Packed { .. } => (3 * h * d, h * d),
        };
        Params {
            bh: s.bh,
            t: s.t,
            d,
            scale: 1.0 / (d as f32).sqrt(),
            heads: h,
            in_stride,
            k_offset: width,
            v_offset: 2 * width,
            out_stride: h * d,
            accumulate: 0,
            grads_shared: 0,
            _pad: 0,
        }
    }

    /// The layout as the tiled shader's override constants (its address arithmetic then
    /// folds; on lavapipe the kernels ran 8-15% slower reading it from the uniform).
    pub(crate) fn layout_constants(&self) -> [(&'static str, f64); 5] {
        [
            ("HEADS", self.heads as f64),
            ("IN_STRIDE", self.in_stride as f64),
            ("OUT_STRIDE", self.out_stride as f64),
            ("K_OFFSET", self.k_offset as f64),
            ("V_OFFSET", self.v_offset as f64),
        ]
    }

    /// These params with the gradients' accumulate bits (1: dq, 2: dk, 4: dv) set, and
    /// which of dv and dq share dk's buffer (the packed layout).
    fn adding(self, grads: [Grad<'_>; 3]) -> Params {
        let [dq, dk, dv] = grads.map(|g| g.buffer);
        Params {
            accumulate: accumulate_bits(&grads),
            grads_shared: (dv == dk) as u32 | (((dq == dk) as u32) << 1),
            ..self
        }
    }

    /// For a kernel that writes dq alone: dq through its own binding.
    pub(crate) fn dq_alone(self) -> Params {
        Params {
            grads_shared: self.grads_shared & 1,
            ..self
        }
    }

    /// Whether dv (bit 1) or dq (bit 2) is written through dk's binding.
    pub(crate) fn through_dk(&self, bit: u32) -> bool {
        self.grads_shared & bit != 0
    }
}

/// The kernels of a pass: one invocation a query (or key) row, or FlashAttention-2-style
/// tiles (a workgroup a block of rows, the score tile register-blocked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    Rows,
    Tiled(Tiles),
    /// The backward in one pass, a workgroup per head (five products where `Tiled` takes
    /// seven, bh workgroups); the forward runs `Tiled` with the same tiles.
    PerHead(Tiles),
}

/// Workgroup memory the kernels declare for a tile of `b` rows: two [b, d] tiles and two
/// [b] vectors.
pub fn tile_storage_bytes(b: u32, d: u32) -> u64 {
    (2 * b as u64 * d as u64 + 2 * b as u64) * 4
}

/// The largest tile (rows a workgroup) out of 64, 32, 16, 8 whose workgroup memory and
/// size fit the device.
fn tile_rows(gpu: &Gpu, d: u32) -> Result<u32> {
    let limits = gpu.limits();
    [64u32, 32, 16, 8]
        .into_iter()
        .find(|&b| {
            tile_storage_bytes(b, d) <= limits.max_compute_workgroup_storage_size as u64
                && b <= limits.max_compute_invocations_per_workgroup
        })
        .ok_or_else(|| Error::Limits {
            what: format!("attention with head dimension {d}: workgroup storage in bytes"),
            needed: tile_storage_bytes(8, d),
            limit: limits.max_compute_workgroup_storage_size as u64,
        })
}

fn check_shape(op: &'static str, gpu: &Gpu, s: &AttentionShape) -> Result<()> {
    require(gpu, op, s.dtype)?;
    check_nonempty(op, &[("bh", s.bh), ("t", s.t), ("d", s.d)])?;
    let h = s.heads_a_row();
    if h == 0 || s.bh % h != 0 {
        return Err(Error::Shape {
            op,
            expected: "heads > 0 that divide batch × heads".into(),
            got: format!("{s:?}"),
        });
    }
    if s.d > MAX_HEAD_DIM {
        return Err(Error::Unsupported {
            op,
            variant: "fused".into(),
            why: format!("head dimension {} is above {MAX_HEAD_DIM}", s.d),
        });
    }
    if s.bh > 65535 {
        return Err(Error::Limits {
            what: format!("{op}: batch × heads (one workgroup row each)"),
            needed: s.bh as u64,
            limit: 65535,
        });
    }
    Ok(())
}

/// Override constants (head dimension, tile rows), uniform params and tile rows for `s`.
struct Setup {
    constants: [(&'static str, f64); 3],
    params: Params,
    rows: u32,
}

fn setup(gpu: &Gpu, s: &AttentionShape) -> Result<Setup> {
    if gpu.limits().max_storage_buffers_per_shader_stage < 8 {
        return Err(Error::Limits {
            what: "attention backward: storage buffers per shader stage".into(),
            needed: 8,
            limit: gpu.limits().max_storage_buffers_per_shader_stage as u64,
        });
    }
    let b = tile_rows(gpu, s.d)?;
    Ok(Setup {
        constants: [("D", s.d as f64), ("BQ", b as f64), ("BK", b as f64)],
        params: Params::new(s),
        rows: b,
    })
}

/// o = softmax(q·kᵀ/√d, causal)·v per head, and lse (the log-sum-exp of each score row)
/// for the backward pass. q, k, v, o laid out as `s.layout` says; lse: [bh, t]. Runs the
/// kernel the tuning table names for the shape's class, or the adapter's default
/// (`attention_tune::default_kernel`); nothing is measured here.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    o: &wgpu::Buffer,
    lse: &wgpu::Buffer,
    q: &wgpu::Buffer,
    k: &wgpu::Buffer,
    v: &wgpu::Buffer,
    s: &AttentionShape,
) -> Result<()> {
    check_shape("attention_forward", gpu, s)?;
    let kernel = attention_tune::pick(gpu, Pass::Forward, s);
    attention_forward_with(gpu, pass, kernel, [o, lse, q, k, v], s)
}

/// [`attention_forward`] with the kernel chosen by the caller (benchmarks and tests):
/// `[o, lse, q, k, v]`.
pub fn attention_forward_with(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    kernel: AttentionKernel,
    [o, lse, q, k, v]: [&wgpu::Buffer; 5],
    s: &AttentionShape,
) -> Result<()> {
    const OP: &str = "attention_forward";
    check_shape(OP, gpu, s)?;
    let (input, output) = s.lengths(OP)?;
    for (what, b) in [("q", q), ("k", k), ("v", v)] {
        check_len_of(OP, what, b, input, s.dtype)?;
    }
    check_len_of(OP, "o", o, output, s.dtype)?;
    check_len(OP, "lse [bh, t]", lse, elements(OP, &[s.bh, s.t])?)?;
    let Setup {
        constants,
        params,
        rows: b,
    } = setup(gpu, s)?;
    if let AttentionKernel::Tiled(tiles) | AttentionKernel::PerHead(tiles) = kernel {
        tiles.check(gpu, s.d)?;
        return attention_tiled::forward(gpu, pass, [o, lse, q, k, v], s, &params, tiles);
    }
    let shader = SHADERS.get(s.dtype);
    let kernel = Kernel::with(shader, OP, &constants).work(Work::Flops(s.forward_flops()));
    gpu.dispatch(
        pass,
        &kernel,
        &params,
        &[o, lse, q, k, v],
        [s.t.div_ceil(b), s.bh, 1],
    )
}

/// Backward of `attention_forward` given dO: writes (or adds to) dq, dk, dv. `delta` is
/// scratch of [bh, t] floats. q, k, v, o, d_o and the gradients laid out as `s.layout`
/// says (packed: dq, dk and dv one buffer); lse: [bh, t]. Runs the kernel the tuning table
/// names for the shape's class, or the adapter's default; nothing is measured here.
pub fn attention_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    grads: [Grad<'_>; 3],
    delta: &wgpu::Buffer,
    [q, k, v, o, lse, d_o]: [&wgpu::Buffer; 6],
    s: &AttentionShape,
) -> Result<()> {
    check_shape("attention_backward", gpu, s)?;
    let kernel = attention_tune::pick(gpu, Pass::Backward, s);
    let inputs = [q, k, v, o, lse, d_o];
    attention_backward_with(gpu, pass, kernel, grads, delta, inputs, s)
}

/// [`attention_backward`] with the kernel chosen by the caller: `[dq, dk, dv]` and the
/// scratch `delta` from `[q, k, v, o, lse, d_o]`.
pub fn attention_backward_with(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    kernel: AttentionKernel,
    grads: [Grad<'_>; 3],
    delta: &wgpu::Buffer,
    [q, k, v, o, lse, d_o]: [&wgpu::Buffer; 6],
    s: &AttentionShape,
) -> Result<()> {
    const OP: &str = "attention_backward";
    check_shape(OP, gpu, s)?;
    let (input, output) = s.lengths(OP)?;
    let [dq, dk, dv] = grads.map(|g| g.buffer);
    for (what, b) in [
        ("dq", dq),
        ("dk", dk),
        ("dv", dv),
        ("q", q),
        ("k", k),
        ("v", v),
    ] {
        check_len_of(OP, what, b, input, s.dtype)?;
    }
    check_len_of(OP, "o", o, output, s.dtype)?;
    check_len_of(OP, "d_o", d_o, output, s.dtype)?;
    let rows = elements(OP, &[s.bh, s.t])?;
    check_len(OP, "lse [bh, t]", lse, rows)?;
    check_len(OP, "delta [bh, t]", delta, rows)?;
    let Setup {
        constants,
        params,
        rows: b,
    } = setup(gpu, s)?;
    match kernel {
        AttentionKernel::Tiled(tiles) => tiles.check_backward(gpu, s.d)?,
        AttentionKernel::PerHead(tiles) => tiles.check_per_head(gpu, s.d)?,
        AttentionKernel::Rows => {}
    }
    let shader = SHADERS.get(s.dtype);
    let read = (2 * rows * s.d as u64 * s.dtype.bytes() + 4 * rows) as f64;
    let delta_kernel =
        Kernel::with(shader, "attention_backward_delta", &constants[..1]).work(Work::Bytes(read));
    let [groups, _, _] = grid_stride(rows * 4); // 64 invocations a workgroup
    gpu.dispatch_bound(
        pass,
        &delta_kernel,
        &params,
        &[(1, delta), (2, o), (6, d_o)],
        [groups, 1, 1],
    )?;
    let params = params.adding(grads);
    if let AttentionKernel::Tiled(tiles) | AttentionKernel::PerHead(tiles) = kernel {
        let per_head = matches!(kernel, AttentionKernel::PerHead(_));
        let (grads, inputs) = ([dq, dk, dv], [q, k, v, d_o, lse, delta]);
        return attention_tiled::backward(gpu, pass, grads, inputs, s, &params, tiles, per_head);
    }
    let blocks = [s.t.div_ceil(b), s.bh, 1];
    let shared = [(3, q), (4, k), (5, v), (6, d_o), (7, delta)];
    // dq recomputes QKᵀ and dO·Vᵀ and forms dS·K: three causal products, the forward two.
    let causal_product = s.forward_flops() / 2.0;
    let dq_kernel = Kernel::with(shader, "attention_backward_dq", &constants)
        .work(Work::Flops(3.0 * causal_product));
    let dq_buffers: Vec<(u32, &wgpu::Buffer)> =
        [(1, dq), (2, lse)].into_iter().chain(shared).collect();
    gpu.dispatch_bound(pass, &dq_kernel, &params, &dq_buffers, blocks)?;
    // dkv recomputes QKᵀ and dO·Vᵀ and forms Pᵀ·dO and dSᵀ·Q: four.
    let dkv_kernel = Kernel::with(shader, "attention_backward_dkv", &constants)
        .work(Work::Flops(4.0 * causal_product));
    let dv = if params.through_dk(1) {
        gpu.placeholder(0)
    } else {
        dv
    };
    let dkv_buffers: Vec<(u32, &wgpu::Buffer)> = [(1, dk), (2, dv)]
        .into_iter()
        .chain(shared)
        .chain([(8, lse)])
        .collect();
    gpu.dispatch_bound(pass, &dkv_kernel, &params, &dkv_buffers, blocks)
}
