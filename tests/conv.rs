//! conv2d, batchnorm, global average pooling and the zero-padded shortcut against their
//! CPU references on awkward shapes (odd sizes, channels not a multiple of 4, batch 1 and
//! 3, stride 2, 1×1 and non-square kernels), and their shape errors.

mod common;

use common::{assert_close, atol_for};
use rezero::cpu;
use rezero::kernels::batchnorm::{self as bn, BatchNormConfig, BatchNormShape};
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use rezero::kernels::matmul::Block;
use rezero::kernels::shortcut::{self, ShortcutShape};
use rezero::kernels::{Grad, NormSaved, pool};
use rezero::{Error, Gpu};

fn shapes() -> Vec<Conv2d> {
    vec![
        Conv2d::new(1, 1, 1, 1, 1, 1),
        Conv2d::new(1, 3, 7, 5, 5, 3).pad(1),
        Conv2d::new(3, 5, 9, 11, 6, 3).stride(2).pad(1),
        Conv2d::new(3, 17, 8, 8, 33, 1).stride(2),
        Conv2d::new(2, 4, 6, 6, 70, 3),
        Conv2d {
            kh: 3,
            kw: 1,
            ..Conv2d::new(2, 3, 5, 4, 2, 1).pad(2)
        },
        Conv2d::new(3, 16, 16, 16, 16, 3).pad(1),
        Conv2d::new(1, 6, 5, 5, 3, 5).stride(3).pad(2),
    ]
}

/// Two blocked tiles: the simple one (4x4 per invocation, 64x64) and an oblong 8x4 one
/// with shallow slabs, so shapes cross their tiles' edges differently.
const BLOCKED: [ConvVariant; 2] = [
    ConvVariant::Blocked(ConvVariant::SIMPLE_BLOCK),
    ConvVariant::Blocked(Block::new(32, 32, 8, 8, 4)),
];

fn tol(s: &Conv2d) -> f32 {
    atol_for((s.c_in * s.kh * s.kw) as usize)
}

#[test]
fn forward_every_variant_with_bias_and_accumulate() {
    let gpu = require_gpu!();
    for s in shapes() {
        let x = cpu::seeded(1, s.input_len(), -1.0, 1.0);
        let w = cpu::seeded(2, s.weight_len(), -1.0, 1.0);
        let b = cpu::seeded(3, s.c_out as usize, -1.0, 1.0);
        let old = cpu::seeded(4, s.output_len(), -1.0, 1.0);
        let (gx, gw, gb) = (
            gpu.upload("x", &x),
            gpu.upload("w", &w),
            gpu.upload("b", &b),
        );
        for variant in [ConvVariant::Direct, ConvVariant::Reg, ConvVariant::Auto]
            .into_iter()
            .chain(BLOCKED)
        {
            for (bias, accumulate) in [(false, false), (true, false), (true, true)] {
                let gy = gpu.upload("y", &old);
                let gbias = bias.then_some(&gb);
                pollster::block_on(gpu.run(|p| {
                    conv::conv2d_forward(gpu, p, &gy, &gx, &gw, gbias, &s, variant, accumulate)
                }))
                .unwrap();
                let mut want = old.clone();
                let cbias = bias.then_some(&b[..]);
                cpu::conv2d::conv2d_forward(&mut want, &x, &w, cbias, &s, accumulate);
                assert_close(
                    &format!(
                        "{} forward {s:?} bias={bias} acc={accumulate}",
                        variant.name()
                    ),
                    &pollster::block_on(gpu.read_f32(&gy, s.output_len())).unwrap(),
                    &want,
                    tol(&s),
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn backward_input_weight_and_bias() {
    let gpu = require_gpu!();
    for s in shapes() {
        let x = cpu::seeded(5, s.input_len(), -1.0, 1.0);
        let w = cpu::seeded(6, s.weight_len(), -1.0, 1.0);
        let dy = cpu::seeded(7, s.output_len(), -1.0, 1.0);
        let (gx, gw, gdy) = (
            gpu.upload("x", &x),
            gpu.upload("w", &w),
            gpu.upload("dy", &dy),
        );
        for (accumulate, variant) in [
            (false, BLOCKED[0]),
            (true, BLOCKED[0]),
            (true, BLOCKED[1]),
            (false, ConvVariant::Reg),
            (true, ConvVariant::Reg),
            (false, ConvVariant::Auto),
            (true, ConvVariant::Direct),
        ] {
            let old_dx = cpu::seeded(8, s.input_len(), -1.0, 1.0);
            let old_dw = cpu::seeded(9, s.weight_len(), -1.0, 1.0);
            let old_db = cpu::seeded(10, s.c_out as usize, -1.0, 1.0);
            let (gdx, gdw, gdb) = (
                gpu.upload("dx", &old_dx),
                gpu.upload("dw", &old_dw),
                gpu.upload("db", &old_db),
            );
            let scratch = gpu.zeroed_f32("scratch", conv::conv2d_weight_scratch_len(gpu, &s));
            pollster::block_on(gpu.run(|p| {
                conv::conv2d_backward_input(gpu, p, &gdx, &gdy, &gw, &s, variant, accumulate)?;
                conv::conv2d_backward_weight(
                    gpu, p, &gdw, &scratch, &gdy, &gx, &s, variant, accumulate,
                )?;
                conv::conv2d_backward_bias(gpu, p, &gdb, &gdy, &s, accumulate)
            }))
            .unwrap();
            let (mut dx, mut dw, mut db) = (old_dx.clone(), old_dw.clone(), old_db.clone());
            cpu::conv2d::conv2d_backward_input(&mut dx, &dy, &w, &s, accumulate);
            cpu::conv2d::conv2d_backward_weight(&mut dw, &dy, &x, &s, accumulate);
            cpu::conv2d::conv2d_backward_bias(&mut db, &dy, &s, accumulate);
            let what = |t: &str| format!("{t} {} {s:?} acc={accumulate}", variant.name());
            let taps = (s.c_out * s.kh * s.kw) as usize;
            let pixels = (s.batch * s.out_h() * s.out_w()) as usize;
            let dx_got = pollster::block_on(gpu.read_f32(&gdx, s.input_len())).unwrap();
            assert_close(&what("dx"), &dx_got, &dx, atol_for(taps), 1e-5);
            let dw_got = pollster::block_on(gpu.read_f32(&gdw, s.weight_len())).unwrap();
            assert_close(&what("dw"), &dw_got, &dw, atol_for(pixels), 1e-5);
            let db_got = pollster::block_on(gpu.read_f32(&gdb, s.c_out as usize)).unwrap();
            assert_close(&what("db"), &db_got, &db, atol_for(pixels), 1e-5);
        }
    }
}

#[test]
fn conv_shape_errors_are_reported_before_dispatch() {
    let gpu = require_gpu!();
    let s = Conv2d::new(1, 2, 3, 3, 2, 5);
    let buf = gpu.zeroed_f32("b", 1024);
    let err = pollster::block_on(
        gpu.run(|p| conv::conv2d_forward(gpu, p, &buf, &buf, &buf, None, &s, BLOCKED[0], false)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let s = Conv2d::new(1, 2, 3, 3, 2, 3).stride(0);
    let err = pollster::block_on(
        gpu.run(|p| conv::conv2d_backward_input(gpu, p, &buf, &buf, &buf, &s, BLOCKED[0], false)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Empty { .. }), "{err}");
    let s = Conv2d::new(2, 4, 8, 8, 4, 3).pad(1);
    let small = gpu.zeroed_f32("small", 10);
    let err =
        pollster::block_on(gpu.run(|p| {
            conv::conv2d_forward(gpu, p, &buf, &small, &buf, None, &s, BLOCKED[0], false)
        }))
        .unwrap_err();
    assert!(err.to_string().contains("x: [batch, c_in, h, w]"), "{err}");
}

fn bn_shapes() -> [BatchNormShape; 4] {
    let s = |batch, channels, pixels| BatchNormShape {
        batch,
        channels,
        pixels,
    };
    [s(1, 1, 2), s(3, 5, 7), s(2, 17, 64), s(5, 3, 1000)]
}

fn bn_case(gpu: &Gpu, s: &BatchNormShape, block: Option<u32>) {
    let len = s.len() as usize;
    let c = s.channels as usize;
    let config = BatchNormConfig {
        block,
        ..Default::default()
    };
    let scratch = gpu.zeroed_f32("scratch", bn::batchnorm_scratch_len(gpu, s, &config));
    // An offset and a spread per channel, so that the statistics matter.
    let x: Vec<f32> = cpu::seeded(11, len, -1.0, 1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| v * 3.0 + ((i / s.pixels as usize) % c) as f32)
        .collect();
    let gamma = cpu::seeded(12, c, 0.5, 1.5);
    let beta = cpu::seeded(13, c, -1.0, 1.0);
    let (mut rm, mut rv) = (cpu::seeded(14, c, -1.0, 1.0), cpu::seeded(15, c, 0.5, 2.0));
    let (gx, gg, gb) = (
        gpu.upload("x", &x),
        gpu.upload("g", &gamma),
        gpu.upload("b", &beta),
    );
    let (grm, grv) = (gpu.upload("rm", &rm), gpu.upload("rv", &rv));
    let (gy, gmean, grstd) = (
        gpu.zeroed_f32("y", len),
        gpu.zeroed_f32("mean", c),
        gpu.zeroed_f32("rstd", c),
    );
    pollster::block_on(gpu.run(|p| {
        bn::batchnorm_train_forward(
            gpu, p, &gy, &gmean, &grstd, &grm, &grv, &scratch, &gx, &gg, &gb, s, &config,
        )
    }))
    .unwrap();
    let mut y = vec![0.0; len];
    let (mean, rstd) = cpu::batchnorm::batchnorm_train_forward(
        &mut y, &mut rm, &mut rv, &x, &gamma, &beta, s, &config,
    );
    let what = |t: &str| format!("batchnorm {t} {s:?} block {block:?}");
    let n = (s.batch * s.pixels) as usize;
    assert_close(
        &what("train y"),
        &pollster::block_on(gpu.read_f32(&gy, len)).unwrap(),
        &y,
        1e-4,
        1e-4,
    );
    assert_close(
        &what("mean"),
        &pollster::block_on(gpu.read_f32(&gmean, c)).unwrap(),
        &mean,
        atol_for(n),
        1e-5,
    );
    assert_close(
        &what("rstd"),
        &pollster::block_on(gpu.read_f32(&grstd, c)).unwrap(),
        &rstd,
        1e-5,
        1e-4,
    );
    assert_close(
        &what("running mean"),
        &pollster::block_on(gpu.read_f32(&grm, c)).unwrap(),
        &rm,
        1e-5,
        1e-5,
    );
    assert_close(
        &what("running var"),
        &pollster::block_on(gpu.read_f32(&grv, c)).unwrap(),
        &rv,
        1e-5,
        1e-4,
    );

    pollster::block_on(
        gpu.run(|p| bn::batchnorm_eval_forward(gpu, p, &gy, &gx, &grm, &grv, &gg, &gb, s, &config)),
    )
    .unwrap();
    cpu::batchnorm::batchnorm_eval_forward(&mut y, &x, &rm, &rv, &gamma, &beta, s, config.eps);
    assert_close(
        &what("eval y"),
        &pollster::block_on(gpu.read_f32(&gy, len)).unwrap(),
        &y,
        1e-4,
        1e-4,
    );

    let dy = cpu::seeded(16, len, -1.0, 1.0);
    let gdy = gpu.upload("dy", &dy);
    // Each gradient written (its buffer NaN-poisoned first) or added to.
    for accumulate in [[false, true, true], [true, false, false]] {
        let start = |v: Vec<f32>, add: bool| if add { v } else { vec![f32::NAN; v.len()] };
        let old = start(cpu::seeded(17, len, -1.0, 1.0), accumulate[0]);
        let (mut dx, mut dg, mut db) = (
            old.clone(),
            start(vec![0.5; c], accumulate[1]),
            start(vec![-0.5; c], accumulate[2]),
        );
        let (gdx, gdg, gdb) = (
            gpu.upload("dx", &old),
            gpu.upload("dg", &dg),
            gpu.upload("db", &db),
        );
        pollster::block_on(gpu.run(|p| {
            let saved = NormSaved {
                x: &gx,
                mean: &gmean,
                rstd: &grstd,
                gain: &gg,
            };
            let [adx, adg, adb] = accumulate;
            let (dx, dg, db) = (
                Grad::new(&gdx, adx),
                Grad::new(&gdg, adg),
                Grad::new(&gdb, adb),
            );
            bn::batchnorm_backward(gpu, p, dx, dg, db, &scratch, &gdy, saved, s, &config)
        }))
        .unwrap();
        cpu::batchnorm::batchnorm_backward(
            &mut dx, &mut dg, &mut db, &dy, &x, &mean, &rstd, &gamma, s, accumulate,
        );
        assert_close(
            &what("dx"),
            &pollster::block_on(gpu.read_f32(&gdx, len)).unwrap(),
            &dx,
            1e-4,
            1e-3,
        );
        assert_close(
            &what("dgamma"),
            &pollster::block_on(gpu.read_f32(&gdg, c)).unwrap(),
            &dg,
            atol_for(n),
            1e-4,
        );
        assert_close(
            &what("dbeta"),
            &pollster::block_on(gpu.read_f32(&gdb, c)).unwrap(),
            &db,
            atol_for(n),
            1e-4,
        );
    }
}

#[test]
fn batchnorm_train_eval_and_backward() {
    let gpu = require_gpu!();
    // One workgroup a channel, and split into blocks of 7, 64 and 1000 elements (the GPU
    // path), whatever this adapter would pick.
    for s in bn_shapes() {
        for block in [None, Some(7), Some(64), Some(1000)] {
            bn_case(gpu, &s, block);
        }
    }
}

#[test]
fn batchnorm_rejects_bad_config() {
    let gpu = require_gpu!();
    let b = gpu.zeroed_f32("b", 8);
    let s = BatchNormShape {
        batch: 2,
        channels: 2,
        pixels: 2,
    };
    let config = BatchNormConfig {
        eps: 0.0,
        ..Default::default()
    };
    let err = pollster::block_on(
        gpu.run(|p| bn::batchnorm_eval_forward(gpu, p, &b, &b, &b, &b, &b, &b, &s, &config)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("eps"), "{err}");
}

#[test]
fn global_average_pooling() {
    let gpu = require_gpu!();
    for (rows, pixels) in [(1u32, 1u32), (3, 7), (34, 64), (5, 1025)] {
        let len = (rows * pixels) as usize;
        let x = cpu::seeded(18, len, -1.0, 1.0);
        let (gx, gy) = (gpu.upload("x", &x), gpu.zeroed_f32("y", rows as usize));
        pollster::block_on(
            gpu.run(|p| pool::global_avg_pool_forward(gpu, p, &gy, &gx, rows, pixels)),
        )
        .unwrap();
        let mut y = vec![0.0; rows as usize];
        cpu::batchnorm::global_avg_pool_forward(&mut y, &x, pixels as usize);
        let what = format!("pool {rows}x{pixels}");
        assert_close(
            &what,
            &pollster::block_on(gpu.read_f32(&gy, rows as usize)).unwrap(),
            &y,
            1e-5,
            1e-5,
        );
        for accumulate in [false, true] {
            let dy = cpu::seeded(19, rows as usize, -1.0, 1.0);
            let old = cpu::seeded(20, len, -1.0, 1.0);
            let (gdy, gdx) = (gpu.upload("dy", &dy), gpu.upload("dx", &old));
            pollster::block_on(gpu.run(|p| {
                pool::global_avg_pool_backward(gpu, p, &gdx, &gdy, rows, pixels, accumulate)
            }))
            .unwrap();
            let mut dx = old.clone();
            cpu::batchnorm::global_avg_pool_backward(&mut dx, &dy, pixels as usize, accumulate);
            assert_close(
                &what,
                &pollster::block_on(gpu.read_f32(&gdx, len)).unwrap(),
                &dx,
                1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn zero_padded_identity_shortcut() {
    let gpu = require_gpu!();
    for (batch, c_in, c_out, h, w, stride) in [
        (1, 1, 1, 1, 1, 1),
        (3, 5, 8, 7, 9, 2),
        (2, 16, 32, 8, 8, 2),
        (1, 3, 3, 5, 4, 3),
    ] {
        let s = ShortcutShape {
            batch,
            c_in,
            c_out,
            h,
            w,
            stride,
        };
        let x = cpu::seeded(21, s.input_len(), -1.0, 1.0);
        let gx = gpu.upload("x", &x);
        let gy = gpu.upload("y", &vec![7.0f32; s.output_len()]);
        pollster::block_on(gpu.run(|p| shortcut::shortcut_forward(gpu, p, &gy, &gx, &s))).unwrap();
        let mut y = vec![0.0; s.output_len()];
        cpu::batchnorm::shortcut_forward(&mut y, &x, &s);
        assert_close(
            &format!("shortcut {s:?}"),
            &pollster::block_on(gpu.read_f32(&gy, s.output_len())).unwrap(),
            &y,
            0.0,
            0.0,
        );
        for accumulate in [false, true] {
            let dy = cpu::seeded(22, s.output_len(), -1.0, 1.0);
            let old = cpu::seeded(23, s.input_len(), -1.0, 1.0);
            let (gdy, gdx) = (gpu.upload("dy", &dy), gpu.upload("dx", &old));
            pollster::block_on(
                gpu.run(|p| shortcut::shortcut_backward(gpu, p, &gdx, &gdy, &s, accumulate)),
            )
            .unwrap();
            let mut dx = old.clone();
            cpu::batchnorm::shortcut_backward(&mut dx, &dy, &s, accumulate);
            let what = format!("shortcut backward {s:?} acc={accumulate}");
            assert_close(
                &what,
                &pollster::block_on(gpu.read_f32(&gdx, s.input_len())).unwrap(),
                &dx,
                1e-6,
                0.0,
            );
        }
    }
    let bad = ShortcutShape {
        batch: 1,
        c_in: 4,
        c_out: 2,
        h: 2,
        w: 2,
        stride: 2,
    };
    let b = gpu.zeroed_f32("b", 64);
    let err = pollster::block_on(gpu.run(|p| shortcut::shortcut_forward(gpu, p, &b, &b, &bad)))
        .unwrap_err();
    assert!(err.to_string().contains("input channels"), "{err}");
}
