//! The tiles of the tiled and blocked matmuls (the blocked one also the blocked
//! convolution's): their sizes, the override constants they become, and the checks against
//! the device's limits.

use crate::gpu::{Error, Gpu, Result};

/// The tile of the blocked kernel: BM×BN of C per workgroup, BK-deep slabs, TM×TN per
/// invocation (override constants of the shader).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
}

impl Block {
    /// 128×128 tiles, 16-deep slabs, 8×8 per invocation (256 invocations, 32 KiB).
    pub const LARGE: Block = Block::new(128, 128, 16, 8, 8);

    pub const fn new(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Block {
        Block { bm, bn, bk, tm, tn }
    }

    /// Invocations per workgroup.
    pub fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// The override constants of the tile prelude for this block.
    pub fn constants(&self) -> [(&'static str, f64); 5] {
        [
            ("BM", self.bm as f64),
            ("BN", self.bn as f64),
            ("BK", self.bk as f64),
            ("TM", self.tm as f64),
            ("TN", self.tn as f64),
        ]
    }

    /// Workgroup memory: two slabs of both operands.
    pub fn storage_bytes(&self) -> u64 {
        2 * self.bk as u64 * (self.bm as u64 + self.bn as u64) * 4
    }

    /// Why the shader cannot use this block (beyond the device's limits), if it cannot.
    pub fn obstacle(&self) -> Option<String> {
        let Block { bm, bn, bk, tm, tn } = *self;
        if !matches!(tm, 4 | 8) || !matches!(tn, 4 | 8) {
            return Some(format!("tm = {tm} and tn = {tn} must each be 4 or 8"));
        }
        if bm == 0 || bn == 0 || bk == 0 || bm % tm != 0 || bn % tn != 0 || bk % 4 != 0 {
            return Some(format!(
                "bm, bn must be positive multiples of tm, tn and bk of 4 (got {self})"
            ));
        }
        // Each invocation stages at most 8 quads of each operand per slab.
        let threads = self.threads();
        for (what, quads) in [("A", bm * bk / 4), ("B", bn * bk / 4)] {
            if quads.div_ceil(threads) > 8 {
                return Some(format!(
                    "{what}'s slab of {quads} quads is more than 8 per invocation over \
                     {threads} invocations"
                ));
            }
        }
        None
    }

    /// Errors unless this block runs on `gpu`.
    pub fn check(&self, gpu: &Gpu) -> Result<()> {
        if let Some(why) = self.obstacle() {
            return Err(Error::Unsupported {
                op: "matmul",
                variant: format!("blocked:{self}"),
                why,
            });
        }
        let limits = gpu.limits();
        let (x, y) = (self.bn / self.tn, self.bm / self.tm);
        if x > limits.max_compute_workgroup_size_x || y > limits.max_compute_workgroup_size_y {
            return Err(Error::Limits {
                what: format!("matmul blocked:{self}: workgroup size {x}x{y}"),
                needed: x.max(y) as u64,
                limit: limits.max_compute_workgroup_size_x as u64,
            });
        }
        gpu.check_workgroup("matmul blocked", self.storage_bytes(), self.threads())
    }
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Block { bm, bn, bk, tm, tn } = self;
        write!(f, "{bm}x{bn}x{bk}:{tm}x{tn}")
    }
}

/// Tile of C per workgroup for the tiled variant (override constants of the shader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
}

impl Default for Tile {
    fn default() -> Tile {
        Tile {
            bm: 64,
            bn: 64,
            bk: 16,
        }
    }
}

impl Tile {
    /// Workgroup memory the tiled kernel declares for this tile.
    pub fn storage_bytes(&self) -> u64 {
        (self.bm as u64 + self.bn as u64) * self.bk as u64 * 4
    }

    pub(super) fn check(&self, gpu: &Gpu) -> Result<()> {
        let t = self;
        if t.bm % 4 != 0 || t.bn % 4 != 0 || t.bm == 0 || t.bn == 0 || t.bk == 0 {
            return Err(Error::Unsupported {
                op: "matmul",
                variant: "tiled".into(),
                why: format!("tile {t:?}: bm and bn must be positive multiples of 4, bk positive"),
            });
        }
        gpu.check_workgroup("matmul tiled", t.storage_bytes(), (t.bm / 4) * (t.bn / 4))
    }
}
