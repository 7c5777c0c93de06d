//! The FlashAttention-2-style causal attention forward (`shaders/attention_tiled.wgsl`):
//! one workgroup of 64 invocations per (head, block of query rows), the score tile
//! register-blocked, and the tile sizes picked to fit the device's workgroup memory.

use crate::gpu::{Error, Gpu, Kernel, Result, Shader, Work};

use super::attention::{AttentionShape, Params};

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

    /// The largest candidate that suits the device for head dimension `d`, if any.
    pub fn pick(gpu: &Gpu, d: u32) -> Option<Tiles> {
        Self::CANDIDATES
            .into_iter()
            .find(|t| t.check(gpu, d).is_ok())
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
