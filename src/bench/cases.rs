//! The prepared cases of every kernel family: seeded inputs, one synchronised iteration
//! per run, and the flops or bytes an iteration moves.

use super::{Case, RunFn, Work, wait};
use crate::cpu;
use crate::gpu::{Error, Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::precision;
use crate::kernels::{
    Grad, NormSaved, cross_entropy, dropout, elementwise as ew, embedding, layernorm, reduce,
    rezero as rz, softmax,
};

/// Refuses a case whose buffers of f32 (name, elements) are over the device's buffer or
/// binding limit, before anything is allocated (wgpu panics on a buffer past its limit).
pub fn check_buffers(gpu: &Gpu, case: &str, buffers: &[(&str, u64)]) -> Result<()> {
    let limits = gpu.limits();
    let limit = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    for &(what, elements) in buffers {
        let bytes = elements.checked_mul(4).ok_or_else(|| Error::Invalid {
            what: case.to_string(),
            why: format!("{what} holds {elements} floats, more than any memory"),
        })?;
        if bytes > limit {
            return Err(Error::Limits {
                what: format!("{case}: {what} in bytes"),
                needed: bytes,
                limit,
            });
        }
    }
    Ok(())
}

/// A memory-bound case over n elements: buffers `outs` written, `ins` read.
pub(super) fn memory_case(
    kernel: &'static str,
    variant: &str,
    n: u32,
    bytes_per_element: f64,
    run: RunFn,
) -> Case {
    Case {
        kernel,
        shape: n.to_string(),
        variant: variant.to_string(),
        work: Work::Bytes(bytes_per_element * n as f64),
        run,
    }
}

/// out = a over n elements: the reference for every memory-bound kernel.
pub fn copy_case(gpu: &Gpu, n: u32) -> Case {
    let a = gpu.upload("a", &cpu::seeded(3, n as usize, -1.0, 1.0));
    let out = gpu.zeroed_f32("out", n as usize);
    memory_case(
        "copy",
        "plain",
        n,
        8.0,
        Box::new(move |gpu| wait(gpu.run(|p| ew::copy(gpu, p, &out, &a, n, Dtype::F32)))),
    )
}

/// out = a four floats an iteration: the ceiling, listed beside the plain copy.
pub fn copy_vec4_case(gpu: &Gpu, n: u32) -> Case {
    let a = gpu.upload("a", &cpu::seeded(3, n as usize, -1.0, 1.0));
    let out = gpu.zeroed_f32("out", n as usize);
    memory_case(
        "copy_vec4",
        "vec4",
        n,
        8.0,
        Box::new(move |gpu| wait(gpu.run(|p| ew::copy_vec4(gpu, p, &out, &a, n, Dtype::F32)))),
    )
}

/// The fused ReZero residual, forward (reads x, f; writes y) and backward (reads dy, f;
/// writes dx, df; two-stage dα), on f32 activations and, where the device has f16, on f16
/// ones (half the bytes to move).
pub fn rezero_cases(gpu: &Gpu, n: u32) -> Vec<Case> {
    let f16 = gpu.features().contains(wgpu::Features::SHADER_F16);
    let dtypes = [Dtype::F32].into_iter().chain(f16.then_some(Dtype::F16));
    dtypes
        .flat_map(|dtype| rezero_cases_as(gpu, n, dtype))
        .collect()
}

fn rezero_cases_as(gpu: &Gpu, n: u32, dtype: Dtype) -> Vec<Case> {
    let len = n as usize;
    let (x, f, dy) = (
        precision::upload_as(gpu, "x", &cpu::seeded(4, len, -1.0, 1.0), dtype),
        precision::upload_as(gpu, "f", &cpu::seeded(5, len, -1.0, 1.0), dtype),
        precision::upload_as(gpu, "dy", &cpu::seeded(6, len, -1.0, 1.0), dtype),
    );
    let (y, dx, df) = (
        gpu.zeroed_f32("y", len),
        gpu.zeroed_f32("dx", len),
        gpu.zeroed_f32("df", len),
    );
    let (alpha, dalpha, scratch) = (
        gpu.upload("alpha", &[0.5f32]),
        gpu.zeroed_f32("dalpha", 1),
        gpu.zeroed_f32("scratch", rz::REZERO_SCRATCH_LEN),
    );
    let (f2, alpha2) = (f.clone(), alpha.clone());
    let shape = rz::RezeroShape {
        n,
        alpha_index: 0,
        dtype,
    };
    let (variant, element) = match dtype {
        Dtype::F32 => ("fused", 4.0),
        Dtype::F16 => ("fused-f16", 2.0),
    };
    vec![
        memory_case(
            "rezero_forward",
            variant,
            n,
            3.0 * element,
            Box::new(move |gpu| {
                wait(gpu.run(|p| rz::rezero_forward(gpu, p, &y, &x, &f, &alpha, shape)))
            }),
        ),
        memory_case(
            "rezero_backward",
            variant,
            n,
            4.0 * element,
            Box::new(move |gpu| {
                let (gx, gf, ga) = (Grad::write(&dx), Grad::write(&df), Grad::add(&dalpha));
                wait(gpu.run(|p| {
                    rz::rezero_backward(gpu, p, gx, gf, ga, &scratch, &dy, &f2, &alpha2, shape)
                }))
            }),
        ),
    ]
}

/// add, scale, relu, gelu and the two backwards over n elements.
pub fn elementwise_cases(gpu: &Gpu, n: u32) -> Vec<Case> {
    let len = n as usize;
    let (a, b) = (
        gpu.upload("a", &cpu::seeded(7, len, -1.0, 1.0)),
        gpu.upload("b", &cpu::seeded(8, len, -1.0, 1.0)),
    );
    let out = gpu.zeroed_f32("out", len);
    let mut cases = Vec::new();
    let mut add = |kernel: &'static str, bytes: f64, run: RunFn| {
        cases.push(memory_case(kernel, "plain", n, bytes, run))
    };
    let (a1, b1, o1) = (a.clone(), b.clone(), out.clone());
    add(
        "add",
        12.0,
        Box::new(move |gpu| {
            wait(gpu.run(|p| ew::add(gpu, p, &o1, &a1, &b1, n, false, Dtype::F32)))
        }),
    );
    let (a1, o1) = (a.clone(), out.clone());
    add(
        "scale",
        8.0,
        Box::new(move |gpu| {
            wait(gpu.run(|p| ew::scale(gpu, p, &o1, &a1, 0.5, n, false, Dtype::F32)))
        }),
    );
    let (a1, o1) = (a.clone(), out.clone());
    add(
        "relu",
        8.0,
        Box::new(move |gpu| wait(gpu.run(|p| ew::relu(gpu, p, &o1, &a1, n, Dtype::F32)))),
    );
    let (a1, b1, o1) = (a.clone(), b.clone(), out.clone());
    add(
        "relu_backward",
        12.0,
        Box::new(move |gpu| {
            wait(gpu.run(|p| ew::relu_backward(gpu, p, &o1, &a1, &b1, n, false, Dtype::F32)))
        }),
    );
    let (a1, o1) = (a.clone(), out.clone());
    add(
        "gelu",
        8.0,
        Box::new(move |gpu| wait(gpu.run(|p| ew::gelu(gpu, p, &o1, &a1, n, Dtype::F32)))),
    );
    let (a1, b1, o1) = (a.clone(), b.clone(), out.clone());
    add(
        "gelu_backward",
        12.0,
        Box::new(move |gpu| {
            wait(gpu.run(|p| ew::gelu_backward(gpu, p, &o1, &a1, &b1, n, false, Dtype::F32)))
        }),
    );
    // Dropout at p = 0.1 (a mask drawn per element; the step key is one more read).
    let step = gpu.upload("dropout step", &[dropout::Mask::step_key(1)]);
    let mask = dropout::Mask {
        p: 0.1,
        site: dropout::Mask::site_key(0, 0),
    };
    add(
        "dropout",
        8.0,
        Box::new(move |gpu| {
            let f32 = crate::kernels::Dtype::F32;
            wait(gpu.run(|p| dropout::dropout_forward(gpu, p, &out, &a, &step, n, mask, f32)))
        }),
    );
    cases
}

/// Softmax forward (reads x, writes y) and backward (reads y, dy; writes dx) over rows.
pub fn softmax_cases(gpu: &Gpu, rows: u32, cols: u32) -> Vec<Case> {
    let len = (rows * cols) as usize;
    let (x, dy) = (
        gpu.upload("x", &cpu::seeded(9, len, -4.0, 4.0)),
        gpu.upload("dy", &cpu::seeded(10, len, -1.0, 1.0)),
    );
    let (y, dx) = (gpu.zeroed_f32("y", len), gpu.zeroed_f32("dx", len));
    let y2 = y.clone();
    let shape = format!("{rows}x{cols}");
    vec![
        Case {
            kernel: "softmax_forward",
            shape: shape.clone(),
            variant: "row".into(),
            work: Work::Bytes(8.0 * len as f64),
            run: Box::new(move |gpu| {
                wait(gpu.run(|p| softmax::softmax_forward(gpu, p, &y, &x, rows, cols, Dtype::F32)))
            }),
        },
        Case {
            kernel: "softmax_backward",
            shape,
            variant: "row".into(),
            work: Work::Bytes(12.0 * len as f64),
            run: Box::new(move |gpu| {
                wait(gpu.run(|p| {
                    softmax::softmax_backward(gpu, p, &dx, &y2, &dy, rows, cols, false, Dtype::F32)
                }))
            }),
        },
    ]
}

/// LayerNorm forward (reads x, writes y) and backward (reads dy, x; writes dx; gain/bias sums).
pub fn layernorm_cases(gpu: &Gpu, rows: u32, cols: u32) -> Vec<Case> {
    let (len, r, c) = ((rows * cols) as usize, rows as usize, cols as usize);
    let (x, dy) = (
        gpu.upload("x", &cpu::seeded(11, len, -2.0, 2.0)),
        gpu.upload("dy", &cpu::seeded(12, len, -1.0, 1.0)),
    );
    let (gain, bias) = (
        gpu.upload("gain", &vec![1.0f32; c]),
        gpu.zeroed_f32("bias", c),
    );
    let (y, mean, rstd) = (
        gpu.zeroed_f32("y", len),
        gpu.zeroed_f32("mean", r),
        gpu.zeroed_f32("rstd", r),
    );
    let (dx, dgain, dbias) = (
        gpu.zeroed_f32("dx", len),
        gpu.zeroed_f32("dgain", c),
        gpu.zeroed_f32("dbias", c),
    );
    let scratch = gpu.zeroed_f32("scratch", layernorm::layernorm_scratch_len(rows, cols));
    let (x2, mean2, rstd2, gain2) = (x.clone(), mean.clone(), rstd.clone(), gain.clone());
    let shape = format!("{rows}x{cols}");
    vec![
        Case {
            kernel: "layernorm_forward",
            shape: shape.clone(),
            variant: "row".into(),
            work: Work::Bytes(8.0 * len as f64),
            run: Box::new(move |gpu| {
                wait(gpu.run(|p| {
                    let shape = layernorm::LayerNormShape {
                        rows,
                        cols,
                        dtype: Dtype::F32,
                    };
                    layernorm::layernorm_forward(
                        gpu, p, &y, &mean, &rstd, &x, &gain, &bias, shape, 1e-5,
                    )
                }))
            }),
        },
        // The input pass reads dy and x and writes dx; the parameter pass reads dy and x again.
        Case {
            kernel: "layernorm_backward",
            shape,
            variant: "row+col".into(),
            work: Work::Bytes(20.0 * len as f64),
            run: Box::new(move |gpu| {
                let saved = NormSaved {
                    x: &x2,
                    mean: &mean2,
                    rstd: &rstd2,
                    gain: &gain2,
                };
                let shape = layernorm::LayerNormShape {
                    rows,
                    cols,
                    dtype: Dtype::F32,
                };
                let (gx, gg, gb) = (Grad::write(&dx), Grad::add(&dgain), Grad::add(&dbias));
                wait(gpu.run(|p| {
                    layernorm::layernorm_backward(gpu, p, gx, gg, gb, &scratch, &dy, saved, shape)
                }))
            }),
        },
    ]
}

/// Whole-tensor sum of squares (two stages) and per-row sums, each reading n floats.
pub fn reduce_cases(gpu: &Gpu, n: u32) -> Vec<Case> {
    let x = gpu.upload("x", &cpu::seeded(13, n as usize, -1.0, 1.0));
    let (total, scratch) = (
        gpu.zeroed_f32("total", 1),
        gpu.zeroed_f32("scratch", reduce::REDUCE_SCRATCH_LEN),
    );
    // Rows of 1024 (a wide activation), or one row when n is smaller or not a multiple.
    let cols = if n % 1024 == 0 { 1024 } else { n };
    let rows = n / cols;
    let out = gpu.zeroed_f32("rows", rows as usize);
    let x2 = x.clone();
    vec![
        memory_case(
            "sum_all (squares)",
            "two-stage",
            n,
            4.0,
            Box::new(move |gpu| {
                wait(gpu.run(|p| reduce::sum_all(gpu, p, &total, &scratch, &x, n, true, false)))
            }),
        ),
        Case {
            kernel: "sum_rows",
            shape: format!("{rows}x{cols}"),
            variant: "row".into(),
            work: Work::Bytes(4.0 * n as f64),
            run: Box::new(move |gpu| {
                wait(gpu.run(|p| reduce::sum_rows(gpu, p, &out, &x2, rows, cols, false, false)))
            }),
        },
    ]
}

/// Embedding lookup of `tokens` ids into a [vocab, dim] table, and its scatter-add backward.
pub fn embedding_cases(gpu: &Gpu, tokens: u32, dim: u32, vocab: u32) -> Result<Vec<Case>> {
    let (t, d, v) = (tokens as usize, dim as usize, vocab as usize);
    let ids = cpu::seeded_ids(14, t, vocab);
    let groups = embedding::IdGroups::new(&ids, vocab)?;
    let (table, gids, out) = (
        gpu.upload("table", &cpu::seeded(15, v * d, -1.0, 1.0)),
        gpu.upload("ids", &ids),
        gpu.zeroed_f32("out", t * d),
    );
    let (dout, order, offsets, dtable) = (
        gpu.upload("dout", &cpu::seeded(16, t * d, -1.0, 1.0)),
        gpu.upload("order", &groups.order),
        gpu.upload("offsets", &groups.offsets),
        gpu.zeroed_f32("dtable", v * d),
    );
    let shape = format!("{tokens}x{dim}/v{vocab}");
    let td = tokens as f64 * dim as f64;
    Ok(vec![
        // Reads one table row and writes one output row per token.
        Case {
            kernel: "embedding_forward",
            shape: shape.clone(),
            variant: "gather".into(),
            work: Work::Bytes(8.0 * td),
            run: Box::new(move |gpu| {
                wait(gpu.run(|p| {
                    let shape = embedding::EmbeddingShape::new(tokens, dim, vocab);
                    embedding::embedding_forward(gpu, p, &out, &table, &gids, shape, false)
                }))
            }),
        },
        // Reads every dout row once, reads and writes every table row once.
        Case {
            kernel: "embedding_backward",
            shape,
            variant: "grouped".into(),
            work: Work::Bytes(4.0 * td + 8.0 * vocab as f64 * dim as f64),
            run: Box::new(move |gpu| {
                let shape = embedding::EmbeddingShape::new(tokens, dim, vocab);
                let dt = Grad::add(&dtable);
                wait(gpu.run(|p| {
                    embedding::embedding_backward(gpu, p, dt, &dout, &order, &offsets, shape)
                }))
            }),
        },
    ])
}

/// Cross-entropy over [rows, cols] logits: reads the logits, writes their gradient.
pub fn cross_entropy_cases(gpu: &Gpu, rows: u32, cols: u32) -> Vec<Case> {
    let (r, len) = (rows as usize, rows as usize * cols as usize);
    let (logits, targets) = (
        gpu.upload("logits", &cpu::seeded(17, len, -4.0, 4.0)),
        gpu.upload("targets", &cpu::seeded_ids(18, r, cols)),
    );
    let (loss, dlogits, row_loss) = (
        gpu.zeroed_f32("loss", 1),
        gpu.zeroed_f32("dlogits", len),
        gpu.zeroed_f32("row_loss", r),
    );
    vec![Case {
        kernel: "cross_entropy",
        shape: format!("{rows}x{cols}"),
        variant: "row".into(),
        work: Work::Bytes(8.0 * len as f64),
        run: Box::new(move |gpu| {
            wait(gpu.run(|p| {
                cross_entropy::cross_entropy(
                    gpu,
                    p,
                    &loss,
                    &dlogits,
                    &row_loss,
                    &logits,
                    &targets,
                    rows,
                    cols,
                    Dtype::F32,
                    None,
                )
            }))
        }),
    }]
}
