//! `MatmulVariant::Auto`: which variant runs a shape. Shapes are grouped into classes
//! that share every property a choice depends on (the transposes, whether the operands
//! can be read as vec4, whether it is batched, and each of m, n and k to within a factor
//! of two), so that no shape inherits a choice measured for a different one. A class is
//! decided by timing a fixed list of at most 12 candidates on it when a tune is asked for
//! (`autotune::tune`); the `Gpu`'s tuning table remembers the winner (and, given a cache
//! file, keeps it). Until then `Auto` runs a fixed default for the adapter's kind.

use super::{Block, CoopSize, Matmul, MatmulVariant, matmul};
use crate::gpu::{Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::autotune;

/// The class of `desc` in the tuning table, e.g. `matmul/nt/v4/m4096/n2048/k512/b1`: each
/// dimension rounded up to a power of two, batched or not; f16 products say so after
/// `matmul` (`matmul-f16` for f16 operands, `matmul-f16-out16` for an f16 C as well).
pub fn tuning_key(desc: &Matmul) -> String {
    let class = |d: u32| d.max(1).next_power_of_two();
    let dtypes = match (desc.operands, desc.output) {
        (Dtype::F32, Dtype::F32) => "",
        (Dtype::F16, Dtype::F16) => "-f16-out16",
        (Dtype::F16, _) => "-f16",
        (Dtype::F32, Dtype::F16) => "-out16",
    };
    format!(
        "matmul{dtypes}/{}{}/{}/m{}/n{}/k{}/b{}",
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
    list.extend(
        CoopSize::available(gpu)
            .into_iter()
            .filter(|size| size.check(gpu, desc).is_ok())
            .map(MatmulVariant::Coop),
    );
    if list.is_empty() {
        list.push(MatmulVariant::Naive);
    }
    list
}

/// Times every candidate on scratch buffers of `desc`'s shape (see
/// `autotune::time_each`). Returns (variant, seconds) in candidate order.
pub async fn measure_candidates(gpu: &Gpu, desc: &Matmul) -> Result<Vec<(MatmulVariant, f64)>> {
    const OP: &str = "matmul tuning";
    let [a, b, c] = desc.lengths(OP)?;
    let (operands, output) = (desc.operands, desc.output);
    for (len, dtype) in [(a, operands), (b, operands), (c, output)] {
        gpu.check_binding(OP, len * dtype.bytes())?;
    }
    let a = autotune::filled_as(gpu, "tune a", a, operands).await?;
    let b = autotune::filled_as(gpu, "tune b", b, operands).await?;
    let c = autotune::filled_as(gpu, "tune c", c, output).await?;
    let (a, b, c) = (&a, &b, &c);
    autotune::time_each(&candidates(gpu, desc), |variant| {
        let trial = desc.variant(variant);
        gpu.run(move |pass| matmul(gpu, pass, c, a, b, None, &trial).map(drop))
    })
    .await
}

/// The variant `Auto` runs for `desc` when the table has no choice for its class: on a
/// software adapter the register-blocked kernel for products it can read as vec4 and small
/// outputs, 128×128 blocks for large ones (lavapipe's measured winners); on a GPU 128×128
/// blocks for large products, 64×64 for middling and 64×64 of 4×4 for small ones; in every
/// case the first that fits the device, the naive kernel last.
pub fn default_variant(gpu: &Gpu, desc: &Matmul) -> MatmulVariant {
    let vec4 = desc.vec4_obstacle().is_none();
    let outputs = desc.m as u64 * desc.n as u64;
    let mut preference = Vec::new();
    if gpu.is_software() {
        if vec4 && outputs < 128 * 128 {
            preference.push(MatmulVariant::Reg8x4);
        }
        preference.push(MatmulVariant::Blocked(Block::LARGE));
        preference.push(MatmulVariant::Blocked(Block::new(64, 64, 16, 8, 8)));
    } else {
        if outputs >= 1024 * 1024 {
            preference.push(MatmulVariant::Blocked(Block::LARGE));
        }
        if outputs >= 256 * 256 {
            preference.push(MatmulVariant::Blocked(Block::new(64, 64, 16, 8, 8)));
        }
        preference.push(MatmulVariant::Blocked(Block::new(64, 64, 16, 4, 4)));
    }
    preference
        .into_iter()
        .find(|&v| usable(gpu, desc, v))
        .unwrap_or(MatmulVariant::Naive)
}

/// Whether `variant` can run `desc` on `gpu`.
fn usable(gpu: &Gpu, desc: &Matmul, variant: MatmulVariant) -> bool {
    match variant {
        MatmulVariant::Blocked(block) => block.check(gpu).is_ok(),
        MatmulVariant::Reg8x4 => desc.vec4_obstacle().is_none(),
        MatmulVariant::Tiled => desc.tile.check(gpu).is_ok(),
        MatmulVariant::Naive => true,
        MatmulVariant::Coop(size) => size.check(gpu, desc).is_ok(),
        MatmulVariant::Auto => false,
    }
}

/// The variant `Auto` runs for `desc`: the table's choice for its class, or
/// [`default_variant`] (the class noted as untuned; see `autotune`).
pub(super) fn pick(gpu: &Gpu, desc: &Matmul) -> MatmulVariant {
    autotune::choose(
        gpu,
        &tuning_key(desc),
        |text| text.parse().ok(),
        |variant| usable(gpu, desc, variant),
        default_variant(gpu, desc),
        autotune::TuneRequest::Matmul(*desc),
    )
}
