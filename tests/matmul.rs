//! matmul: every variant against the CPU reference on awkward shapes, transposes,
//! batches, strides, bias and accumulation.

mod common;

use common::{assert_close, atol_for};
use rezero::cpu;
use rezero::kernels::matmul::{Matmul, MatmulVariant, Tile, matmul};

/// Runs `desc` with `variant` on seeded inputs and compares with the CPU reference.
fn check(desc: Matmul, with_bias: bool) {
    let gpu = require_gpu!();
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
    gpu.run(|pass| matmul(gpu, pass, &gc, &ga, &gb, with_bias.then_some(&gbias), &desc).map(drop))
        .unwrap();
    let got = gpu.read_f32(&gc, len_c).unwrap();
    let what = format!(
        "{:?} {}x{}x{} batch {} ta {} tb {} acc {} bias {}",
        desc.variant,
        desc.m,
        desc.n,
        desc.k,
        desc.batch,
        desc.trans_a,
        desc.trans_b,
        desc.accumulate,
        with_bias
    );
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
        for variant in [MatmulVariant::Reg4x4, MatmulVariant::Reg8x4] {
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

#[test]
fn bias_accumulate_and_batches() {
    for variant in MatmulVariant::ALL {
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
    for variant in MatmulVariant::ALL {
        // B shared by all three batches (a weight matrix), A and C per batch.
        let desc = Matmul::new(9, 16, 12)
            .batch(3)
            .strides(9 * 12, 0, 9 * 16)
            .variant(variant);
        check(desc, false);
    }
}

#[test]
fn auto_picks_a_variant_that_is_correct() {
    let gpu = require_gpu!();
    check(Matmul::new(64, 64, 64), true);
    check(Matmul::new(17, 33, 65), false);
    // The choice is cached per shape bucket.
    assert!(gpu.tuned("matmul/nn/v4/6").is_some() || gpu.tuned("matmul/nn/v4/5").is_some());
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
