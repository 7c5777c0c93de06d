//! The tensor-core variant (`coop8`, `coop16`): f16 A and B multiplied in S×S×S
//! cooperative matrices with f32 accumulators (`shaders/matmul_coop.wgsl`). It runs only on
//! a device opened with `EXPERIMENTAL_COOPERATIVE_MATRIX` and subgroups whose adapter lists
//! the configuration S×S×S, f16 A and B, f32 C (see `Gpu::cooperative_matrices`).

use super::super::Dtype;
use super::Matmul;
use crate::gpu::{Error, Gpu, Result};

/// The cooperative matrices' size: 8×8×8 (Apple, Mesa 26 lavapipe) or 16×16×16 (NVIDIA,
/// AMD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoopSize {
    Eight,
    Sixteen,
}

impl CoopSize {
    /// Rows (= columns = depth) of one matrix.
    pub fn s(self) -> u32 {
        match self {
            CoopSize::Eight => 8,
            CoopSize::Sixteen => 16,
        }
    }

    /// C's tile per workgroup: 4S × 4S (a 2S × 2S block for each of four subgroups).
    pub fn tile(self) -> u32 {
        4 * self.s()
    }

    /// Workgroup memory of the kernel: A's and B's f16 slabs (32 deep, rows padded by 8),
    /// five S×S f32 slots for the epilogue, and one u32.
    pub fn storage_bytes(self) -> u64 {
        let (tile, depth, pad) = (self.tile() as u64, 32u64, 8u64);
        let slabs = tile * (depth + pad) + depth * (tile + pad);
        let slots = 5 * (self.s() as u64).pow(2);
        slabs * 2 + slots * 4 + 4
    }

    /// Invocations a workgroup: four subgroups of the adapter's largest subgroup size.
    pub fn workgroup(gpu: &Gpu) -> u32 {
        4 * gpu.info().subgroup_max_size.max(1)
    }

    /// Whether `gpu` lists this size for f16 A and B with f32 accumulators.
    pub fn listed(self, gpu: &Gpu) -> bool {
        let s = self.s();
        gpu.cooperative_matrices()
            .iter()
            .any(|c| crate::gpu::usable_cooperative(c, s))
    }

    /// The sizes `gpu` can run, smallest first.
    pub fn available(gpu: &Gpu) -> Vec<CoopSize> {
        [CoopSize::Eight, CoopSize::Sixteen]
            .into_iter()
            .filter(|size| size.listed(gpu) && gpu.features().contains(wgpu::Features::SUBGROUP))
            .collect()
    }

    /// Errors unless this size can run `desc` on `gpu`.
    pub fn check(self, gpu: &Gpu, desc: &Matmul) -> Result<()> {
        let unsupported = |why: String| Error::Unsupported {
            op: "matmul",
            variant: format!("coop{}", self.s()),
            why,
        };
        if desc.operands != Dtype::F16 {
            return Err(unsupported(
                "cooperative matrices multiply f16 operands; A and B are f32".into(),
            ));
        }
        if !CoopSize::available(gpu).contains(&self) {
            let s = self.s();
            return Err(unsupported(format!(
                "the adapter '{}' lists no {s}x{s}x{s} cooperative matrix of f16 A and B \
                 with f32 accumulators (with subgroups); it lists {}",
                gpu.info().name,
                describe(gpu.cooperative_matrices())
            )));
        }
        gpu.check_workgroup(
            "matmul coop",
            self.storage_bytes(),
            CoopSize::workgroup(gpu),
        )
    }
}

/// The configurations, as `rezero info` prints them ("none" for none).
pub fn describe(configs: &[wgpu::CooperativeMatrixProperties]) -> String {
    if configs.is_empty() {
        return "none".into();
    }
    let each: Vec<String> = configs
        .iter()
        .map(|c| {
            format!(
                "{}x{}x{} {:?}->{:?}",
                c.m_size, c.n_size, c.k_size, c.ab_type, c.cr_type
            )
            .to_lowercase()
        })
        .collect();
    each.join(", ")
}
