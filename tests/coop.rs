//! The tensor-core matmul (`coop8`, `coop16`): f16 operands in cooperative matrices, f32
//! accumulators, against the f32 reference on the same f16-rounded inputs, on awkward
//! shapes, every layout, both output types, batches, broadcast operands and the epilogues.
//! It runs where the adapter lists its configuration (Mesa 26 lavapipe: 8x8x8; CI runs
//! this binary there with `REZERO_REQUIRE_COOP=1`, which fails it where none is listed).
//! Elsewhere every test checks that the variant is refused with the reason, and that
//! `Auto` never offers it.

mod common;

use common::precision::check_matmul_f16;
use rezero::Gpu;
use rezero::kernels::Dtype;
use rezero::kernels::bias::Activation;
use rezero::kernels::matmul::{CoopSize, Matmul, MatmulVariant, candidates, matmul};

/// The shared device when it lists 8x8x8 f16 → f32 matrices. Otherwise checks the refusal
/// and returns None (failing when `REZERO_REQUIRE_COOP=1`).
fn coop_gpu() -> Option<&'static Gpu> {
    let gpu = common::gpu()?;
    if CoopSize::available(gpu).contains(&CoopSize::Eight) {
        return Some(gpu);
    }
    assert!(
        std::env::var_os("REZERO_REQUIRE_COOP").is_none_or(|v| v != "1"),
        "REZERO_REQUIRE_COOP=1 but '{}' lists no 8x8x8 f16 cooperative matrix ({})",
        gpu.info().name,
        rezero::kernels::matmul::describe_cooperative(gpu.cooperative_matrices())
    );
    let desc = Matmul::new(8, 8, 8)
        .dtypes(Dtype::F16, Dtype::F32)
        .variant(MatmulVariant::Coop(CoopSize::Eight));
    let (a, c) = (gpu.zeroed("a", 128), gpu.zeroed("c", 256));
    let err =
        pollster::block_on(gpu.run(|pass| matmul(gpu, pass, &c, &a, &a, None, &desc).map(drop)))
            .unwrap_err()
            .to_string();
    assert!(err.contains("lists no 8x8x8 cooperative matrix"), "{err}");
    assert!(!candidates(gpu, &desc).contains(&desc.variant));
    eprintln!(
        "coop: '{}' lists no cooperative matrices; the refusal was checked",
        gpu.info().name
    );
    None
}

fn coop8(m: u32, n: u32, k: u32, output: Dtype) -> Matmul {
    Matmul::new(m, n, k)
        .dtypes(Dtype::F16, output)
        .variant(MatmulVariant::Coop(CoopSize::Eight))
}

#[test]
fn coop8_awkward_shapes_all_layouts_both_outputs() {
    let Some(gpu) = coop_gpu() else { return };
    // One element; edges in every dimension; several workgroups and K slabs.
    for (m, n, k) in [(1, 1, 1), (33, 17, 7), (68, 36, 20), (70, 66, 130)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for output in [Dtype::F32, Dtype::F16] {
                let desc = coop8(m, n, k, output).trans_a(ta).trans_b(tb);
                check_matmul_f16(gpu, desc, false, None);
            }
        }
    }
}

#[test]
fn coop8_epilogues_batches_and_broadcast() {
    let Some(gpu) = coop_gpu() else { return };
    for output in [Dtype::F32, Dtype::F16] {
        let desc = coop8(17, 12, 40, output);
        check_matmul_f16(gpu, desc.batch(3).accumulate(true), true, None);
        let shared = coop8(9, 16, 12, output).batch(3).strides(9 * 12, 0, 9 * 16);
        check_matmul_f16(gpu, shared, true, None);
        for act in [Activation::Relu, Activation::Gelu] {
            check_matmul_f16(gpu, desc.trans_b(true), true, Some(act));
        }
    }
}

#[test]
fn auto_offers_coop_only_for_f16_operands_on_a_listed_size() {
    let Some(gpu) = coop_gpu() else { return };
    let f16 = Matmul::new(256, 256, 256).dtypes(Dtype::F16, Dtype::F32);
    let coop = MatmulVariant::Coop(CoopSize::Eight);
    assert!(candidates(gpu, &f16).contains(&coop));
    assert!(!candidates(gpu, &Matmul::new(256, 256, 256)).contains(&coop));
    let sixteen = MatmulVariant::Coop(CoopSize::Sixteen);
    assert_eq!(
        candidates(gpu, &f16).contains(&sixteen),
        CoopSize::Sixteen.listed(gpu)
    );
    // f32 operands are refused by the variant itself, with the reason.
    let (a, c) = (gpu.zeroed("a", 1024), gpu.zeroed("c", 1024));
    let f32_coop = Matmul::new(8, 8, 8).variant(coop);
    let err = pollster::block_on(
        gpu.run(|pass| matmul(gpu, pass, &c, &a, &a, None, &f32_coop).map(drop)),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("multiply f16 operands"), "{err}");
}
