//! Attention read in place from a Transformer's packed projection [batch·t, 3·heads·d]
//! (q, k, v side by side in each row) and written to [batch·t, heads·d]: every kernel
//! against the CPU reference run on the head layout, the gradients written into the
//! packed columns (added where asked), and bad packed shapes refused.

mod common;

use common::assert_close;
use rezero::cpu;
use rezero::kernels::Grad;
use rezero::kernels::attention::{AttentionShape, attention_backward_with, attention_forward_with};
use rezero::kernels::attention_tune::{Pass, candidates};
use rezero::kernels::heads::HeadLayout;

/// The reference in the row layout: o [batch·t, heads·d], lse [bh, t], and dqkv
/// [batch·t, 3·heads·d] (dq, dk, dv in q's, k's and v's columns).
struct Want {
    o: Vec<f32>,
    lse: Vec<f32>,
    dqkv: Vec<f32>,
}

fn reference(qkv: &[f32], d_o: &[f32], [batch, heads, t, d]: [u32; 4]) -> Want {
    let width = heads * d;
    let layout = |stride: u32, offset: u32| HeadLayout {
        batch,
        t,
        heads,
        d,
        stride,
        offset,
    };
    let part = |i: u32| layout(3 * width, i * width);
    let [q, k, v] = [0, 1, 2].map(|i| cpu::heads::rows_to_heads(qkv, &part(i)));
    let d_o_heads = cpu::heads::rows_to_heads(d_o, &layout(width, 0));
    let (bh, t_, d_) = ((batch * heads) as usize, t as usize, d as usize);
    let (o_heads, lse) = cpu::attention::attention_forward(&q, &k, &v, bh, t_, d_);
    let (dq, dk, dv) = cpu::attention::attention_backward(&q, &k, &v, &d_o_heads, bh, t_, d_);
    let mut o = vec![0.0; d_o.len()];
    cpu::heads::heads_to_rows(&mut o, &o_heads, &layout(width, 0), false);
    let mut dqkv = vec![0.0; qkv.len()];
    for (i, g) in [dq, dk, dv].iter().enumerate() {
        cpu::heads::heads_to_rows(&mut dqkv, g, &part(i as u32), false);
    }
    Want { o, lse, dqkv }
}

#[test]
fn every_kernel_reads_and_writes_the_packed_layout() {
    let gpu = require_gpu!();
    for [batch, heads, t, d] in [[2u32, 3, 17, 32], [1, 2, 33, 64], [3, 1, 5, 8]] {
        let shape = AttentionShape::packed(batch, heads, t, d).unwrap();
        let (rows, width) = ((batch * t) as usize, (heads * d) as usize);
        let qkv = cpu::seeded(31, rows * 3 * width, -1.5, 1.5);
        let d_o = cpu::seeded(32, rows * width, -1.0, 1.0);
        let want = reference(&qkv, &d_o, [batch, heads, t, d]);
        let what = format!("packed batch={batch} heads={heads} t={t} d={d}");
        let atol = 3e-5 * (t as f32).sqrt();
        let (x, gd_o) = (gpu.upload("qkv", &qkv), gpu.upload("d_o", &d_o));
        let lse = gpu.zeroed_f32("lse", want.lse.len());
        for kernel in candidates(gpu, Pass::Forward, d) {
            let o = gpu.upload("o", &vec![f32::NAN; rows * width]);
            pollster::block_on(
                gpu.run(|p| attention_forward_with(gpu, p, kernel, [&o, &lse, &x, &x, &x], &shape)),
            )
            .unwrap();
            let got = pollster::block_on(gpu.read_f32(&o, rows * width)).unwrap();
            assert_close(&format!("{what} {kernel:?} o"), &got, &want.o, atol, 1e-4);
            let got = pollster::block_on(gpu.read_f32(&lse, want.lse.len())).unwrap();
            assert_close(
                &format!("{what} {kernel:?} lse"),
                &got,
                &want.lse,
                1e-5,
                1e-5,
            );
        }
        let o = gpu.upload("o", &want.o);
        let delta = gpu.zeroed_f32("delta", want.lse.len());
        // dq and dv added to what the buffer holds, dk written over it.
        let before = cpu::seeded(33, qkv.len(), -1.0, 1.0);
        let expected: Vec<f32> = (0..qkv.len())
            .map(|i| match (i % (3 * width)) / width {
                1 => want.dqkv[i],
                _ => want.dqkv[i] + before[i],
            })
            .collect();
        for kernel in candidates(gpu, Pass::Backward, d) {
            let dqkv = gpu.upload("dqkv", &before);
            let grads = [Grad::add(&dqkv), Grad::write(&dqkv), Grad::add(&dqkv)];
            let inputs = [&x, &x, &x, &o, &lse, &gd_o];
            pollster::block_on(
                gpu.run(|p| attention_backward_with(gpu, p, kernel, grads, &delta, inputs, &shape)),
            )
            .unwrap();
            let got = pollster::block_on(gpu.read_f32(&dqkv, qkv.len())).unwrap();
            assert_close(
                &format!("{what} {kernel:?} dqkv"),
                &got,
                &expected,
                atol,
                1e-3,
            );
        }
    }
}

#[test]
fn bad_packed_shapes_are_refused() {
    let gpu = require_gpu!();
    assert!(AttentionShape::packed(u32::MAX, 2, 4, 8).is_none());
    let kernel = rezero::kernels::attention::AttentionKernel::Rows;
    // batch 2 · 16 positions · 3 · 2 heads · 16 floats: a qkv of 3072 and an o of 1024.
    let (qkv, o) = (gpu.zeroed_f32("qkv", 3072), gpu.zeroed_f32("o", 1024));
    let lse = gpu.zeroed_f32("lse", 128);
    let forward = |s: &AttentionShape| {
        pollster::block_on(
            gpu.run(|p| attention_forward_with(gpu, p, kernel, [&o, &lse, &qkv, &qkv, &qkv], s)),
        )
    };
    forward(&AttentionShape::packed(2, 2, 16, 16).unwrap()).unwrap();
    // Twice the heads need a qkv of 6144 floats: refused before anything runs.
    let err = forward(&AttentionShape::packed(2, 4, 16, 16).unwrap()).unwrap_err();
    assert!(matches!(err, rezero::Error::Shape { .. }), "{err}");
    let err = forward(&AttentionShape::packed(2, 0, 16, 16).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            rezero::Error::Empty { .. } | rezero::Error::Shape { .. }
        ),
        "{err}"
    );
}
