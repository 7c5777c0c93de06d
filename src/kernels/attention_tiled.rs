//! The FlashAttention-2-style causal attention forward (`shaders/attention_tiled.wgsl`):
//! one workgroup of 64 invocations per (head, block of query rows), the score tile
//! register-blocked, tile sizes that fit the device's workgroup memory; and the choice
//! between it (each tile size) and the one-row-an-invocation kernel, measured once per
//! shape class and kept in the tuning table like the matmul's.

use crate::gpu::{Error, Gpu, Kernel, Result, Shader, Work};

use super::attention::{AttentionShape, ForwardKernel, Params, attention_forward_with};
use super::autotune;

pub(crate) const SHADER: Shader = Shader {
    name: "attention_tiled",
    wgsl: include_str!("../../shaders/attention_tiled.wgsl"),
    uniform_bytes: std::mem::size_of::<Params>(),
};

/// Invocations a workgroup and the most O columns one holds (the shader's WG and MAX_OC).
const WORKGROUP: u32 = 64;
const MAX_O_COLUMNS: u32 = 16;

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

    /// Workgroup memory the shader declares for head dimension `d`: the Q block and the
    /// key/value tile (rows of d + 1 floats), the score tile and three row vectors.
    pub fn storage_bytes(self, d: u32) -> u64 {
        let (br, bc, row) = (self.br as u64, self.bc as u64, d as u64 + 1);
        4 * ((br + bc) * row + br * bc + 3 * br)
    }

    /// Whether an invocation's share of the O block (4 rows × d / column groups) fits.
    fn holds(self, d: u32) -> bool {
        let column_groups = WORKGROUP / (self.br / 4);
        d.div_ceil(column_groups) <= MAX_O_COLUMNS
    }

    /// Errors unless these tiles suit head dimension `d` on this device.
    pub fn check(self, gpu: &Gpu, d: u32) -> Result<()> {
        if !(self.br == 16 || self.br == 32) || self.bc == 0 || self.bc % 4 != 0 {
            return Err(Error::Invalid {
                what: format!("attention tiles {self:?}"),
                why: "query rows must be 16 or 32, key rows a multiple of 4".into(),
            });
        }
        if !self.holds(d) {
            return Err(Error::Unsupported {
                op: "attention_forward",
                variant: format!("{self:?}"),
                why: format!("head dimension {d} is over {MAX_O_COLUMNS} O columns an invocation"),
            });
        }
        let limits = gpu.limits();
        let (needed, limit) = (
            self.storage_bytes(d),
            limits.max_compute_workgroup_storage_size,
        );
        if needed > limit as u64 || WORKGROUP > limits.max_compute_invocations_per_workgroup {
            return Err(Error::Limits {
                what: format!(
                    "tiled attention {self:?}, head dimension {d}: workgroup storage in bytes"
                ),
                needed,
                limit: limit as u64,
            });
        }
        Ok(())
    }
}

/// Records the tiled forward: o, lse from q, k, v (shapes checked by the caller).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    [o, lse, q, k, v]: [&wgpu::Buffer; 5],
    s: &AttentionShape,
    params: &Params,
    tiles: Tiles,
) -> Result<()> {
    let constants = [
        ("D", s.d as f64),
        ("BR", tiles.br as f64),
        ("BC", tiles.bc as f64),
    ];
    let kernel = Kernel::with(SHADER, "attention_forward_tiled", &constants)
        .work(Work::Flops(s.forward_flops()));
    let groups = [s.t.div_ceil(tiles.br), s.bh, 1];
    gpu.dispatch(pass, &kernel, params, &[o, lse, q, k, v], groups)
}

impl ForwardKernel {
    /// `rows` or `tiled:BRxBC`, as the tuning table and the benchmarks name it.
    pub fn name(self) -> String {
        match self {
            ForwardKernel::Rows => "rows".into(),
            ForwardKernel::Tiled(t) => format!("tiled:{}x{}", t.br, t.bc),
        }
    }

    /// The kernel `name` names, if any.
    pub fn parse(text: &str) -> Option<ForwardKernel> {
        if text == "rows" {
            return Some(ForwardKernel::Rows);
        }
        let (br, bc) = text.strip_prefix("tiled:")?.split_once('x')?;
        let tiles = Tiles {
            br: br.parse().ok()?,
            bc: bc.parse().ok()?,
        };
        Some(ForwardKernel::Tiled(tiles))
    }
}

/// The tuning class of a forward: its head dimension and its length's power of two.
pub fn tuning_key(s: &AttentionShape) -> String {
    format!("attention/fwd/d{}/t{}", s.d, s.t.max(1).next_power_of_two())
}

/// The kernels timed for head dimension `d`: the row kernel and every tile size that fits.
pub fn candidates(gpu: &Gpu, d: u32) -> Vec<ForwardKernel> {
    let tiled = Tiles::CANDIDATES
        .into_iter()
        .filter(|t| t.check(gpu, d).is_ok());
    std::iter::once(ForwardKernel::Rows)
        .chain(tiled.map(ForwardKernel::Tiled))
        .collect()
}

/// Times every candidate on scratch buffers of shape `s` (see `autotune::time_each`).
pub fn measure_candidates(gpu: &Gpu, s: &AttentionShape) -> Result<Vec<(ForwardKernel, f64)>> {
    let n = s.bh as u64 * s.t as u64 * s.d as u64;
    let [o, q, k, v] =
        ["tune o", "tune q", "tune k", "tune v"].map(|l| autotune::filled(gpu, l, n));
    let (o, q, k, v) = (o?, q?, k?, v?);
    let lse = autotune::filled(gpu, "tune lse", s.bh as u64 * s.t as u64)?;
    autotune::time_each(&candidates(gpu, s.d), |kernel| {
        gpu.run(|pass| attention_forward_with(gpu, pass, kernel, [&o, &lse, &q, &k, &v], s))
    })
}

/// The forward kernel for shape `s`: the table's choice for its class, or the fastest
/// candidate, measured now and recorded.
pub(crate) fn pick(gpu: &Gpu, s: &AttentionShape) -> Result<ForwardKernel> {
    autotune::choose(
        gpu,
        &tuning_key(s),
        ForwardKernel::parse,
        |kernel| match kernel {
            ForwardKernel::Rows => true,
            ForwardKernel::Tiled(t) => t.check(gpu, s.d).is_ok(),
        },
        || measure_candidates(gpu, s),
        ForwardKernel::name,
    )
}
