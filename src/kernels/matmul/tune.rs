//! `MatmulVariant::Auto`: which variant runs a shape. Shapes are grouped into classes
//! that share every property a choice depends on (the transposes, whether the operands
//! can be read as vec4, whether it is batched, and each of m, n and k to within a factor
//! of two), so that no shape inherits a choice measured for a different one. Each class
//! is decided once per device by timing a fixed list of at most 12 candidates on it;
//! the `Gpu`'s tuning table remembers the winner (and, given a cache file, keeps it).

use super::{Matmul, MatmulVariant, matmul};
use crate::gpu::{Gpu, Result};
use crate::kernels::autotune;

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

/// The fixed list of variants `Auto` times for `desc` on `gpu` (at most 12): those that
/// can run the shape within the device's limits.
pub fn candidates(gpu: &Gpu, desc: &Matmul) -> Vec<MatmulVariant> {
    let mut list = Vec::new();
    if desc.vec4_obstacle().is_none() {
        list.push(MatmulVariant::Reg8x4);
    }
    if !gpu.is_software() && desc.tile.check(gpu).is_ok() {
        list.push(MatmulVariant::Tiled);
    }
    list.extend(
        autotune::blocks(gpu)
            .into_iter()
            .map(MatmulVariant::Blocked),
    );
    if list.is_empty() {
        list.push(MatmulVariant::Naive);
    }
    list
}

/// Times every candidate on scratch buffers of `desc`'s shape (see
/// `autotune::time_each`). Returns (variant, seconds) in candidate order.
pub fn measure_candidates(gpu: &Gpu, desc: &Matmul) -> Result<Vec<(MatmulVariant, f64)>> {
    let last = desc.batch as u64 - 1;
    let len = |stride: u32, rows: u32, cols: u32| last * stride as u64 + rows as u64 * cols as u64;
    let a = autotune::filled(gpu, "tune a", len(desc.stride_a, desc.m, desc.k))?;
    let b = autotune::filled(gpu, "tune b", len(desc.stride_b, desc.k, desc.n))?;
    let c = autotune::filled(gpu, "tune c", len(desc.stride_c, desc.m, desc.n))?;
    autotune::time_each(&candidates(gpu, desc), |variant| {
        let trial = desc.variant(variant);
        gpu.run(|pass| matmul(gpu, pass, &c, &a, &b, None, &trial).map(drop))
    })
}

/// The variant `Auto` runs for `desc`: the table's choice for its class, or the fastest
/// candidate, measured now and recorded.
pub(super) fn pick(gpu: &Gpu, desc: &Matmul) -> Result<MatmulVariant> {
    autotune::choose(
        gpu,
        &tuning_key(desc),
        |text| text.parse().ok(),
        |variant| match variant {
            MatmulVariant::Blocked(block) => block.check(gpu).is_ok(),
            MatmulVariant::Reg8x4 => desc.vec4_obstacle().is_none(),
            MatmulVariant::Tiled => desc.tile.check(gpu).is_ok(),
            MatmulVariant::Naive => true,
            MatmulVariant::Auto => false,
        },
        || measure_candidates(gpu, desc),
        |variant| variant.name(),
    )
}
