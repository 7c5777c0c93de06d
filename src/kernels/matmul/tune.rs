//! `MatmulVariant::Auto`: which variant runs a shape. Shapes are grouped into classes
//! that share every property a choice depends on (the transposes, whether the operands
//! can be read as vec4, whether it is batched, and each of m, n and k to within a factor
//! of two), so that no shape inherits a choice measured for a different one. Each class
//! is decided once per device by timing a fixed list of at most 12 candidates on it;
//! the `Gpu`'s tuning table remembers the winner (and, given a cache file, keeps it).

use std::time::Instant;

use super::{Block, Matmul, MatmulVariant, matmul};
use crate::gpu::{Gpu, Result};
use crate::kernels::elementwise;

/// The class of `desc` in the tuning table, e.g. `matmul/nt/v4/m4096/n2048/k512/b1`: each
/// dimension rounded up to a power of two, batched or not.
pub fn tuning_key(desc: &Matmul) -> String {
    let class = |d: u32| d.max(1).next_power_of_two();
    format!(
        "matmul/{}{}/{}/m{}/n{}/k{}/b{}",
        if desc.trans_a { 't' } else { 'n' },
        if desc.trans_b { 't' } else { 'n' },
        if desc.vec4_obstacle().is_none() {
            "v4"
        } else {
            "s"
        },
        class(desc.m),
        class(desc.n),
        class(desc.k),
        if desc.batch > 1 { "n" } else { "1" },
    )
}

/// The blocked tiles tried on GPUs: large tiles for large products, narrow ones for the
/// thin products of small layers and convolutions.
const GPU_BLOCKS: [Block; 8] = [
    Block::new(128, 128, 16, 8, 8),
    Block::new(128, 128, 8, 8, 8),
    Block::new(128, 64, 16, 8, 8),
    Block::new(64, 128, 16, 8, 8),
    Block::new(64, 64, 16, 8, 8),
    Block::new(64, 64, 16, 4, 4),
    Block::new(32, 64, 16, 4, 4),
    Block::new(64, 32, 16, 4, 4),
];

/// The blocked tiles tried on software adapters, where every barrier switches between all
/// of a workgroup's SIMD groups: big register blocks (on lavapipe 128x128x16:8x8 ran a
/// 1024³ product 1.4x as fast as reg8x4; BENCHMARKS.md).
const SOFTWARE_BLOCKS: [Block; 2] = [Block::new(128, 128, 16, 8, 8), Block::new(64, 64, 16, 8, 8)];

/// The fixed list of variants `Auto` times for `desc` on `gpu` (at most 12): those that
/// can run the shape within the device's limits.
pub fn candidates(gpu: &Gpu, desc: &Matmul) -> Vec<MatmulVariant> {
    let blocks: &[Block] = if gpu.is_software() {
        &SOFTWARE_BLOCKS
    } else {
        &GPU_BLOCKS
    };
    let mut list = Vec::new();
    if desc.vec4_obstacle().is_none() {
        list.push(MatmulVariant::Reg8x4);
    }
    if !gpu.is_software() && desc.tile.check(gpu).is_ok() {
        list.push(MatmulVariant::Tiled);
    }
    for block in blocks {
        if block.check(gpu).is_ok() {
            list.push(MatmulVariant::Blocked(*block));
        }
    }
    if list.is_empty() {
        list.push(MatmulVariant::Naive);
    }
    list
}

/// Times every candidate on scratch buffers of `desc`'s shape filled with 0.5 (never
/// zeros): the fastest of at least 2 runs, and of up to 20 within 20 ms, after a warm-up.
/// Returns (variant, seconds) in candidate order.
pub fn measure_candidates(gpu: &Gpu, desc: &Matmul) -> Result<Vec<(MatmulVariant, f64)>> {
    let last = desc.batch as u64 - 1;
    let len = |stride: u32, rows: u32, cols: u32| last * stride as u64 + rows as u64 * cols as u64;
    let filled = |label: &str, len: u64| -> Result<wgpu::Buffer> {
        let buffer = gpu.zeroed_f32(label, len as usize);
        gpu.run(|pass| elementwise::fill(gpu, pass, &buffer, 0.5, len as u32))?;
        Ok(buffer)
    };
    let a = filled("tune a", len(desc.stride_a, desc.m, desc.k))?;
    let b = filled("tune b", len(desc.stride_b, desc.k, desc.n))?;
    let c = filled("tune c", len(desc.stride_c, desc.m, desc.n))?;
    let mut times = Vec::new();
    for variant in candidates(gpu, desc) {
        let trial = desc.variant(variant);
        let once = || gpu.run(|pass| matmul(gpu, pass, &c, &a, &b, None, &trial).map(drop));
        once()?;
        let (mut fastest, mut spent, mut runs) = (f64::INFINITY, 0.0, 0);
        while runs < 2 || (runs < 20 && spent < 0.02) {
            let start = Instant::now();
            once()?;
            let t = start.elapsed().as_secs_f64();
            (fastest, spent, runs) = (fastest.min(t), spent + t, runs + 1);
        }
        times.push((variant, fastest));
    }
    Ok(times)
}

/// The variant `Auto` runs for `desc`: the table's entry for its class, or the fastest
/// candidate, measured now and recorded.
pub(super) fn pick(gpu: &Gpu, desc: &Matmul) -> Result<MatmulVariant> {
    let key = tuning_key(desc);
    if let Some(variant) = gpu.tuned(&key).and_then(|name| name.parse().ok()) {
        let usable = match variant {
            MatmulVariant::Blocked(block) => block.check(gpu).is_ok(),
            MatmulVariant::Reg8x4 => desc.vec4_obstacle().is_none(),
            MatmulVariant::Tiled => desc.tile.check(gpu).is_ok(),
            _ => true,
        };
        if usable {
            return Ok(variant);
        }
    }
    let times = measure_candidates(gpu, desc)?;
    let best = times
        .iter()
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .map(|&(v, _)| v)
        .unwrap_or(MatmulVariant::Naive);
    gpu.set_tuned(&key, &best.name());
    Ok(best)
}
