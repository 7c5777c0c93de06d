//! What the `Auto` variants of matmul and conv2d share: the blocked tiles worth trying on
//! each kind of adapter, the timing that ranks a fixed list of candidates, and the rule
//! that uses the tuning table's choice when the device can run it and measures otherwise.

use std::time::Instant;

use super::elementwise;
use super::matmul::Block;
use crate::gpu::{Gpu, Result};

/// Blocked tiles tried on GPUs: large tiles for large products, narrow ones for the thin
/// products of small layers and convolutions.
pub const GPU_BLOCKS: [Block; 8] = [
    Block::new(128, 128, 16, 8, 8),
    Block::new(128, 128, 8, 8, 8),
    Block::new(128, 64, 16, 8, 8),
    Block::new(64, 128, 16, 8, 8),
    Block::new(64, 64, 16, 8, 8),
    Block::new(64, 64, 16, 4, 4),
    Block::new(32, 64, 16, 4, 4),
    Block::new(64, 32, 16, 4, 4),
];

/// Blocked tiles tried on software adapters, where every barrier switches between all of a
/// workgroup's SIMD groups: big register blocks (on lavapipe 128x128x16:8x8 ran a 1024³
/// product 1.3-1.4x as fast as reg8x4; BENCHMARKS.md).
pub const SOFTWARE_BLOCKS: [Block; 2] =
    [Block::new(128, 128, 16, 8, 8), Block::new(64, 64, 16, 8, 8)];

/// The blocked tiles `Auto` tries on `gpu` that fit its limits.
pub fn blocks(gpu: &Gpu) -> Vec<Block> {
    let list: &[Block] = if gpu.is_software() {
        &SOFTWARE_BLOCKS
    } else {
        &GPU_BLOCKS
    };
    list.iter()
        .copied()
        .filter(|b| b.check(gpu).is_ok())
        .collect()
}

/// A zeroed buffer of `len` floats filled with 0.5: what candidates are timed on (never
/// zeros, which can run faster than real data).
pub(crate) fn filled(gpu: &Gpu, label: &str, len: u64) -> Result<wgpu::Buffer> {
    let len = len.max(1);
    let buffer = gpu.zeroed_f32(label, len as usize);
    gpu.run(|pass| elementwise::fill(gpu, pass, &buffer, 0.5, len.min(u32::MAX as u64) as u32))?;
    Ok(buffer)
}

/// Times `run` (one submitted, waited-for dispatch set) for every candidate: the fastest of
/// at least 2 runs, and of up to 20 within 20 ms, after a warm-up run that also builds the
/// pipelines. Returns (candidate, seconds) in candidate order.
pub(crate) fn time_each<V: Copy>(
    candidates: &[V],
    run: impl Fn(V) -> Result<()>,
) -> Result<Vec<(V, f64)>> {
    let mut times = Vec::new();
    for &candidate in candidates {
        run(candidate)?;
        let (mut fastest, mut spent, mut runs) = (f64::INFINITY, 0.0, 0);
        while runs < 2 || (runs < 20 && spent < 0.02) {
            let start = Instant::now();
            run(candidate)?;
            let t = start.elapsed().as_secs_f64();
            (fastest, spent, runs) = (fastest.min(t), spent + t, runs + 1);
        }
        times.push((candidate, fastest));
    }
    Ok(times)
}

/// The fastest of measured (candidate, seconds), if any.
pub fn fastest<V: Copy>(times: &[(V, f64)]) -> Option<V> {
    times
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|&(v, _)| v)
}

/// The variant for tuning class `key`: the table's choice when it parses and `usable`
/// accepts it, otherwise the fastest of `measure()`, recorded under `key` by `name`.
pub(crate) fn choose<V: Copy>(
    gpu: &Gpu,
    key: &str,
    parse: impl Fn(&str) -> Option<V>,
    usable: impl Fn(V) -> bool,
    measure: impl FnOnce() -> Result<Vec<(V, f64)>>,
    name: impl Fn(V) -> String,
) -> Result<V> {
    if let Some(choice) = gpu.tuned(key).and_then(|text| parse(&text)) {
        if usable(choice) {
            return Ok(choice);
        }
    }
    let times = gpu.unprofiled(measure)?;
    let best = fastest(&times).expect("every tuned kernel has a candidate");
    gpu.set_tuned(key, &name(best));
    Ok(best)
}
