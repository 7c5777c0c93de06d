//! matmul: every variant against the CPU reference on awkward shapes, transposes,
//! batches, strides, bias and accumulation.

mod common;

use common::{assert_close, atol_for};
use rezero::cpu;
use rezero::kernels::autotune;
use rezero::kernels::matmul::{Block, Matmul, MatmulVariant, Tile, matmul, tuning_key};

/// Runs `desc` with `variant` on seeded inputs and compares with the CPU reference.
fn check(desc: Matmul, with_bias: bool) {
    let gpu = require_gpu!();
    check_on(gpu, desc, with_bias);
}

fn check_on(gpu: &rezero::Gpu, desc: Matmul, with_bias: bool) {
    let last = desc.batch as usize - 1;
    let len_a = last * desc.stride_a as usize + (desc.m * desc.k) as usize;
    let len_b = last * desc.stride_b as usize + (desc.k * desc.n) as usize;
    let len_c = last * desc.stride_c as usize + (desc.m * desc.n) as usize;
    let a = cpu::seeded(1, len_a, -1.0, 1.0);
    let b = cpu::seeded(2, len_b, -1.0, 1.0);
    let c0 = cpu::seeded(3, len_c, -1.0, 1.0);
    let bias = cpu::seeded(4, desc.n as usize, -1.0, 1.0);
    let mut want = c0.clone();
    cpu::matmul::matmul(&mut want, &a, &b, with_bias.then_some(&bias[..]), &desc);
    let (ga, gb, gc, gbias) = (
        gpu.upload("a", &a),
        gpu.upload("b", &b),
        gpu.upload("c", &c0),
        gpu.upload("bias", &bias),
    );
    pollster::block_on(gpu.run(|pass| {
        matmul(gpu, pass, &gc, &ga, &gb, with_bias.then_some(&gbias), &desc).map(drop)
    }))
    .unwrap();
    let got = pollster::block_on(gpu.read_f32(&gc, len_c)).unwrap();
    let what = format!("{} bias {with_bias}", common::matmul_label(&desc));
    assert_close(&what, &got, &want, atol_for(desc.k as usize), 1e-4);
}

const AWKWARD: [(u32, u32, u32); 8] = [
    (1, 1, 1),
    (3, 5, 7),
    (17, 33, 65),
    (33, 17, 3),
    (65, 1, 33),
    (1, 65, 17),
    (64, 64, 64),
    (70, 66, 130),
];

#[test]
fn naive_and_tiled_awkward_shapes_all_layouts() {
    for variant in [MatmulVariant::Naive, MatmulVariant::Tiled] {
        for (m, n, k) in AWKWARD {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                check(
                    Matmul::new(m, n, k)
                        .trans_a(ta)
                        .trans_b(tb)
                        .variant(variant),
                    false,
                );
            }
        }
    }
}

#[test]
fn register_blocked_aligned_contiguous_dims_awkward_others() {
    // The contiguous dimension of each operand must be a multiple of 4; the rest is free.
    for (ta, tb, m, n, k) in [
        (false, false, 17, 36, 20),
        (false, false, 1, 4, 4),
        (false, false, 65, 132, 68),
        (true, false, 20, 12, 33),
        (true, false, 4, 12, 7),
        (false, true, 33, 17, 12),
        (true, true, 8, 5, 36),
        (true, true, 132, 7, 20),
    ] {
        check(
            Matmul::new(m, n, k)
                .trans_a(ta)
                .trans_b(tb)
                .variant(MatmulVariant::Reg8x4),
            false,
        );
    }
}

/// Every variant with no configuration, and two blocked tiles.
fn all_variants() -> Vec<MatmulVariant> {
    let mut all = MatmulVariant::SIMPLE.to_vec();
    all.push(MatmulVariant::Blocked(Block::new(32, 32, 4, 4, 4)));
    all.push(MatmulVariant::Blocked(Block::new(64, 32, 8, 8, 4)));
    all
}

#[test]
fn bias_accumulate_and_batches() {
    for variant in all_variants() {
        for batch in [1, 3] {
            let desc = Matmul::new(17, 12, 24)
                .batch(batch)
                .accumulate(true)
                .variant(variant);
            check(desc, true);
            check(
                Matmul::new(33, 8, 16)
                    .batch(batch)
                    .trans_b(true)
                    .variant(variant),
                true,
            );
        }
    }
}

#[test]
fn broadcast_operand_with_zero_stride() {
    for variant in all_variants() {
        // B shared by all three batches (a weight matrix), A and C per batch.
        let desc = Matmul::new(9, 16, 12)
            .batch(3)
            .strides(9 * 12, 0, 9 * 16)
            .variant(variant);
        check(desc, false);
    }
}

#[test]
fn auto_runs_a_correct_variant_before_and_after_a_tune() {
    let Some(_) = common::gpu() else { return };
    // A device of its own: its untuned classes are this test's alone.
    let gpu = &pollster::block_on(rezero::Gpu::new(&Default::default())).unwrap();
    let shapes = [
        (Matmul::new(64, 64, 64), true),
        (Matmul::new(17, 33, 65), false),
    ];
    for (desc, bias) in shapes {
        check_on(gpu, desc, bias); // the adapter's default
    }
    let keys = ["matmul/nn/s/m32/n64/k128/b1", "matmul/nn/v4/m64/n64/k64/b1"];
    assert_eq!(gpu.untuned_keys(), keys);
    let requests = autotune::take_untuned(gpu);
    pollster::block_on(autotune::tune(gpu, &requests)).unwrap();
    for (desc, bias) in shapes {
        check_on(gpu, desc, bias); // the winner, kept per shape class
    }
    for key in keys {
        assert!(gpu.tuned(key).is_some(), "{key}");
    }
}

#[test]
fn auto_never_inherits_a_choice_made_for_another_shape() {
    // The old classes grouped shapes by their FLOPs alone, so a thin convolution GEMM
    // (16 x 131072 x 144) ran whatever had won for a square product of the same work.
    let square = Matmul::new(1024, 1024, 288);
    let thin = Matmul::new(16, 131072, 144);
    assert_eq!(square.flops(), thin.flops());
    assert_ne!(tuning_key(&square), tuning_key(&thin));
    // Shapes differing in any dimension by more than 2x, in transposes, alignment or
    // batching never share a class; shapes within 2x in every dimension do.
    let base = Matmul::new(100, 200, 300);
    for other in [
        Matmul::new(300, 200, 300),
        Matmul::new(100, 600, 300),
        Matmul::new(100, 200, 900),
        base.trans_a(true),
        base.trans_b(true),
        Matmul::new(100, 200, 301),
        base.batch(2),
    ] {
        assert_ne!(tuning_key(&base), tuning_key(&other), "{other:?}");
    }
    assert_eq!(tuning_key(&base), tuning_key(&Matmul::new(120, 252, 260)));

    // A device that knows a (deliberately bad) choice for one class uses it there and
    // nowhere else. Its own Gpu: the table must hold only what this test puts in it.
    let Some(_) = common::gpu() else { return };
    let gpu = pollster::block_on(rezero::Gpu::new(&rezero::GpuOptions::default())).unwrap();
    let (a, b, c) = (
        Matmul::new(64, 64, 64),
        Matmul::new(8, 4096, 8),
        Matmul::new(4096, 8, 8),
    );
    gpu.set_tuned(&tuning_key(&a), "naive");
    let (x, y, out) = (
        gpu.zeroed_f32("x", 4096 * 8),
        gpu.zeroed_f32("y", 4096 * 8),
        gpu.zeroed_f32("out", 4096 * 8),
    );
    let run = |desc: &Matmul| {
        let mut used = MatmulVariant::Auto;
        pollster::block_on(gpu.run(|pass| {
            used = matmul(&gpu, pass, &out, &x, &y, None, desc)?;
            Ok(())
        }))
        .unwrap();
        used
    };
    assert_eq!(run(&a), MatmulVariant::Naive);
    for desc in [b, c] {
        assert_ne!(run(&desc), MatmulVariant::Naive, "{desc:?} inherited");
        let key = tuning_key(&desc);
        assert!(gpu.untuned_keys().contains(&key), "{key} was not noted");
    }
}

#[test]
fn blocked_tiles_on_awkward_shapes_all_layouts() {
    // Several configurations (each pipeline takes seconds to build on lavapipe, so few):
    // 4x4 per invocation with fewer quads a slab than invocations, 8x4 with two quads a
    // slab; square and oblong tiles, shallow slabs. Shapes cover m, n, k of 1, below, at
    // and above a tile, aligned (the vec4 entry point) and not.
    let shapes = [
        (1, 1, 1),
        (31, 33, 15),
        (33, 31, 17),
        (32, 32, 16),
        (4, 8, 12),
        (36, 68, 20),
        (70, 66, 130),
    ];
    for block in [Block::new(32, 32, 4, 4, 4), Block::new(64, 32, 8, 8, 4)] {
        for (m, n, k) in shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let desc = Matmul::new(m, n, k)
                    .trans_a(ta)
                    .trans_b(tb)
                    .variant(MatmulVariant::Blocked(block));
                check(desc, (m + n) % 2 == 1);
            }
        }
    }
    // The large tile of real GPUs, on one shape that spans two tiles each way.
    let large = MatmulVariant::Blocked(Block::LARGE);
    check(Matmul::new(200, 132, 40).trans_b(true).variant(large), true);
}

#[test]
fn blocked_tile_checks() {
    let gpu = require_gpu!();
    for (text, ok) in [
        ("blocked", true),
        ("blocked:128x128x16:8x8", true),
        ("blocked:64x64x16:4x4", true),
        ("blocked:64x64x16:6x8", false), // tm not 4 or 8
        ("blocked:60x64x16:8x8", false), // bm not a multiple of tm
        ("blocked:64x64x2:8x8", false),  // bk not a multiple of 4
        ("blocked:16x16x4:4x4", true),   // one quad of each operand per invocation
        ("blocked:32x32x64:8x8", false), // 512 quads over 16 invocations
        ("blocked:64x64", false),
        ("block", false),
    ] {
        let parsed = text.parse::<MatmulVariant>();
        assert_eq!(parsed.is_ok(), ok, "{text}: {parsed:?}");
        if let Ok(variant) = parsed {
            assert_eq!(variant.name().parse::<MatmulVariant>().unwrap(), variant);
        }
    }
    // A tile the device cannot hold is a limits error before anything is recorded.
    let storage = gpu.limits().max_compute_workgroup_storage_size as u64;
    let big = Block::new(256, 256, 64, 8, 8);
    assert!(big.storage_bytes() > storage);
    let buf = gpu.zeroed_f32("buf", 64);
    let desc = Matmul::new(4, 4, 4).variant(MatmulVariant::Blocked(big));
    let err = pollster::block_on(
        gpu.run(|pass| matmul(gpu, pass, &buf, &buf, &buf, None, &desc).map(drop)),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            rezero::Error::Limits { .. } | rezero::Error::Unsupported { .. }
        ),
        "{err}"
    );
}

#[test]
fn tiled_with_other_tile_sizes() {
    // The tile is made of override constants: each shape builds its own pipeline.
    for tile in [
        Tile {
            bm: 32,
            bn: 32,
            bk: 8,
        },
        Tile {
            bm: 64,
            bn: 32,
            bk: 32,
        },
        Tile {
            bm: 16,
            bn: 64,
            bk: 4,
        },
    ] {
        for (m, n, k) in [(33, 65, 17), (70, 9, 66)] {
            for (ta, tb) in [(false, false), (true, true)] {
                check(
                    Matmul::new(m, n, k)
                        .trans_a(ta)
                        .trans_b(tb)
                        .variant(MatmulVariant::Tiled)
                        .tile(tile),
                    true,
                );
            }
        }
    }
}
