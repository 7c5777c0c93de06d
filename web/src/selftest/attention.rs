//! Self-test cases of attention: each kind of kernel that fits the device, forward (the
//! row kernel, the tiled one, which takes its softmax by subgroup shuffles where the
//! device's probe allows) and backward (rows, tiled, one pass a head), the defaults `Auto`
//! runs, and the packed layout of a Transformer's projection through `Auto`.

use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::Grad;
use rezero::kernels::attention::{self as att, AttentionKernel, AttentionShape};
use rezero::kernels::attention_tiled::Tiles;
use rezero::kernels::attention_tune::{Pass, default_kernel, usable};
use rezero::kernels::heads::HeadLayout;

use super::harness::{Outcome, Runner, Tol, Verdict, seeded};

pub async fn run(run: &mut Runner<'_>) {
    let gpu = run.gpu;
    // One head dimension (not a multiple of 4) throughout: it is an override constant,
    // and every kernel built is a pipeline compiled, which costs seconds on a CPU adapter.
    let d = 6;
    for (bh, t) in [(1u32, 1u32), (2, 17), (3, 33), (1, 40)] {
        let s = AttentionShape::heads(bh, t, d);
        for kernel in kernels(gpu, Pass::Forward, d) {
            let case = format!("forward {} bh={bh} t={t} d={d}", name(gpu, kernel));
            run.case("attention", case, forward(gpu, s, kernel)).await;
        }
    }
    for (bh, t) in [(2u32, 17u32), (3, 33)] {
        let s = AttentionShape::heads(bh, t, d);
        for kernel in kernels(gpu, Pass::Backward, d) {
            let case = format!("backward {} bh={bh} t={t} d={d}", kernel.name());
            run.case("attention", case, backward(gpu, s, kernel)).await;
        }
    }
    let [batch, heads, t] = [2u32, 2, 9];
    let case = format!("packed auto forward+backward batch={batch} heads={heads} t={t} d={d}");
    run.case("attention", case, packed(gpu, [batch, heads, t, d]))
        .await;
}

/// The kernels of `pass` checked here, each where it fits the device: the row kernel, the
/// one `Auto` runs by default, and one tile size of each other kind (the forward's 16×16
/// takes the subgroup path wherever the device allows any; the backward's two kernels and
/// its one-pass kernel). Every tile size of a kind is the same code with other constants,
/// and each costs a pipeline compile.
fn kernels(gpu: &Gpu, pass: Pass, d: u32) -> Vec<AttentionKernel> {
    let tiles = |br, bc| Tiles { br, bc };
    let mut list = vec![AttentionKernel::Rows, default_kernel(gpu, pass, d)];
    let others = match pass {
        Pass::Forward => vec![AttentionKernel::Tiled(tiles(16, 16))],
        Pass::Backward => vec![
            AttentionKernel::Tiled(tiles(16, 16)),
            AttentionKernel::PerHead(tiles(16, 32)),
        ],
    };
    for kernel in others {
        if !list.contains(&kernel) && usable(gpu, pass, d, kernel) {
            list.push(kernel);
        }
    }
    list
}

/// The kernel's name, saying when the tiled forward takes the subgroup path here.
fn name(gpu: &Gpu, kernel: AttentionKernel) -> String {
    match kernel {
        AttentionKernel::Tiled(tiles) if tiles.subgroup_softmax(gpu) => {
            format!("{} (subgroups)", kernel.name())
        }
        _ => kernel.name(),
    }
}

/// (q, k, v, dO) of a head-layout shape.
fn inputs(s: &AttentionShape) -> [Vec<f32>; 4] {
    let n = (s.bh * s.t * s.d) as usize;
    [
        seeded(1, n, -2.0, 2.0),
        seeded(2, n, -2.0, 2.0),
        seeded(3, n, -1.0, 1.0),
        seeded(4, n, -1.0, 1.0),
    ]
}

/// The output's bound: its sums grow with the length.
fn tol_o(t: u32) -> Tol {
    Tol::new(2e-5 * (t as f32).sqrt().max(1.0), 1e-4)
}

async fn forward(gpu: &Gpu, s: AttentionShape, kernel: AttentionKernel) -> Outcome {
    let (n, rows) = ((s.bh * s.t * s.d) as usize, (s.bh * s.t) as usize);
    let [q, k, v, _] = inputs(&s);
    let (gq, gk, gv) = (
        gpu.upload("q", &q),
        gpu.upload("k", &k),
        gpu.upload("v", &v),
    );
    let (go, glse) = (
        gpu.upload("o", &vec![f32::NAN; n]),
        gpu.upload("lse", &vec![f32::NAN; rows]),
    );
    let buffers = [&go, &glse, &gq, &gk, &gv];
    gpu.run(|p| att::attention_forward_with(gpu, p, kernel, buffers, &s))
        .await?;
    let (bh, t, d) = (s.bh as usize, s.t as usize, s.d as usize);
    let (o, lse) = cpu::attention::attention_forward(&q, &k, &v, bh, t, d);
    let mut verdict = Verdict::default();
    verdict.expect(gpu, "o", &go, &o, tol_o(s.t)).await?;
    let lse_tol = Tol::new(1e-5, 1e-5);
    verdict.expect(gpu, "lse", &glse, &lse, lse_tol).await?;
    Ok(verdict)
}

/// The forward (`Auto`), then `kernel`'s backward: dq and dv written, dk added to.
async fn backward(gpu: &Gpu, s: AttentionShape, kernel: AttentionKernel) -> Outcome {
    let (n, rows) = ((s.bh * s.t * s.d) as usize, (s.bh * s.t) as usize);
    let [q, k, v, d_o] = inputs(&s);
    let (gq, gk, gv, gdo) = (
        gpu.upload("q", &q),
        gpu.upload("k", &k),
        gpu.upload("v", &v),
        gpu.upload("do", &d_o),
    );
    let (go, glse, gdelta) = (
        gpu.zeroed_f32("o", n),
        gpu.zeroed_f32("lse", rows),
        gpu.zeroed_f32("delta", rows),
    );
    let nan = vec![f32::NAN; n];
    let (gdq, gdk, gdv) = (
        gpu.upload("dq", &nan),
        gpu.upload("dk", &vec![0.25; n]),
        gpu.upload("dv", &nan),
    );
    gpu.run(|p| {
        att::attention_forward(gpu, p, &go, &glse, &gq, &gk, &gv, &s)?;
        let grads = [Grad::write(&gdq), Grad::add(&gdk), Grad::write(&gdv)];
        let inputs = [&gq, &gk, &gv, &go, &glse, &gdo];
        att::attention_backward_with(gpu, p, kernel, grads, &gdelta, inputs, &s)
    })
    .await?;
    let (bh, t, d) = (s.bh as usize, s.t as usize, s.d as usize);
    let (dq, mut dk, dv) = cpu::attention::attention_backward(&q, &k, &v, &d_o, bh, t, d);
    dk.iter_mut().for_each(|g| *g += 0.25);
    let tol = Tol::new(tol_o(s.t).atol, 1e-3);
    let mut verdict = Verdict::default();
    verdict.expect(gpu, "dq", &gdq, &dq, tol).await?;
    verdict.expect(gpu, "dk (added to)", &gdk, &dk, tol).await?;
    verdict.expect(gpu, "dv", &gdv, &dv, tol).await?;
    Ok(verdict)
}

/// Attention read in place from a packed projection [batch·t, 3·heads·d] and written to
/// [batch·t, heads·d], the gradients into the packed columns; the reference runs on the
/// head layout.
async fn packed(gpu: &Gpu, [batch, heads, t, d]: [u32; 4]) -> Outcome {
    let shape = AttentionShape::packed(batch, heads, t, d).ok_or(rezero::Error::Invalid {
        what: "packed attention shape".into(),
        why: "batch × heads overflows".into(),
    })?;
    let (rows, width) = ((batch * t) as usize, heads * d);
    let layout = |stride: u32, offset: u32| HeadLayout {
        batch,
        t,
        heads,
        d,
        stride,
        offset,
    };
    let part = |i: u32| layout(3 * width, i * width);
    let qkv = seeded(5, rows * 3 * width as usize, -1.5, 1.5);
    let d_o = seeded(6, rows * width as usize, -1.0, 1.0);
    let (x, gdo) = (gpu.upload("qkv", &qkv), gpu.upload("do", &d_o));
    let (go, gdqkv) = (
        gpu.upload("o", &vec![f32::NAN; d_o.len()]),
        gpu.upload("dqkv", &vec![f32::NAN; qkv.len()]),
    );
    let bh_t = (batch * heads * t) as usize;
    let (glse, gdelta) = (gpu.zeroed_f32("lse", bh_t), gpu.zeroed_f32("delta", bh_t));
    gpu.run(|p| {
        att::attention_forward(gpu, p, &go, &glse, &x, &x, &x, &shape)?;
        let grads = [Grad::write(&gdqkv); 3];
        let inputs = [&x, &x, &x, &go, &glse, &gdo];
        att::attention_backward(gpu, p, grads, &gdelta, inputs, &shape)
    })
    .await?;
    let [q, k, v] = [0, 1, 2].map(|i| cpu::heads::rows_to_heads(&qkv, &part(i)));
    let d_o_heads = cpu::heads::rows_to_heads(&d_o, &layout(width, 0));
    let (bh, t_, d_) = ((batch * heads) as usize, t as usize, d as usize);
    let (o_heads, lse) = cpu::attention::attention_forward(&q, &k, &v, bh, t_, d_);
    let (dq, dk, dv) = cpu::attention::attention_backward(&q, &k, &v, &d_o_heads, bh, t_, d_);
    let mut o = vec![0.0; d_o.len()];
    cpu::heads::heads_to_rows(&mut o, &o_heads, &layout(width, 0), false);
    let mut dqkv = vec![0.0; qkv.len()];
    for (i, g) in [dq, dk, dv].iter().enumerate() {
        cpu::heads::heads_to_rows(&mut dqkv, g, &part(i as u32), false);
    }
    let mut verdict = Verdict::default();
    verdict.expect(gpu, "o", &go, &o, tol_o(t)).await?;
    verdict
        .expect(gpu, "lse", &glse, &lse, Tol::new(1e-5, 1e-5))
        .await?;
    let tol = Tol::new(tol_o(t).atol, 1e-3);
    verdict.expect(gpu, "dqkv", &gdqkv, &dqkv, tol).await?;
    Ok(verdict)
}
