//! The tensor-core matmul (`coop8`, `coop16`): f16 operands in cooperative matrices, f32
//! accumulators, against the f32 reference on the same f16-rounded inputs, on awkward
//! shapes, every layout, both output types, batches, broadcast operands and the epilogues.
//! Each size runs where the adapter lists its configuration (Mesa 26 lavapipe: 8x8x8;
//! CI runs this binary there with `REZERO_REQUIRE_COOP=1`, which fails it where none is
//! listed). Where a size is not listed the tests check that it is refused with the reason
//! and that `Auto` never offers it. The workgroup is sized for four subgroups; a device that
//! cuts it into fewer (several rounds) or more (spare subgroups) is played by telling a
//! second `Gpu` on the same device another subgroup size.

mod common;

use common::precision::check_matmul_f16;
use rezero::Gpu;
use rezero::kernels::Dtype;
use rezero::kernels::bias::Activation;
use rezero::kernels::matmul::{CoopSize, Matmul, MatmulVariant, candidates, matmul};

/// The shared device and the tensor-core sizes it lists. Checks that each size it does
/// not list is refused with the reason; fails when it lists none and
/// `REZERO_REQUIRE_COOP=1`.
fn coop_gpu() -> Option<(&'static Gpu, Vec<CoopSize>)> {
    let gpu = common::gpu()?;
    let sizes = CoopSize::available(gpu);
    assert!(
        !sizes.is_empty() || std::env::var_os("REZERO_REQUIRE_COOP").is_none_or(|v| v != "1"),
        "REZERO_REQUIRE_COOP=1 but '{}' lists no cooperative matrix rezero runs ({})",
        gpu.info().name,
        rezero::kernels::matmul::describe_cooperative(gpu.cooperative_matrices())
    );
    for size in [CoopSize::Eight, CoopSize::Sixteen] {
        if sizes.contains(&size) {
            continue;
        }
        let s = size.s();
        let desc = Matmul::new(s, s, s)
            .dtypes(Dtype::F16, Dtype::F32)
            .variant(MatmulVariant::Coop(size));
        let (a, c) = (gpu.zeroed("a", 512), gpu.zeroed("c", 1024));
        let err = pollster::block_on(
            gpu.run(|pass| matmul(gpu, pass, &c, &a, &a, None, &desc).map(drop)),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("lists no {s}x{s}x{s} cooperative matrix")),
            "{err}"
        );
        assert!(!candidates(gpu, &desc).contains(&desc.variant));
        eprintln!(
            "coop: '{}' does not list {s}x{s}x{s}; its refusal was checked",
            gpu.info().name
        );
    }
    if sizes.is_empty() {
        return None;
    }
    Some((gpu, sizes))
}

fn coop(size: CoopSize, m: u32, n: u32, k: u32, output: Dtype) -> Matmul {
    Matmul::new(m, n, k)
        .dtypes(Dtype::F16, output)
        .variant(MatmulVariant::Coop(size))
}

#[test]
fn coop_awkward_shapes_all_layouts_both_outputs() {
    let Some((gpu, sizes)) = coop_gpu() else {
        return;
    };
    for size in sizes {
        // One element; edges in every dimension; several workgroups and K slabs.
        for (m, n, k) in [(1, 1, 1), (33, 17, 7), (68, 36, 20), (70, 66, 130)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for output in [Dtype::F32, Dtype::F16] {
                    let desc = coop(size, m, n, k, output).trans_a(ta).trans_b(tb);
                    check_matmul_f16(gpu, desc, false, None);
                }
            }
        }
    }
}

#[test]
fn coop_epilogues_batches_and_broadcast() {
    let Some((gpu, sizes)) = coop_gpu() else {
        return;
    };
    for size in sizes {
        for output in [Dtype::F32, Dtype::F16] {
            let desc = coop(size, 17, 12, 40, output);
            check_matmul_f16(gpu, desc.batch(3).accumulate(true), true, None);
            let shared = coop(size, 9, 16, 12, output)
                .batch(3)
                .strides(9 * 12, 0, 9 * 16);
            check_matmul_f16(gpu, shared, true, None);
            for act in [Activation::Relu, Activation::Gelu] {
                check_matmul_f16(gpu, desc.trans_b(true), true, Some(act));
            }
        }
    }
}

/// A second `Gpu` on `gpu`'s device that believes its subgroups hold `size` invocations:
/// the launcher then sizes the workgroup 4·`size`, which the device cuts into subgroups of
/// its own size.
fn believing_subgroups_of(gpu: &Gpu, size: u32) -> Gpu {
    let mut info = gpu.info().clone();
    info.subgroup_min_size = size;
    info.subgroup_max_size = size;
    Gpu::from_device(gpu.device.clone(), gpu.queue.clone(), info)
        .with_cooperative_matrices(gpu.cooperative_matrices().to_vec())
}

#[test]
fn coop_is_right_with_fewer_and_more_subgroups_than_blocks() {
    let Some((gpu, sizes)) = coop_gpu() else {
        return;
    };
    let actual = gpu.info().subgroup_max_size;
    // Half the subgroups (two rounds of blocks) and twice as many (spare subgroups).
    for believed in [actual / 2, actual * 2] {
        let posing = believing_subgroups_of(gpu, believed.max(1));
        for &size in &sizes {
            for output in [Dtype::F32, Dtype::F16] {
                let desc = coop(size, 70, 66, 130, output).trans_b(true);
                check_matmul_f16(&posing, desc, true, None);
                check_matmul_f16(&posing, desc.batch(2).accumulate(true), false, None);
            }
        }
    }
}

#[test]
fn auto_offers_coop_only_for_f16_operands_on_a_listed_size() {
    let Some((gpu, sizes)) = coop_gpu() else {
        return;
    };
    let f16 = Matmul::new(256, 256, 256).dtypes(Dtype::F16, Dtype::F32);
    for size in [CoopSize::Eight, CoopSize::Sixteen] {
        let variant = MatmulVariant::Coop(size);
        assert_eq!(
            candidates(gpu, &f16).contains(&variant),
            sizes.contains(&size)
        );
        assert!(!candidates(gpu, &Matmul::new(256, 256, 256)).contains(&variant));
    }
    // f32 operands are refused by the variant itself, with the reason.
    let (a, c) = (gpu.zeroed("a", 1024), gpu.zeroed("c", 1024));
    let f32_coop = Matmul::new(16, 16, 16).variant(MatmulVariant::Coop(sizes[0]));
    let err = pollster::block_on(
        gpu.run(|pass| matmul(gpu, pass, &c, &a, &a, None, &f32_coop).map(drop)),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("multiply f16 operands"), "{err}");
}
