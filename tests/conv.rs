//! conv2d against its CPU reference on awkward shapes (odd sizes, channels not a multiple
//! of 4, batch 1 and 3, stride 2, 1×1 and non-square kernels), and its shape errors. The
//! batch norm, pooling and shortcut are in `image_kernels.rs`.

mod common;

use common::{assert_close, atol_for};
use rezero::Error;
use rezero::cpu;
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use rezero::kernels::matmul::Block;

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
