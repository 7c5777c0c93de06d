//! Shaders built without runtime checks (the default) compute exactly what the checked
//! build computes: the elementwise, reduction, row, embedding and attention kernels at
//! their edge sizes (1, a tile or workgroup − 1 and + 1), run on two devices, one of each
//! mode, with bit-identical results required (`tests/common/modes.rs`; the GEMM-shaped
//! families are in `checked_modes_gemm.rs`).

mod common;

use common::modes::{modes, out, read, same, up};
use rezero::Result;
use rezero::kernels::Dtype;
use rezero::kernels::attention::{AttentionShape, attention_backward_with, attention_forward_with};
use rezero::kernels::attention_tune::{Pass, candidates};
use rezero::kernels::embedding::{EmbeddingShape, IdGroups, embedding_backward, embedding_forward};
use rezero::kernels::heads::{HeadLayout, heads_to_rows, rows_to_heads};
use rezero::kernels::{
    Grad, NormSaved, cross_entropy, elementwise as ew, layernorm, optim, reduce, rezero as rz,
    softmax,
};

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
            pollster::block_on(gpu.run(|pass| {
                ew::add(gpu, pass, &outs[0], &a, &b, n, false, Dtype::F32)?;
                ew::scale(gpu, pass, &outs[1], &a, 0.5, n, false, Dtype::F32)?;
                ew::relu(gpu, pass, &outs[2], &a, n, Dtype::F32)?;
                ew::relu_backward(gpu, pass, &outs[3], &b, &a, n, false, Dtype::F32)?;
                ew::gelu(gpu, pass, &outs[4], &a, n, Dtype::F32)?;
                ew::gelu_backward(gpu, pass, &outs[5], &b, &a, n, false, Dtype::F32)?;
                ew::copy(gpu, pass, &outs[6], &a, n, Dtype::F32)?;
                ew::add(gpu, pass, &outs[6], &a, &b, n, true, Dtype::F32)?;
                ew::copy_vec4(gpu, pass, &dst4, &src4, v4, Dtype::F32)?;
                let alpha = gpu.upload("alpha", &[0.3f32, -0.7]);
                rz::rezero_forward(
                    gpu,
                    pass,
                    &outs[7],
                    &a,
                    &b,
                    &alpha,
                    rz::RezeroShape {
                        n,
                        alpha_index: 1,
                        dtype: Dtype::F32,
                    },
                )
            }))?;
            let mut all = read(gpu, &outs.iter().map(|o| (o, len)).collect::<Vec<_>>())?;
            all.push(pollster::block_on(gpu.read_f32(&dst4, v4 as usize))?);
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
            let clip = Some(optim::GlobalNorm {
                norm_sq: &norm_sq,
                clip: Some(1.0),
                loss_scale: None,
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
            pollster::block_on(gpu.run(|pass| {
                let (gdx, gdf, gda) = (Grad::write(&dx), Grad::write(&df), Grad::add(&dalpha));
                let shape = rz::RezeroShape {
                    n,
                    alpha_index: 0,
                    dtype: Dtype::F32,
                };
                rz::rezero_backward(gpu, pass, gdx, gdf, gda, &scratch, &dy, &f, &alpha, shape)?;
                let [p0, p1, p2] = [&params[0], &params[1], &params[2]];
                let (keep, consume) = (optim::Gradient::keep(&g), optim::Gradient::consume(&g));
                optim::sgd(gpu, pass, p0, &state[0], keep, &values, n, &sgd, clip)?;
                optim::adagrad(gpu, pass, p1, &state[1], keep, &values, n, &ada, None)?;
                optim::adam(
                    gpu, pass, p2, &state[2], &state[3], consume, &values, n, &adam, clip,
                )
            }))?;
            let mut all = read(gpu, &[(&dx, len), (&df, len), (&dalpha, 1), (&g, len)])?;
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
            pollster::block_on(
                gpu.run(|pass| reduce::sum_all(gpu, pass, &sum, &scratch, &x, n, true, false)),
            )?;
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
                pollster::block_on(gpu.run(|pass| {
                    reduce::sum_rows(gpu, pass, &sums, &x, rows, cols, false, false)?;
                    softmax::softmax_forward(gpu, pass, &y, &x, rows, cols, Dtype::F32)?;
                    softmax::softmax_backward(
                        gpu,
                        pass,
                        &dx,
                        &y,
                        &dy,
                        rows,
                        cols,
                        false,
                        Dtype::F32,
                    )
                }))?;
                // Causal softmax over square score blocks of side cols.
                let t = cols;
                let blocks = rows.min(3);
                let square = (blocks * t * t) as usize;
                let (s, ds) = (up(gpu, 10, square), up(gpu, 11, square));
                let (ys, dxs) = (out(gpu, square)?, out(gpu, square)?);
                pollster::block_on(gpu.run(|pass| {
                    softmax::softmax_causal_forward(
                        gpu,
                        pass,
                        &ys,
                        &s,
                        blocks * t,
                        t,
                        0.5,
                        Dtype::F32,
                    )?;
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
                        Dtype::F32,
                    )
                }))?;
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
                    pollster::block_on(gpu.run(|pass| {
                        let shape = layernorm::LayerNormShape {
                            rows,
                            cols,
                            dtype: Dtype::F32,
                        };
                        layernorm::layernorm_forward(
                            gpu, pass, &y, &mean, &rstd, &x, &gain, &bias, shape, 1e-5,
                        )?;
                        let saved = NormSaved {
                            x: &x,
                            mean: &mean,
                            rstd: &rstd,
                            gain: &gain,
                        };
                        let (gx, gg, gb) = (Grad::write(&dx), Grad::add(&dgain), Grad::add(&dbias));
                        let s = &scratch;
                        layernorm::layernorm_backward(gpu, pass, gx, gg, gb, s, &dy, saved, shape)?;
                        cross_entropy::cross_entropy(
                            gpu,
                            pass,
                            &loss,
                            &dlogits,
                            &row_loss,
                            &x,
                            &targets,
                            rows,
                            cols,
                            Dtype::F32,
                            None,
                        )
                    }))?;
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
    let Some([_, unchecked]) = modes() else {
        return;
    };
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
            pollster::block_on(gpu.run(|pass| {
                let shape = EmbeddingShape::new(tokens, dim, vocab);
                embedding_forward(gpu, pass, &o, &table, &ids, shape, false)?;
                let dt = Grad::write(&dtable);
                embedding_backward(gpu, pass, dt, &dout, &order, &offsets, shape)
            }))?;
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
    // The attention kernel is named, not measured (the two devices could time them
    // differently): each shape takes the next two candidates, so the row, tiled and
    // one-pass kernels are each covered, at several tile sizes.
    let shapes = [(1u32, 8u32), (15, 32), (17, 64), (65, 16), (33, 32)];
    for (i, (t, d)) in shapes.into_iter().flat_map(|s| [s, s]).enumerate() {
        let layout = HeadLayout {
            batch,
            t,
            heads,
            d,
            stride: 3 * heads * d,
            offset: heads * d,
        };
        // The packed layout the tape uses: q, k, v read in place from x's rows.
        let shape = AttentionShape::packed(batch, heads, t, d).unwrap();
        let kernels = candidates(unchecked, Pass::Backward, d);
        let kernel = kernels[i % kernels.len()];
        same(
            &format!("heads and attention t={t} d={d} {kernel:?}"),
            |gpu| {
                let rows_len = (batch * t * 3 * heads * d) as usize;
                let len = (batch * heads * t * d) as usize;
                let x = up(gpu, 18, rows_len);
                let (h, back) = (out(gpu, len)?, gpu.zeroed_f32("back", rows_len));
                let d_o = up(gpu, 22, len);
                let (o, lse) = (out(gpu, len)?, out(gpu, (shape.bh * t) as usize)?);
                let (dx, delta) = (out(gpu, rows_len)?, out(gpu, (shape.bh * t) as usize)?);
                pollster::block_on(gpu.run(|pass| {
                    rows_to_heads(gpu, pass, &h, &x, &layout)?;
                    heads_to_rows(gpu, pass, &back, &h, &layout, false)?;
                    attention_forward_with(gpu, pass, kernel, [&o, &lse, &x, &x, &x], &shape)
                }))?;
                pollster::block_on(gpu.run(|pass| {
                    let inputs = [&x, &x, &x, &o, &lse, &d_o];
                    let grads = [Grad::write(&dx); 3];
                    attention_backward_with(gpu, pass, kernel, grads, &delta, inputs, &shape)
                }))?;
                read(
                    gpu,
                    &[(&h, len), (&back, rows_len), (&o, len), (&dx, rows_len)],
                )
            },
        );
    }
}
