//! Shaders built without runtime checks (the default) compute exactly what the checked
//! build computes: every kernel family at its edge sizes (1, a tile or workgroup − 1 and
//! + 1), run on two devices, one of each mode, with bit-identical results required.

mod common;

use std::sync::OnceLock;

use rezero::cpu::seeded;
use rezero::kernels::attention::{AttentionShape, attention_backward, attention_forward};
use rezero::kernels::batchnorm::{self as bn, BatchNormConfig, BatchNormShape};
use rezero::kernels::conv2d::{self, Conv2d, ConvVariant};
use rezero::kernels::embedding::{IdGroups, embedding_backward, embedding_forward};
use rezero::kernels::heads::{HeadLayout, heads_to_rows, rows_to_heads};
use rezero::kernels::matmul::{Block, Matmul, MatmulVariant, matmul};
use rezero::kernels::shortcut::{ShortcutShape, shortcut_backward, shortcut_forward};
use rezero::kernels::{
    cross_entropy, elementwise as ew, layernorm, optim, pool, reduce, rezero as rz, softmax,
};
use rezero::{Gpu, GpuOptions, Result};

/// One device of each mode, shared by this binary's tests.
fn modes() -> Option<&'static [Gpu; 2]> {
    static MODES: OnceLock<Option<[Gpu; 2]>> = OnceLock::new();
    common::gpu()?;
    MODES
        .get_or_init(|| {
            let open = |checked_shaders| {
                Gpu::new(&GpuOptions {
                    checked_shaders,
                    ..Default::default()
                })
                .unwrap()
            };
            let pair = [open(true), open(false)];
            assert!(pair[0].checked_shaders() && !pair[1].checked_shaders());
            Some(pair)
        })
        .as_ref()
}

/// Runs `work` (which uploads its inputs, records its kernels and reads its outputs back)
/// on both devices and requires the outputs to be identical, bit for bit.
fn same(what: &str, work: impl Fn(&Gpu) -> Result<Vec<Vec<f32>>>) {
    let Some([checked, unchecked]) = modes() else {
        return;
    };
    let want = work(checked).unwrap_or_else(|e| panic!("{what} (checked): {e}"));
    let got = work(unchecked).unwrap_or_else(|e| panic!("{what} (unchecked): {e}"));
    assert_eq!(want.len(), got.len());
    for (o, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.len(), g.len(), "{what}: output {o} length");
        if let Some(i) = (0..w.len()).find(|&i| w[i].to_bits() != g[i].to_bits()) {
            panic!(
                "{what}: output {o} differs at {i}: checked {} unchecked {}",
                w[i], g[i]
            );
        }
    }
}

fn up(gpu: &Gpu, seed: u64, len: usize) -> wgpu::Buffer {
    gpu.upload("in", &seeded(seed, len.max(1), -1.0, 1.0))
}

/// Output buffers start poisoned with NaN, so an element a kernel skips shows up.
fn out(gpu: &Gpu, len: usize) -> Result<wgpu::Buffer> {
    let buffer = gpu.zeroed_f32("out", len.max(1));
    gpu.run(|pass| ew::fill(gpu, pass, &buffer, f32::NAN, len.max(1) as u32))?;
    Ok(buffer)
}

fn read(gpu: &Gpu, buffers: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>> {
    buffers
        .iter()
        .map(|(b, len)| gpu.read_f32(b, *len))
        .collect()
}

/// Sizes around a grid-stride kernel's workgroup (256) and its largest grid (1024 groups).
const ELEMENTS: [u32; 5] = [1, 255, 257, 1023, 262_145];

#[test]
fn elementwise_rezero_and_optimizers() {
    for n in ELEMENTS {
        let len = n as usize;
        same(&format!("elementwise n={n}"), |gpu| {
            let (a, b) = (up(gpu, 1, len), up(gpu, 2, len));
            let outs: Vec<_> = (0..8).map(|_| out(gpu, len)).collect::<Result<_>>()?;
            let v4 = n.next_multiple_of(4);
            let (src4, dst4) = (up(gpu, 3, v4 as usize), out(gpu, v4 as usize)?);
            gpu.run(|pass| {
                ew::add(gpu, pass, &outs[0], &a, &b, n, false)?;
                ew::scale(gpu, pass, &outs[1], &a, 0.5, n, false)?;
                ew::relu(gpu, pass, &outs[2], &a, n)?;
                ew::relu_backward(gpu, pass, &outs[3], &b, &a, n, false)?;
                ew::gelu(gpu, pass, &outs[4], &a, n)?;
                ew::gelu_backward(gpu, pass, &outs[5], &b, &a, n, false)?;
                ew::copy(gpu, pass, &outs[6], &a, n)?;
                ew::add(gpu, pass, &outs[6], &a, &b, n, true)?;
                ew::copy_vec4(gpu, pass, &dst4, &src4, v4)?;
                let alpha = gpu.upload("alpha", &[0.3f32, -0.7]);
                rz::rezero_forward(gpu, pass, &outs[7], &a, &b, &alpha, 1, n)
            })?;
            let mut all = read(gpu, &outs.iter().map(|o| (o, len)).collect::<Vec<_>>())?;
            all.push(gpu.read_f32(&dst4, v4 as usize)?);
            Ok(all)
        });
        same(&format!("rezero backward and optimizers n={n}"), |gpu| {
            let (dy, f, g) = (up(gpu, 4, len), up(gpu, 5, len), up(gpu, 6, len));
            let (dx, df, dalpha) = (out(gpu, len)?, out(gpu, len)?, gpu.zeroed_f32("da", 1));
            let scratch = gpu.zeroed_f32("scratch", reduce::REDUCE_SCRATCH_LEN);
            let alpha = gpu.upload("alpha", &[0.3f32]);
            let params: Vec<_> = (0..3).map(|s| up(gpu, 10 + s, len)).collect();
            let state: Vec<_> = (0..4).map(|_| gpu.zeroed_f32("s", len)).collect();
            let values = gpu.upload("values", &[1.0f32, 0.1, 0.01, 0.0]);
            let norm_sq = gpu.upload("norm", &[4.0f32]);
            let clip = Some(optim::Clip {
                norm_sq: &norm_sq,
                max_norm: 1.0,
            });
            let sgd = optim::Sgd {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.01,
            };
            let ada = optim::Adagrad {
                lr: 0.1,
                eps: 1e-8,
                weight_decay: 0.0,
            };
            let adam = optim::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled: true,
            };
            gpu.run(|pass| {
                rz::rezero_backward(
                    gpu, pass, &dx, &df, &dalpha, &scratch, &dy, &f, &alpha, 0, n, false,
                )?;
                let [p0, p1, p2] = [&params[0], &params[1], &params[2]];
                optim::sgd(gpu, pass, p0, &state[0], &g, &values, n, &sgd, clip)?;
                optim::adagrad(gpu, pass, p1, &state[1], &g, &values, n, &ada, None)?;
                optim::adam(
                    gpu, pass, p2, &state[2], &state[3], &g, &values, n, &adam, clip,
                )
            })?;
            let mut all = read(gpu, &[(&dx, len), (&df, len), (&dalpha, 1)])?;
            all.extend(read(
                gpu,
                &params.iter().map(|p| (p, len)).collect::<Vec<_>>(),
            )?);
            Ok(all)
        });
    }
}

#[test]
fn reductions_softmax_layernorm_cross_entropy() {
    let Some([checked, _]) = modes() else { return };
    let wg = checked.row_workgroup_size();
    for n in [1u32, 2047, 2049, 262_145] {
        same(&format!("sum_all n={n}"), |gpu| {
            let (x, sum) = (up(gpu, 7, n as usize), gpu.zeroed_f32("sum", 1));
            let scratch = gpu.zeroed_f32("scratch", reduce::REDUCE_SCRATCH_LEN);
            gpu.run(|pass| reduce::sum_all(gpu, pass, &sum, &scratch, &x, n, true, false))?;
            read(gpu, &[(&sum, 1)])
        });
    }
    for rows in [1u32, 63, 65] {
        for cols in [1, wg - 1, wg + 1] {
            let len = (rows * cols) as usize;
            same(&format!("rows {rows}x{cols}"), |gpu| {
                let (x, dy) = (up(gpu, 8, len), up(gpu, 9, len));
                let sums = out(gpu, rows as usize)?;
                let (y, dx) = (out(gpu, len)?, out(gpu, len)?);
                gpu.run(|pass| {
                    reduce::sum_rows(gpu, pass, &sums, &x, rows, cols, false, false)?;
                    softmax::softmax_forward(gpu, pass, &y, &x, rows, cols)?;
                    softmax::softmax_backward(gpu, pass, &dx, &y, &dy, rows, cols, false)
                })?;
                // Causal softmax over square score blocks of side cols.
                let t = cols;
                let blocks = rows.min(3);
                let square = (blocks * t * t) as usize;
                let (s, ds) = (up(gpu, 10, square), up(gpu, 11, square));
                let (ys, dxs) = (out(gpu, square)?, out(gpu, square)?);
                gpu.run(|pass| {
                    softmax::softmax_causal_forward(gpu, pass, &ys, &s, blocks * t, t, 0.5)?;
                    softmax::softmax_causal_backward(
                        gpu,
                        pass,
                        &dxs,
                        &ys,
                        &ds,
                        blocks * t,
                        t,
                        0.5,
                        false,
                    )
                })?;
                read(
                    gpu,
                    &[
                        (&sums, rows as usize),
                        (&y, len),
                        (&dx, len),
                        (&ys, square),
                        (&dxs, square),
                    ],
                )
            });
            same(
                &format!("layernorm and cross-entropy {rows}x{cols}"),
                |gpu| {
                    let (x, dy) = (up(gpu, 12, len), up(gpu, 13, len));
                    let (gain, bias) = (up(gpu, 14, cols as usize), up(gpu, 15, cols as usize));
                    let (y, dx) = (out(gpu, len)?, out(gpu, len)?);
                    let (mean, rstd) = (out(gpu, rows as usize)?, out(gpu, rows as usize)?);
                    let (dgain, dbias) = (
                        gpu.zeroed_f32("dg", cols as usize),
                        gpu.zeroed_f32("db", cols as usize),
                    );
                    let scratch =
                        gpu.zeroed_f32("scratch", layernorm::layernorm_scratch_len(rows, cols));
                    let targets: Vec<u32> = (0..rows).map(|r| (r * 7) % (cols + 1)).collect();
                    let targets = gpu.upload("targets", &targets);
                    let (loss, dlogits, row_loss) = (
                        gpu.zeroed_f32("loss", 1),
                        out(gpu, len)?,
                        out(gpu, rows as usize)?,
                    );
                    gpu.run(|pass| {
                        layernorm::layernorm_forward(
                            gpu, pass, &y, &mean, &rstd, &x, &gain, &bias, rows, cols, 1e-5,
                        )?;
                        layernorm::layernorm_backward(
                            gpu, pass, &dx, &dgain, &dbias, &scratch, &dy, &x, &mean, &rstd, &gain,
                            rows, cols, false,
                        )?;
                        cross_entropy::cross_entropy(
                            gpu, pass, &loss, &dlogits, &row_loss, &x, &targets, rows, cols,
                        )
                    })?;
                    read(
                        gpu,
                        &[
                            (&y, len),
                            (&dx, len),
                            (&dgain, cols as usize),
                            (&dbias, cols as usize),
                            (&loss, 1),
                            (&dlogits, len),
                        ],
                    )
                },
            );
        }
    }
}

#[test]
fn embedding_heads_attention() {
    for (tokens, dim) in [(1u32, 1u32), (255, 3), (257, 65)] {
        let vocab = 7;
        same(&format!("embedding {tokens}x{dim}"), |gpu| {
            let ids: Vec<u32> = (0..tokens).map(|t| (t * 5) % vocab).collect();
            let groups = IdGroups::new(&ids, vocab)?;
            let (table, dout) = (
                up(gpu, 16, (vocab * dim) as usize),
                up(gpu, 17, (tokens * dim) as usize),
            );
            let (o, dtable) = (
                out(gpu, (tokens * dim) as usize)?,
                out(gpu, (vocab * dim) as usize)?,
            );
            let ids = gpu.upload("ids", &ids);
            let (order, offsets) = (
                gpu.upload("order", &groups.order),
                gpu.upload("offsets", &groups.offsets),
            );
            gpu.run(|pass| {
                embedding_forward(gpu, pass, &o, &table, &ids, tokens, dim, vocab, false)?;
                embedding_backward(
                    gpu, pass, &dtable, &dout, &order, &offsets, tokens, dim, vocab,
                )
            })?;
            read(
                gpu,
                &[
                    (&o, (tokens * dim) as usize),
                    (&dtable, (vocab * dim) as usize),
                ],
            )
        });
    }
    let (batch, heads) = (2u32, 3u32);
    for (t, d) in [(1u32, 8u32), (15, 32), (17, 64), (65, 16)] {
        let layout = HeadLayout {
            batch,
            t,
            heads,
            d,
            stride: 3 * heads * d,
            offset: heads * d,
        };
        let shape = AttentionShape {
            bh: batch * heads,
            t,
            d,
        };
        same(&format!("heads and attention t={t} d={d}"), |gpu| {
            let rows_len = (batch * t * 3 * heads * d) as usize;
            let len = (batch * heads * t * d) as usize;
            let x = up(gpu, 18, rows_len);
            let (h, back) = (out(gpu, len)?, gpu.zeroed_f32("back", rows_len));
            let (q, k, v, d_o) = (
                up(gpu, 19, len),
                up(gpu, 20, len),
                up(gpu, 21, len),
                up(gpu, 22, len),
            );
            let (o, lse) = (out(gpu, len)?, out(gpu, (shape.bh * t) as usize)?);
            let (dq, dk, dv, delta) = (
                out(gpu, len)?,
                out(gpu, len)?,
                out(gpu, len)?,
                out(gpu, (shape.bh * t) as usize)?,
            );
            gpu.run(|pass| {
                rows_to_heads(gpu, pass, &h, &x, &layout)?;
                heads_to_rows(gpu, pass, &back, &h, &layout, false)?;
                attention_forward(gpu, pass, &o, &lse, &q, &k, &v, &shape)
            })?;
            gpu.run(|pass| {
                attention_backward(
                    gpu, pass, &dq, &dk, &dv, &delta, &q, &k, &v, &o, &lse, &d_o, &shape,
                )
            })?;
            read(
                gpu,
                &[
                    (&h, len),
                    (&back, rows_len),
                    (&o, len),
                    (&dq, len),
                    (&dk, len),
                    (&dv, len),
                ],
            )
        });
    }
}

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
                        gpu.run(|pass| {
                            matmul(gpu, pass, &c, &a, &b, Some(&bias), &desc.accumulate(true))
                                .map(drop)
                        })?;
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
                gpu.run(|pass| {
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
                })?;
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
        let shape = BatchNormShape {
            batch,
            channels,
            pixels,
        };
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
                gpu.run(|pass| {
                    bn::batchnorm_train_forward(
                        gpu, pass, &y, &mean, &rstd, &rmean, &rvar, &scratch, &x, &gamma, &beta,
                        &shape, &config,
                    )?;
                    bn::batchnorm_eval_forward(
                        gpu, pass, &ye, &x, &rmean, &rvar, &gamma, &beta, &shape, &config,
                    )?;
                    bn::batchnorm_backward(
                        gpu, pass, &dx, &dgamma, &dbeta, &scratch, &dy, &x, &mean, &rstd, &gamma,
                        &shape, &config, false,
                    )
                })?;
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
            gpu.run(|pass| {
                pool::global_avg_pool_forward(gpu, pass, &y, &x, rows, pixels)?;
                pool::global_avg_pool_backward(gpu, pass, &dx, &dy, rows, pixels, false)
            })?;
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
        };
        same(&format!("shortcut {shape:?}"), |gpu| {
            let (x_len, y_len) = (
                (2 * 3 * h * w) as usize,
                (2 * 5 * shape.out_h() * shape.out_w()) as usize,
            );
            let (x, dy) = (up(gpu, 37, x_len), up(gpu, 38, y_len));
            let (y, dx) = (out(gpu, y_len)?, out(gpu, x_len)?);
            gpu.run(|pass| {
                shortcut_forward(gpu, pass, &y, &x, &shape)?;
                shortcut_backward(gpu, pass, &dx, &dy, &shape, false)
            })?;
            read(gpu, &[(&y, y_len), (&dx, x_len)])
        });
    }
}
