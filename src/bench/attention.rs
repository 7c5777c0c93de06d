//! Causal attention, forward alone or forward with backward: the fused kernels (one row an
//! invocation, and tiled with each tile size that fits) and the materialised path (batched
//! matmuls around a causal softmax over the [bh, t, t] scores) on the same inputs, so the
//! materialised path is the others' reference: each fused kernel's results are checked
//! against it before any is timed. At f16 the fused kernels read and write f16 twins of
//! the buffers, holding the same (f16-rounded) inputs the f32 reference reads.

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
use crate::kernels::precision::{read_as, upload_as};
use crate::kernels::softmax::{softmax_causal_backward, softmax_causal_forward};

/// Every buffer of one shape's cases: inputs, outputs, the fused kernels' (the same
/// buffers at f32, f16 twins at f16), and the materialised path's [bh, t, t] scores,
/// probabilities and their gradients.
#[derive(Clone)]
struct Buffers {
    /// q, k, v, d_o: [bh, t, d] (f32, f16-rounded when the fused kernels run on f16)
    inputs: [wgpu::Buffer; 4],
    /// o, dq, dk, dv: [bh, t, d]; lse, delta: [bh, t]
    outputs: [wgpu::Buffer; 6],
    /// The fused kernels' inputs and outputs, of the shape's dtype (lse and delta f32).
    fused_inputs: [wgpu::Buffer; 4],
    fused_outputs: [wgpu::Buffer; 6],
    /// scores, probabilities, dP, dS: [bh, t, t]
    square: [wgpu::Buffer; 4],
}

impl Buffers {
    fn new(gpu: &Gpu, s: &AttentionShape, backward: bool) -> Result<Buffers> {
        let n = (s.bh * s.t * s.d) as usize;
        let rows = (s.bh * s.t) as usize;
        let scores = rows * s.t as usize;
        gpu.check_binding("materialised attention scores", scores as u64 * 4)?;
        let values = [21, 22, 23, 24].map(|seed| {
            let v = cpu::seeded(seed, n, -1.0, 1.0);
            if s.dtype == Dtype::F16 {
                cpu::round_f16(&v)
            } else {
                v
            }
        });
        let zeros = |len| gpu.zeroed_f32("attention buffer", len);
        let square = |used: bool| zeros(if used { scores } else { 1 });
        let inputs = values.each_ref().map(|v| gpu.upload("attention input", v));
        let outputs = [n, n, n, n, rows, rows].map(zeros);
        let (fused_inputs, fused_outputs) = match s.dtype {
            Dtype::F32 => (inputs.clone(), outputs.clone()),
            Dtype::F16 => (
                values
                    .each_ref()
                    .map(|v| upload_as(gpu, "attention input", v, Dtype::F16)),
                [n, n, n, n, rows, rows].map(zeros), // f16 ones take half of these
            ),
        };
        Ok(Buffers {
            inputs,
            outputs,
            fused_inputs,
            fused_outputs,
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
        let [q, k, v, d_o] = &self.fused_inputs;
        let [o, dq, dk, dv, lse, delta] = &self.fused_outputs;
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

    /// o, and with `backward` dq, dk and dv, as the last run left them: the fused kernels'
    /// (of the shape's dtype) or the materialised path's (f32).
    fn results(
        &self,
        gpu: &Gpu,
        s: &AttentionShape,
        backward: bool,
        fused: bool,
    ) -> Result<Vec<Vec<f32>>> {
        let n = (s.bh * s.t * s.d) as usize;
        let count = if backward { 4 } else { 1 };
        let (outputs, dtype) = match fused {
            true => (&self.fused_outputs, s.dtype),
            false => (&self.outputs, Dtype::F32),
        };
        let read = |buffer| wait(read_as(gpu, buffer, n, dtype));
        outputs[..count].iter().map(read).collect()
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
    let want = buffers.results(gpu, s, backward, false)?;
    for &kernel in kernels {
        buffers.fused(gpu, s, kernel, backward)?;
        let got = buffers.results(gpu, s, backward, true)?;
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
    // The fused rows on f16 say so as the matmul's do ("f16:"); the materialised
    // reference is f32 either way.
    let prefix = if s.dtype == Dtype::F16 { "f16:" } else { "" };
    let fused = kernels
        .into_iter()
        .map(|choice| {
            let buffers = buffers.clone();
            Case {
                kernel,
                shape: shape.clone(),
                variant: format!("{prefix}fused-{}", choice.name()),
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
