//! Shaders built without runtime checks (the default) compute exactly what the checked
//! build computes: every matmul variant (plain and with an activation in its store), the
//! bias gradient, every convolution pass and variant, batch norm,
//! pooling and the shortcut at their edge sizes, on two devices, one of each mode, with
//! bit-identical results required (`tests/common/modes.rs`).

mod common;

use common::modes::{out, read, same, up};
use rezero::kernels::Dtype;
use rezero::kernels::batchnorm::{self as bn, BatchNormConfig, BatchNormShape};
use rezero::kernels::bias::{Activation, BiasShape, bias_activation_backward, bias_backward};
use rezero::kernels::conv2d::{self, Conv2d, ConvVariant};
use rezero::kernels::matmul::{Block, Matmul, MatmulVariant, matmul, matmul_activation};
use rezero::kernels::shortcut::{ShortcutShape, shortcut_backward, shortcut_forward};
use rezero::kernels::{Grad, NormSaved, pool};

#[test]
fn matmul_every_variant() {
    let variants = [
        MatmulVariant::Naive,
        MatmulVariant::Tiled,
        MatmulVariant::Reg8x4,
        MatmulVariant::Blocked(Block::new(32, 32, 4, 4, 4)),
    ];
    // 1, tile − 1 and tile + 1 in every dimension (tiles of 32 or 64, slabs of 4 or 16).
    for (m, n, k) in [
        (1, 1, 1),
        (31, 33, 15),
        (33, 31, 17),
        (63, 65, 5),
        (32, 36, 20),
    ] {
        for (ta, tb) in [(false, false), (true, true)] {
            for variant in variants {
                let desc = Matmul::new(m, n, k)
                    .trans_a(ta)
                    .trans_b(tb)
                    .variant(variant);
                if variant == MatmulVariant::Reg8x4 && desc.vec4_obstacle().is_some() {
                    continue;
                }
                same(
                    &format!("matmul {variant:?} {m}x{n}x{k} {ta} {tb}"),
                    |gpu| {
                        let (a, b, bias) = (
                            up(gpu, 23, (m * k) as usize),
                            up(gpu, 24, (k * n) as usize),
                            up(gpu, 25, n as usize),
                        );
                        let c = up(gpu, 26, (m * n) as usize);
                        pollster::block_on(gpu.run(|pass| {
                            matmul(gpu, pass, &c, &a, &b, Some(&bias), &desc.accumulate(true))
                                .map(drop)
                        }))?;
                        read(gpu, &[(&c, (m * n) as usize)])
                    },
                );
            }
        }
    }
}

#[test]
fn convolution_batchnorm_pooling_shortcut() {
    for conv in [
        Conv2d::new(1, 1, 1, 1, 1, 1),
        Conv2d::new(2, 3, 7, 5, 17, 3).pad(1),
        Conv2d::new(3, 5, 9, 11, 15, 3).stride(2).pad(1),
        Conv2d::new(1, 17, 8, 8, 9, 1).stride(2),
    ] {
        for variant in [
            ConvVariant::Direct,
            ConvVariant::Reg,
            ConvVariant::Blocked(Block::new(32, 32, 8, 8, 4)),
        ] {
            same(&format!("conv2d {variant:?} {conv:?}"), |gpu| {
                let (x, w, bias) = (
                    up(gpu, 27, conv.input_len()),
                    up(gpu, 28, conv.weight_len()),
                    up(gpu, 29, conv.c_out as usize),
                );
                let dy = up(gpu, 30, conv.output_len());
                let (y, dx, dw) = (
                    out(gpu, conv.output_len())?,
                    out(gpu, conv.input_len())?,
                    out(gpu, conv.weight_len())?,
                );
                let scratch =
                    gpu.zeroed_f32("scratch", conv2d::conv2d_weight_scratch_len(gpu, &conv));
                pollster::block_on(gpu.run(|pass| {
                    conv2d::conv2d_forward(
                        gpu,
                        pass,
                        &y,
                        &x,
                        &w,
                        Some(&bias),
                        &conv,
                        variant,
                        false,
                    )?;
                    conv2d::conv2d_backward_input(gpu, pass, &dx, &dy, &w, &conv, variant, false)?;
                    conv2d::conv2d_backward_weight(
                        gpu, pass, &dw, &scratch, &dy, &x, &conv, variant, false,
                    )
                }))?;
                read(
                    gpu,
                    &[
                        (&y, conv.output_len()),
                        (&dx, conv.input_len()),
                        (&dw, conv.weight_len()),
                    ],
                )
            });
        }
    }
    for (batch, channels, pixels) in [(1u32, 1u32, 1u32), (3, 5, 255), (2, 3, 257)] {
        let shape = BatchNormShape::new(batch, channels, pixels);
        for block in [Some(u32::MAX), Some(64)] {
            let config = BatchNormConfig {
                block,
                ..Default::default()
            };
            same(&format!("batchnorm {shape:?} {block:?}"), |gpu| {
                let len = shape.len() as usize;
                let c = channels as usize;
                let (x, dy, gamma, beta) = (
                    up(gpu, 31, len),
                    up(gpu, 32, len),
                    up(gpu, 33, c),
                    up(gpu, 34, c),
                );
                let (y, ye, dx) = (out(gpu, len)?, out(gpu, len)?, out(gpu, len)?);
                let (mean, rstd) = (out(gpu, c)?, out(gpu, c)?);
                let (rmean, rvar) = (gpu.zeroed_f32("rm", c), gpu.upload("rv", &vec![1.0f32; c]));
                let (dgamma, dbeta) = (gpu.zeroed_f32("dg", c), gpu.zeroed_f32("db", c));
                let scratch =
                    gpu.zeroed_f32("scratch", bn::batchnorm_scratch_len(gpu, &shape, &config));
                pollster::block_on(gpu.run(|pass| {
                    bn::batchnorm_train_forward(
                        gpu, pass, &y, &mean, &rstd, &rmean, &rvar, &scratch, &x, &gamma, &beta,
                        &shape, &config,
                    )?;
                    bn::batchnorm_eval_forward(
                        gpu, pass, &ye, &x, &rmean, &rvar, &gamma, &beta, &shape, &config,
                    )?;
                    let saved = NormSaved {
                        x: &x,
                        mean: &mean,
                        rstd: &rstd,
                        gain: &gamma,
                    };
                    let (gx, gg, gb) = (Grad::write(&dx), Grad::add(&dgamma), Grad::add(&dbeta));
                    let (s, c) = (&shape, &config);
                    bn::batchnorm_backward(gpu, pass, gx, gg, gb, &scratch, &dy, saved, s, c)
                }))?;
                read(
                    gpu,
                    &[
                        (&y, len),
                        (&ye, len),
                        (&dx, len),
                        (&dgamma, c),
                        (&dbeta, c),
                        (&rmean, c),
                        (&rvar, c),
                    ],
                )
            });
        }
        let rows = batch * channels;
        same(&format!("pool {rows}x{pixels}"), |gpu| {
            let (x, dy) = (
                up(gpu, 35, (rows * pixels) as usize),
                up(gpu, 36, rows as usize),
            );
            let (y, dx) = (
                out(gpu, rows as usize)?,
                out(gpu, (rows * pixels) as usize)?,
            );
            pollster::block_on(gpu.run(|pass| {
                pool::global_avg_pool_forward(gpu, pass, &y, &x, rows, pixels, Dtype::F32)?;
                pool::global_avg_pool_backward(gpu, pass, &dx, &dy, rows, pixels, false, Dtype::F32)
            }))?;
            read(gpu, &[(&y, rows as usize), (&dx, (rows * pixels) as usize)])
        });
    }
    for (h, w, stride) in [(1u32, 1u32, 1u32), (7, 9, 2), (16, 15, 2)] {
        let shape = ShortcutShape {
            batch: 2,
            c_in: 3,
            c_out: 5,
            h,
            w,
            stride,
            dtype: rezero::kernels::Dtype::F32,
        };
        same(&format!("shortcut {shape:?}"), |gpu| {
            let (x_len, y_len) = (
                (2 * 3 * h * w) as usize,
                (2 * 5 * shape.out_h() * shape.out_w()) as usize,
            );
            let (x, dy) = (up(gpu, 37, x_len), up(gpu, 38, y_len));
            let (y, dx) = (out(gpu, y_len)?, out(gpu, x_len)?);
            pollster::block_on(gpu.run(|pass| {
                shortcut_forward(gpu, pass, &y, &x, &shape)?;
                shortcut_backward(gpu, pass, &dx, &dy, &shape, false)
            }))?;
            read(gpu, &[(&y, y_len), (&dx, x_len)])
        });
    }
}

#[test]
fn activation_store_and_bias_gradient() {
    let variants = [
        MatmulVariant::Naive,
        MatmulVariant::Tiled,
        MatmulVariant::Reg8x4,
        MatmulVariant::Blocked(Block::new(32, 32, 4, 4, 4)),
    ];
    for (m, n, k) in [(1, 1, 1), (33, 31, 17), (32, 36, 20)] {
        for variant in variants {
            let desc = Matmul::new(m, n, k).trans_b(true).variant(variant);
            if variant == MatmulVariant::Reg8x4 && desc.vec4_obstacle().is_some() {
                continue;
            }
            let len = (m * n) as usize;
            same(&format!("matmul gelu {variant:?} {m}x{n}x{k}"), |gpu| {
                let (a, b, bias) = (
                    up(gpu, 27, (m * k) as usize),
                    up(gpu, 28, (k * n) as usize),
                    up(gpu, 29, n as usize),
                );
                let (o, pre) = (out(gpu, len)?, out(gpu, len)?);
                let gelu = Activation::Gelu;
                pollster::block_on(gpu.run(|pass| {
                    matmul_activation(gpu, pass, &o, &pre, &a, &b, Some(&bias), gelu, &desc)
                        .map(drop)
                }))?;
                read(gpu, &[(&o, len), (&pre, len)])
            });
        }
    }
    // One pass, and two passes with a ragged last chunk.
    for (rows, cols) in [(1, 1), (1025, 65), (1300, 3)] {
        let shape = BiasShape {
            rows,
            cols,
            dtype: Dtype::F32,
        };
        let len = (rows * cols) as usize;
        same(&format!("bias gradient {rows}x{cols}"), |gpu| {
            let (dy, pre) = (up(gpu, 30, len), up(gpu, 31, len));
            let (dx, dbias, dbias_alone) = (up(gpu, 32, len), up(gpu, 33, 65), up(gpu, 34, 65));
            let scratch = out(gpu, shape.scratch_len().max(1))?;
            let scratch = Some(&scratch);
            let (relu, add) = (Activation::Relu, Grad::add);
            pollster::block_on(gpu.run(|pass| {
                bias_activation_backward(
                    gpu,
                    pass,
                    add(&dx),
                    add(&dbias),
                    scratch,
                    &dy,
                    &pre,
                    relu,
                    shape,
                )?;
                bias_backward(gpu, pass, add(&dbias_alone), scratch, &dy, shape)
            }))?;
            read(
                gpu,
                &[
                    (&dx, len),
                    (&dbias, cols as usize),
                    (&dbias_alone, cols as usize),
                ],
            )
        });
    }
}
