//! The image kernels' backward passes (conv2d to input, weights and bias; batchnorm in
//! training mode; global average pooling; the zero-padded shortcut) against central finite differences of their
//! forward computed plainly in f64. L = Σ dy ⊙ forward(inputs) with a seeded dy.

mod common;

use common::reference64::{batchnorm64, conv64, dot, numeric_grad, to64};
use common::{assert_close, one_per_register_block};
use rezero::cpu;
use rezero::kernels::batchnorm::{self as bn, BatchNormShape};
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use rezero::kernels::shortcut::{self, ShortcutShape};
use rezero::kernels::{Grad, NormSaved, pool};

const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-3;

/// The three backward passes through every variant a launcher can pick (the direct loop's
/// backward runs the simple blocked tile; of the GPU tiles, one of each register block and
/// slab depth), over strided, padded, 1x1 and many-channel shapes.
#[test]
fn conv2d_backward_matches_finite_differences() {
    let gpu = require_gpu!();
    let blocks = [ConvVariant::SIMPLE_BLOCK].iter().chain(&conv::GPU_BLOCKS);
    let variants: Vec<ConvVariant> = [ConvVariant::Direct, ConvVariant::Reg]
        .into_iter()
        .chain(one_per_register_block(gpu, blocks).map(ConvVariant::Blocked))
        .collect();
    for variant in variants {
        for s in [
            Conv2d::new(2, 3, 5, 4, 2, 3).stride(2).pad(1),
            Conv2d::new(1, 2, 4, 4, 3, 1).stride(2),
            Conv2d::new(3, 1, 3, 5, 2, 2).pad(1),
            Conv2d::new(2, 5, 6, 6, 19, 3).pad(1),
        ] {
            conv2d_backward_case(gpu, &s, variant);
        }
    }
}

fn conv2d_backward_case(gpu: &rezero::Gpu, s: &Conv2d, variant: ConvVariant) {
    let x = cpu::seeded(1, s.input_len(), -1.0, 1.0);
    let w = cpu::seeded(2, s.weight_len(), -1.0, 1.0);
    let b = cpu::seeded(3, s.c_out as usize, -1.0, 1.0);
    let dy = cpu::seeded(4, s.output_len(), -1.0, 1.0);
    let (gx, gw, gdy) = (
        gpu.upload("x", &x),
        gpu.upload("w", &w),
        gpu.upload("dy", &dy),
    );
    let (gdx, gdw, gdb) = (
        gpu.zeroed_f32("dx", s.input_len()),
        gpu.zeroed_f32("dw", s.weight_len()),
        gpu.zeroed_f32("db", s.c_out as usize),
    );
    let scratch = gpu.zeroed_f32("scratch", conv::conv2d_weight_scratch_len(gpu, s));
    pollster::block_on(gpu.run(|p| {
        conv::conv2d_backward_input(gpu, p, &gdx, &gdy, &gw, s, variant, false)?;
        conv::conv2d_backward_weight(gpu, p, &gdw, &scratch, &gdy, &gx, s, variant, true)?;
        conv::conv2d_backward_bias(gpu, p, &gdb, &gdy, s, true)
    }))
    .unwrap_or_else(|e| panic!("{} {s:?}: {e}", variant.name()));
    let (x64, w64, b64) = (to64(&x), to64(&w), to64(&b));
    let what = |t: &str| format!("conv2d {} d/d{t} {s:?}", variant.name());
    assert_close(
        &what("x"),
        &pollster::block_on(gpu.read_f32(&gdx, s.input_len())).unwrap(),
        &numeric_grad(|v| dot(&dy, &conv64(v, &w64, &b64, s)), &x),
        ATOL,
        RTOL,
    );
    assert_close(
        &what("w"),
        &pollster::block_on(gpu.read_f32(&gdw, s.weight_len())).unwrap(),
        &numeric_grad(|v| dot(&dy, &conv64(&x64, v, &b64, s)), &w),
        ATOL,
        RTOL,
    );
    assert_close(
        &what("bias"),
        &pollster::block_on(gpu.read_f32(&gdb, s.c_out as usize)).unwrap(),
        &numeric_grad(|v| dot(&dy, &conv64(&x64, &w64, v, s)), &b),
        ATOL,
        RTOL,
    );
}

#[test]
fn batchnorm_backward_matches_finite_differences() {
    let gpu = require_gpu!();
    let s = BatchNormShape::new(3, 2, 5);
    let (len, c) = (s.len() as usize, s.channels as usize);
    for block in [None, Some(4)] {
        batchnorm_case(
            gpu,
            &s,
            len,
            c,
            bn::BatchNormConfig {
                block,
                ..Default::default()
            },
        );
    }
}

fn batchnorm_case(
    gpu: &rezero::Gpu,
    s: &BatchNormShape,
    len: usize,
    c: usize,
    config: bn::BatchNormConfig,
) {
    let s = *s;
    let scratch = gpu.zeroed_f32("scratch", bn::batchnorm_scratch_len(gpu, &s, &config));
    let x = cpu::seeded(5, len, -2.0, 2.0);
    let gamma = cpu::seeded(6, c, 0.5, 1.5);
    let beta = cpu::seeded(7, c, -1.0, 1.0);
    let dy = cpu::seeded(8, len, -1.0, 1.0);
    let (gx, gg, gb, gdy) = (
        gpu.upload("x", &x),
        gpu.upload("g", &gamma),
        gpu.upload("b", &beta),
        gpu.upload("dy", &dy),
    );
    let stats: Vec<_> = (0..4).map(|_| gpu.zeroed_f32("stat", c)).collect();
    let (gy, gdx) = (gpu.zeroed_f32("y", len), gpu.zeroed_f32("dx", len));
    let (gdg, gdb) = (gpu.zeroed_f32("dg", c), gpu.zeroed_f32("db", c));
    pollster::block_on(gpu.run(|p| {
        let [mean, rstd, rm, rv] = [&stats[0], &stats[1], &stats[2], &stats[3]];
        bn::batchnorm_train_forward(
            gpu, p, &gy, mean, rstd, rm, rv, &scratch, &gx, &gg, &gb, &s, &config,
        )?;
        let saved = NormSaved {
            x: &gx,
            mean,
            rstd,
            gain: &gg,
        };
        let (dx, dg, db) = (Grad::write(&gdx), Grad::write(&gdg), Grad::write(&gdb));
        bn::batchnorm_backward(gpu, p, dx, dg, db, &scratch, &gdy, saved, &s, &config)
    }))
    .unwrap();
    let eps = config.eps as f64;
    let (x64, g64, b64) = (to64(&x), to64(&gamma), to64(&beta));
    assert_close(
        "batchnorm d/dx",
        &pollster::block_on(gpu.read_f32(&gdx, len)).unwrap(),
        &numeric_grad(|v| dot(&dy, &batchnorm64(v, &g64, &b64, &s, eps)), &x),
        ATOL,
        RTOL,
    );
    assert_close(
        "batchnorm d/dgamma",
        &pollster::block_on(gpu.read_f32(&gdg, c)).unwrap(),
        &numeric_grad(|v| dot(&dy, &batchnorm64(&x64, v, &b64, &s, eps)), &gamma),
        ATOL,
        RTOL,
    );
    assert_close(
        "batchnorm d/dbeta",
        &pollster::block_on(gpu.read_f32(&gdb, c)).unwrap(),
        &numeric_grad(|v| dot(&dy, &batchnorm64(&x64, &g64, v, &s, eps)), &beta),
        ATOL,
        RTOL,
    );
}

#[test]
fn global_avg_pool_backward_matches_finite_differences() {
    let gpu = require_gpu!();
    let (rows, pixels) = (6usize, 9usize);
    let x = cpu::seeded(9, rows * pixels, -1.0, 1.0);
    let dy = cpu::seeded(10, rows, -1.0, 1.0);
    let (gdy, gdx) = (gpu.upload("dy", &dy), gpu.zeroed_f32("dx", rows * pixels));
    pollster::block_on(gpu.run(|p| {
        let (rows, pixels, f32) = (rows as u32, pixels as u32, rezero::kernels::Dtype::F32);
        pool::global_avg_pool_backward(gpu, p, &gdx, &gdy, rows, pixels, false, f32)
    }))
    .unwrap();
    let pool64 = |v: &[f64]| -> Vec<f64> {
        v.chunks(pixels)
            .map(|r| r.iter().sum::<f64>() / pixels as f64)
            .collect()
    };
    assert_close(
        "pool d/dx",
        &pollster::block_on(gpu.read_f32(&gdx, rows * pixels)).unwrap(),
        &numeric_grad(|v| dot(&dy, &pool64(v)), &x),
        ATOL,
        RTOL,
    );
}

#[test]
fn shortcut_backward_matches_finite_differences() {
    let gpu = require_gpu!();
    let s = ShortcutShape {
        batch: 2,
        c_in: 2,
        c_out: 3,
        h: 5,
        w: 4,
        stride: 2,
        dtype: rezero::kernels::Dtype::F32,
    };
    let x = cpu::seeded(11, s.input_len(), -1.0, 1.0);
    let dy = cpu::seeded(12, s.output_len(), -1.0, 1.0);
    let (gdy, gdx) = (gpu.upload("dy", &dy), gpu.zeroed_f32("dx", s.input_len()));
    pollster::block_on(gpu.run(|p| shortcut::shortcut_backward(gpu, p, &gdx, &gdy, &s, false)))
        .unwrap();
    // The shortcut in f64: subsample, then zero channels.
    let forward = |v: &[f64]| -> Vec<f64> {
        let (oh, ow) = (s.out_h() as usize, s.out_w() as usize);
        let (c_in, c_out, h, w) = (2, 3, 5, 4);
        let mut y = vec![0.0; s.output_len()];
        for n in 0..2 {
            for c in 0..c_in {
                for i in 0..oh {
                    for j in 0..ow {
                        y[((n * c_out + c) * oh + i) * ow + j] =
                            v[((n * c_in + c) * h + 2 * i) * w + 2 * j];
                    }
                }
            }
        }
        y
    };
    assert_close(
        "shortcut d/dx",
        &pollster::block_on(gpu.read_f32(&gdx, s.input_len())).unwrap(),
        &numeric_grad(|v| dot(&dy, &forward(v)), &x),
        ATOL,
        RTOL,
    );
}
