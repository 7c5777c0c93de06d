//! Causal attention, forward alone or forward with backward: the fused kernels (one row an
//! invocation, and tiled with each tile size that fits) and the materialised path (batched
//! matmuls around a causal softmax over the [bh, t, t] scores) on the same inputs, so the
//! materialised path is the others' reference: each fused kernel's results are checked
//! against it before any is timed.

use super::{Case, Work, wait};
use crate::cpu;
use crate::gpu::{Error, Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::Grad;
use crate::kernels::attention::{
    AttentionKernel, AttentionShape, attention_backward_with, attention_forward_with,
};
use crate::kernels::attention_tune::{self, Pass};
use crate::kernels::matmul::{Matmul, matmul};
use crate::kernels::softmax::{softmax_causal_backward, softmax_causal_forward};

/// Every buffer of one shape's cases: inputs, fused outputs, and the materialised path's
/// [bh, t, t] scores, probabilities and their gradients.
#[derive(Clone)]
struct Buffers {
    /// q, k, v, d_o: [bh, t, d]
    inputs: [wgpu::Buffer; 4],
    /// o, dq, dk, dv: [bh, t, d]; lse, delta: [bh, t]
    outputs: [wgpu::Buffer; 6],
    /// scores, probabilities, dP, dS: [bh, t, t]
    square: [wgpu::Buffer; 4],
}

impl Buffers {
    fn new(gpu: &Gpu, s: &AttentionShape, backward: bool) -> Result<Buffers> {
        let n = (s.bh * s.t * s.d) as usize;
        let rows = (s.bh * s.t) as usize;
        let scores = rows * s.t as usize;
        gpu.check_binding("materialised attention scores", scores as u64 * 4)?;
        let input = |seed| gpu.upload("attention input", &cpu::seeded(seed, n, -1.0, 1.0));
        let zeros = |len| gpu.zeroed_f32("attention buffer", len);
        let square = |used: bool| zeros(if used { scores } else { 1 });
        Ok(Buffers {
            inputs: [input(21), input(22), input(23), input(24)],
            outputs: [
                zeros(n),
                zeros(n),
                zeros(n),
                zeros(n),
                zeros(rows),
                zeros(rows),
            ],
            square: [
                square(true),
                square(true),
                square(backward),
                square(backward),
            ],
        })
    }

    /// The fused forward, and backward when asked, with `kernel`.
    fn fused(
        &self,
        gpu: &Gpu,
        s: &AttentionShape,
        kernel: AttentionKernel,
        backward: bool,
    ) -> Result<()> {
        let [q, k, v, d_o] = &self.inputs;
        let [o, dq, dk, dv, lse, delta] = &self.outputs;
        wait(gpu.run(|p| {
            attention_forward_with(gpu, p, kernel, [o, lse, q, k, v], s)?;
            match backward {
                true => {
                    let grads = [dq, dk, dv].map(Grad::write);
                    let inputs = [q, k, v, o, lse, d_o];
                    attention_backward_with(gpu, p, kernel, grads, delta, inputs, s)
                }
                false => Ok(()),
            }
        }))
    }

    /// o, and with `backward` dq, dk and dv, as the last run left them.
    fn results(&self, gpu: &Gpu, s: &AttentionShape, backward: bool) -> Result<Vec<Vec<f32>>> {
        let n = (s.bh * s.t * s.d) as usize;
        let count = if backward { 4 } else { 1 };
        let read = |buffer| wait(gpu.read_f32(buffer, n));
        self.outputs[..count].iter().map(read).collect()
    }

    /// The materialised forward (QKᵀ, causal softmax, PV), and backward when asked (dV =
    /// Pᵀ·dO, dP = dO·Vᵀ, dS = softmax backward, dQ = dS·K, dK = dSᵀ·Q).
    fn materialised(&self, gpu: &Gpu, s: &AttentionShape, backward: bool) -> Result<()> {
        let [q, k, v, d_o] = &self.inputs;
        let [o, dq, dk, dv, _, _] = &self.outputs;
        let [scores, probs, dp, ds] = &self.square;
        let (bh, t, d) = (s.bh, s.t, s.d);
        let scale = 1.0 / (d as f32).sqrt();
        let product = |m, n, k| Matmul::new(m, n, k).batch(bh);
        wait(gpu.run(|p| {
            matmul(gpu, p, scores, q, k, None, &product(t, t, d).trans_b(true))?;
            softmax_causal_forward(gpu, p, probs, scores, bh * t, t, scale, Dtype::F32)?;
            matmul(gpu, p, o, probs, v, None, &product(t, d, t))?;
            if backward {
                matmul(
                    gpu,
                    p,
                    dv,
                    probs,
                    d_o,
                    None,
                    &product(t, d, t).trans_a(true),
                )?;
                matmul(gpu, p, dp, d_o, v, None, &product(t, t, d).trans_b(true))?;
                softmax_causal_backward(
                    gpu,
                    p,
                    ds,
                    probs,
                    dp,
                    bh * t,
                    t,
                    scale,
                    false,
                    Dtype::F32,
                )?;
                matmul(gpu, p, dq, ds, k, None, &product(t, d, t))?;
                matmul(gpu, p, dk, ds, q, None, &product(t, d, t).trans_a(true))?;
            }
            Ok(())
        }))
    }
}

/// Errors unless each fused kernel's results match the materialised path's on the same
/// inputs (to 1e-3 of 1 + |value|): a kernel that is fast and wrong on this device, a
/// shader assumption that does not hold there, gets no row.
fn check_against_materialised(
    gpu: &Gpu,
    buffers: &Buffers,
    s: &AttentionShape,
    kernels: &[AttentionKernel],
    backward: bool,
) -> Result<()> {
    buffers.materialised(gpu, s, backward)?;
    let want = buffers.results(gpu, s, backward)?;
    for &kernel in kernels {
        buffers.fused(gpu, s, kernel, backward)?;
        let got = buffers.results(gpu, s, backward)?;
        for (name, (got, want)) in ["o", "dq", "dk", "dv"]
            .into_iter()
            .zip(got.iter().zip(&want))
        {
            let off = got.iter().zip(want).position(|(g, w)| {
                let close = (g - w).abs() <= 1e-3 * (1.0 + w.abs());
                !close // NaN is never close
            });
            if let Some(i) = off {
                return Err(Error::Unsupported {
                    op: "attention",
                    variant: kernel.name(),
                    why: format!(
                        "on this device its {name} differs from the materialised path's at \
                         element {i}: {} against {}",
                        got[i], want[i]
                    ),
                });
            }
        }
    }
    Ok(())
}

/// (materialised, fused kernels) cases for `s`: the forward (`attention_fwd`), or with
/// `backward` the forward and backward (`attention_fwd_bwd`). All count the useful causal
/// FLOPs (the backward's four products as twice the forward's two), so their GFLOP/s
/// compare as their times do.
pub fn attention_cases(gpu: &Gpu, s: AttentionShape, backward: bool) -> Result<(Case, Vec<Case>)> {
    let buffers = Buffers::new(gpu, &s, backward)?;
    let shape = format!("{}x{}x{}", s.bh, s.t, s.d);
    let (kernel, pass, work) = match backward {
        false => (
            "attention_fwd",
            Pass::Forward,
            Work::Flops(s.forward_flops()),
        ),
        true => (
            "attention_fwd_bwd",
            Pass::Backward,
            Work::Flops(3.0 * s.forward_flops()),
        ),
    };
    let kernels = attention_tune::candidates(gpu, pass, s.d);
    check_against_materialised(gpu, &buffers, &s, &kernels, backward)?;
    let fused = kernels
        .into_iter()
        .map(|choice| {
            let buffers = buffers.clone();
            Case {
                kernel,
                shape: shape.clone(),
                variant: format!("fused-{}", choice.name()),
                work,
                run: Box::new(move |gpu| buffers.fused(gpu, &s, choice, backward)),
            }
        })
        .collect();
    let materialised = Case {
        kernel,
        shape,
        variant: "materialised".into(),
        work,
        run: Box::new(move |gpu| buffers.materialised(gpu, &s, backward)),
    };
    Ok((materialised, fused))
}
