//! Causal attention forward: the fused kernels (one row an invocation, and tiled with each
//! tile size that fits) and the materialised path (batched QKᵀ, causal softmax, batched
//! PV) on the same inputs, so the materialised path is the others' reference.

use super::{Case, Work};
use crate::cpu;
use crate::gpu::{Gpu, Result};
use crate::kernels::attention::{AttentionShape, attention_forward_with};
use crate::kernels::attention_tiled;
use crate::kernels::matmul::{Matmul, matmul};
use crate::kernels::softmax::softmax_causal_forward;

/// (materialised, fused kernels) forward cases for `s`. All count the useful (causal)
/// FLOPs, so their GFLOP/s compare as their times do.
pub fn attention_cases(gpu: &Gpu, s: AttentionShape) -> Result<(Case, Vec<Case>)> {
    let n = (s.bh * s.t * s.d) as usize;
    let (q, k, v) = (
        gpu.upload("q", &cpu::seeded(21, n, -1.0, 1.0)),
        gpu.upload("k", &cpu::seeded(22, n, -1.0, 1.0)),
        gpu.upload("v", &cpu::seeded(23, n, -1.0, 1.0)),
    );
    let (o, lse) = (
        gpu.zeroed_f32("o", n),
        gpu.zeroed_f32("lse", (s.bh * s.t) as usize),
    );
    let scores = (s.bh as usize) * (s.t as usize) * (s.t as usize);
    gpu.check_binding("materialised attention scores", scores as u64 * 4)?;
    let (sc, pr, o2) = (
        gpu.zeroed_f32("scores", scores),
        gpu.zeroed_f32("probabilities", scores),
        gpu.zeroed_f32("o2", n),
    );
    let shape = format!("{}x{}x{}", s.bh, s.t, s.d);
    let work = Work::Flops(s.forward_flops());
    let fused = attention_tiled::candidates(gpu, s.d)
        .into_iter()
        .map(|kernel| {
            let variant = format!("fused-{}", kernel.name());
            let buffers = [&o, &lse, &q, &k, &v].map(|b| b.clone());
            Case {
                kernel: "attention_fwd",
                shape: shape.clone(),
                variant,
                work,
                run: Box::new(move |gpu| {
                    let [o, lse, q, k, v] = &buffers;
                    gpu.run(|p| attention_forward_with(gpu, p, kernel, [o, lse, q, k, v], &s))
                }),
            }
        })
        .collect();
    let qk = Matmul::new(s.t, s.t, s.d).batch(s.bh).trans_b(true);
    let pv = Matmul::new(s.t, s.d, s.t).batch(s.bh);
    let scale = 1.0 / (s.d as f32).sqrt();
    let materialised = Case {
        kernel: "attention_fwd",
        shape,
        variant: "materialised".into(),
        work,
        run: Box::new(move |gpu| {
            gpu.run(|p| {
                matmul(gpu, p, &sc, &q, &k, None, &qk)?;
                softmax_causal_forward(gpu, p, &pr, &sc, s.bh * s.t, s.t, scale)?;
                matmul(gpu, p, &o2, &pr, &v, None, &pv).map(drop)
            })
        }),
    };
    Ok((materialised, fused))
}
