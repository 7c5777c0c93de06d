//! Launchers for `shaders/attention_tiled.wgsl` (with `attention_tiled_backward.wgsl`, and
//! `attention_tiled_subgroups.wgsl` on devices with subgroups): causal attention in the
//! FlashAttention-2 layout, the forward (a workgroup of 64 invocations per head and block
//! of query rows) and the backward, no atomics (dQ by query blocks and dK and dV by key
//! blocks, or all three in one pass a head), with score tiles register-blocked, every tile
//! in workgroup memory held as rows of vec4s, and tile sizes checked against the device's
//! workgroup memory.

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Work};

use super::Typed;
use super::attention::{AttentionShape, Params};

pub(crate) const SHADERS: Typed = super::typed!(
    "attention_tiled",
    Params,
    "attention_layout.wgsl",
    "attention_tiled.wgsl",
    "attention_tiled_backward.wgsl"
);

/// The forward with the online softmax taken by subgroup shuffles, for devices opened with
/// `wgpu::Features::SUBGROUP` only (see [`Tiles::subgroup_softmax`]). naga 30 takes
/// subgroup operations without WGSL's `enable subgroups;`, which it does not parse yet.
pub(crate) const SUBGROUP_SHADERS: Typed = super::typed!(
    "attention_tiled_subgroups",
    Params,
    "attention_layout.wgsl",
    "attention_tiled.wgsl",
    "attention_tiled_subgroups.wgsl"
);

/// Invocations a workgroup and the most vec4 columns of O one holds (the shader's WG and
/// MAX_OC4).
const WORKGROUP: u32 = 64;
const MAX_O_VEC4_COLUMNS: u32 = 4;
/// Storage buffers the one-pass backward binds: q, k, v, dO, lse, delta, dq, dk, dv.
const PER_HEAD_BUFFERS: u32 = 9;

/// Query rows a workgroup (`br`, 16 or 32) and key rows a tile (`bc`, a multiple of 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub br: u32,
    pub bc: u32,
}

impl Tiles {
    /// The sizes tried, largest first.
    pub const CANDIDATES: [Tiles; 4] = [
        Tiles { br: 32, bc: 32 },
        Tiles { br: 32, bc: 16 },
        Tiles { br: 16, bc: 32 },
        Tiles { br: 16, bc: 16 },
    ];

    /// Vec4s a row of a head and of a score tile takes in workgroup memory: the shader's
    /// ROW4 (d / 4 rounded up, made odd) and SROW4 (bc / 4, made odd).
    fn row_vec4s(self, d: u32) -> (u64, u64) {
        (d.div_ceil(4) as u64 | 1, (self.bc / 4) as u64 | 1)
    }

    /// Workgroup memory the forward declares for head dimension `d`: the Q block and the
    /// key and value tiles (rows of ROW4 vec4s), the score tile (rows of SROW4) and three
    /// row vectors (the subgroup forward uses two of them).
    pub fn storage_bytes(self, d: u32) -> u64 {
        let (br, bc) = (self.br as u64, self.bc as u64);
        let (row, score_row) = self.row_vec4s(d);
        16 * ((br + 2 * bc) * row + br * score_row) + 4 * 3 * br
    }

    /// Whether the forward takes its online softmax with subgroup shuffles on this device:
    /// it has subgroups, of at least bc / 4 invocations (the invocations that share a row
    /// of scores), each invocation holds at most one score block, and the device's probe
    /// found subgroups cut from consecutive local invocation indices, as the shader
    /// assumes and no API promises ([`Gpu::probe_subgroups`]).
    pub fn subgroup_softmax(self, gpu: &Gpu) -> bool {
        gpu.device.features().contains(wgpu::Features::SUBGROUP)
            && gpu.subgroups_consecutive()
            && gpu.info().subgroup_min_size >= self.bc / 4
            && self.br * self.bc <= 16 * WORKGROUP
    }

    /// The tiled shader's override constants: head dimension, tile sizes and the layout.
    fn constants(self, d: u32, params: &Params) -> Vec<(&'static str, f64)> {
        let tiles = [
            ("D", d as f64),
            ("BR", self.br as f64),
            ("BC", self.bc as f64),
        ];
        tiles.into_iter().chain(params.layout_constants()).collect()
    }

    /// Workgroup memory the backward shader declares: the query, output-gradient, key and
    /// value tiles (rows of ROW4 vec4s), the P and dS tiles (rows of SROW4) and two row
    /// vectors.
    pub fn backward_storage_bytes(self, d: u32) -> u64 {
        let (br, bc) = (self.br as u64, self.bc as u64);
        let (row, score_row) = self.row_vec4s(d);
        16 * (2 * (br + bc) * row + 2 * br * score_row) + 4 * 2 * br
    }

    /// Whether 4 rows × (d / 4 over the column groups of `rows / 4`) vec4 columns of a
    /// gradient fit an invocation's registers (false for rows no workgroup can split so).
    fn holds(rows: u32, d: u32) -> bool {
        let groups = WORKGROUP.checked_div(rows / 4).unwrap_or(0);
        groups > 0 && d.div_ceil(4).div_ceil(groups) <= MAX_O_VEC4_COLUMNS
    }

    /// Errors unless these tiles suit the forward with head dimension `d` on this device.
    pub fn check(self, gpu: &Gpu, d: u32) -> Result<()> {
        let shape_ok = (self.br == 16 || self.br == 32) && self.bc > 0 && self.bc % 4 == 0;
        self.check_with(
            gpu,
            d,
            shape_ok,
            Tiles::holds(self.br, d),
            self.storage_bytes(d),
        )
    }

    /// Errors unless these tiles suit the backward with head dimension `d` on this device.
    pub fn check_backward(self, gpu: &Gpu, d: u32) -> Result<()> {
        let shape_ok = [16, 32].contains(&self.br) && [16, 32].contains(&self.bc);
        let holds = Tiles::holds(self.br, d) && Tiles::holds(self.bc, d);
        self.check_with(gpu, d, shape_ok, holds, self.backward_storage_bytes(d))
    }

    /// Errors unless these tiles suit the one-pass backward (a workgroup per head, nine
    /// storage buffers) with head dimension `d` on this device.
    pub fn check_per_head(self, gpu: &Gpu, d: u32) -> Result<()> {
        self.check_backward(gpu, d)?;
        let limit = gpu.limits().max_storage_buffers_per_shader_stage;
        if limit < PER_HEAD_BUFFERS {
            return Err(Error::Limits {
                what: "attention backward, one pass a head: storage buffers per shader stage"
                    .into(),
                needed: PER_HEAD_BUFFERS as u64,
                limit: limit as u64,
            });
        }
        Ok(())
    }

    fn check_with(self, gpu: &Gpu, d: u32, shape_ok: bool, holds: bool, bytes: u64) -> Result<()> {
        if !shape_ok {
            return Err(Error::Invalid {
                what: format!("attention tiles {self:?}"),
                why: "rows a tile must be 16 or 32 (the forward's key rows: a multiple of 4)"
                    .into(),
            });
        }
        if !holds {
            return Err(Error::Unsupported {
                op: "attention",
                variant: format!("{self:?}"),
                why: format!(
                    "head dimension {d} is over {} columns an invocation",
                    4 * MAX_O_VEC4_COLUMNS
                ),
            });
        }
        let limits = gpu.limits();
        let limit = limits.max_compute_workgroup_storage_size as u64;
        if bytes > limit || WORKGROUP > limits.max_compute_invocations_per_workgroup {
            return Err(Error::Limits {
                what: format!(
                    "tiled attention {self:?}, head dimension {d}: workgroup storage in bytes"
                ),
                needed: bytes,
                limit,
            });
        }
        Ok(())
    }
}

/// Records the tiled forward: o, lse from q, k, v (shapes checked by the caller).
pub(crate) fn forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    [o, lse, q, k, v]: [&wgpu::Buffer; 5],
    s: &AttentionShape,
    params: &Params,
    tiles: Tiles,
) -> Result<()> {
    let constants = tiles.constants(s.d, params);
    let (shader, entry) = match tiles.subgroup_softmax(gpu) {
        true => (SUBGROUP_SHADERS, "attention_forward_tiled_subgroups"),
        false => (SHADERS, "attention_forward_tiled"),
    };
    let shader = shader.get(s.dtype);
    let kernel = Kernel::with(shader, entry, &constants).work(Work::Flops(s.forward_flops()));
    let groups = [s.t.div_ceil(tiles.br), s.bh, 1];
    gpu.dispatch(pass, &kernel, params, &[o, lse, q, k, v], groups)
}

/// Records the tiled backward after the delta kernel: dq, dk, dv from q, k, v, d_o, lse
/// and delta (shapes checked by the caller). Two kernels (dQ by query blocks, dK and dV
/// by key blocks), or with `per_head` one pass a head.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    [dq, dk, dv]: [&wgpu::Buffer; 3],
    [q, k, v, d_o, lse, delta]: [&wgpu::Buffer; 6],
    s: &AttentionShape,
    params: &Params,
    tiles: Tiles,
    per_head: bool,
) -> Result<()> {
    let constants = tiles.constants(s.d, params);
    let inputs = [(3, q), (4, k), (5, v), (6, d_o), (7, lse), (8, delta)];
    let causal_product = s.forward_flops() / 2.0;
    let mut run =
        |entry: &'static str, products: f64, outputs: &[(u32, &wgpu::Buffer)], groups, params| {
            let shader = SHADERS.get(s.dtype);
            let kernel = Kernel::with(shader, entry, &constants)
                .work(Work::Flops(products * causal_product));
            let buffers: Vec<_> = outputs.iter().copied().chain(inputs).collect();
            gpu.dispatch_bound(pass, &kernel, params, &buffers, groups)
        };
    // A gradient that shares dk's buffer (the packed layout) is written through dk's
    // binding, a placeholder in its own (WebGPU refuses a writable buffer bound twice).
    let dv = if params.through_dk(1) {
        gpu.placeholder(0)
    } else {
        dv
    };
    if per_head {
        // Each score tile once: QKᵀ and dO·Vᵀ recomputed, then Pᵀ·dO, dSᵀ·Q and dS·K.
        let dq = if params.through_dk(2) {
            gpu.placeholder(1)
        } else {
            dq
        };
        let outputs = [(1, dk), (2, dv), (9, dq)];
        return run(
            "attention_backward_head_tiled",
            5.0,
            &outputs,
            [1, s.bh, 1],
            params,
        );
    }
    // dQ recomputes QKᵀ and dO·Vᵀ and forms dS·K: three causal products, the forward two;
    // dK and dV recompute the two and form Pᵀ·dO and dSᵀ·Q: four. The dQ kernel declares
    // dk's binding (for the one-pass kernel's sharing) but never touches it.
    let groups = [s.t.div_ceil(tiles.br), s.bh, 1];
    let dq_alone = params.dq_alone();
    let outputs = [(9, dq), (1, gpu.placeholder(1))];
    run(
        "attention_backward_dq_tiled",
        3.0,
        &outputs,
        groups,
        &dq_alone,
    )?;
    let groups = [s.t.div_ceil(tiles.bc), s.bh, 1];
    let outputs = [(1, dk), (2, dv)];
    run(
        "attention_backward_dkv_tiled",
        4.0,
        &outputs,
        groups,
        params,
    )
}
