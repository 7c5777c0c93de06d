//! The fused attention on f16 activations: every forward and backward kernel (one row an
//! invocation, and each tile that fits) reading f16 q, k, v, o and dO and writing f16 o and
//! gradients, against the reference computed in f64 from the same f16-rounded values (the
//! backward's from the o the forward stored, as the kernels read it). The kernels load
//! every value into f32 and keep the tiles, the products and the softmax in f32, so the
//! f32 tolerances hold, widened by the one rounding of each f16 output.

mod common;

use common::assert_close;
use common::precision::{exact, read_as_f32, upload_as, widen};
use rezero::cpu;
use rezero::kernels::attention::{AttentionShape, attention_backward_with, attention_forward_with};
use rezero::kernels::attention_tune::{Pass, candidates};
use rezero::kernels::{Dtype, Grad};

const F16: Dtype = Dtype::F16;

/// (bh, t, d): lengths that end mid-tile, an odd head dimension, the largest.
const SHAPES: &[(u32, u32, u32)] = &[(2, 17, 64), (3, 33, 5), (1, 40, 128)];

/// Seeded values in [lo, hi), rounded to f16.
fn seeded16(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    exact(&cpu::seeded(seed, n, lo, hi), F16)
}

#[test]
fn every_forward_kernel_on_f16_matches_the_reference() {
    let Some(gpu) = common::f16_gpu() else { return };
    for &(bh, t, d) in SHAPES {
        let s = AttentionShape::heads(bh, t, d).dtype(F16);
        let n = (bh * t * d) as usize;
        let (q, k, v) = (
            seeded16(11, n, -2.0, 2.0),
            seeded16(12, n, -2.0, 2.0),
            seeded16(13, n, -1.0, 1.0),
        );
        let (o, lse) =
            cpu::attention::attention_forward(&q, &k, &v, bh as usize, t as usize, d as usize);
        for kernel in candidates(gpu, Pass::Forward, d) {
            let [gq, gk, gv] = [&q, &k, &v].map(|x| upload_as(gpu, "in", x, F16));
            let go = upload_as(gpu, "o", &vec![f32::NAN; n], F16);
            let glse = gpu.zeroed_f32("lse", (bh * t) as usize);
            let buffers = [&go, &glse, &gq, &gk, &gv];
            pollster::block_on(
                gpu.run(|pass| attention_forward_with(gpu, pass, kernel, buffers, &s)),
            )
            .unwrap();
            let what = format!("f16 {kernel:?} bh={bh} t={t} d={d}");
            let (atol, rtol) = widen((2e-5 * (t as f32).sqrt(), 1e-4), F16);
            let got = read_as_f32(gpu, &go, n, F16);
            assert_close(&format!("{what} o"), &got, &o, atol, rtol);
            let got_lse = pollster::block_on(gpu.read_f32(&glse, (bh * t) as usize)).unwrap();
            assert_close(&format!("{what} lse"), &got_lse, &lse, 1e-5, 1e-5);
        }
    }
}

#[test]
fn every_backward_kernel_on_f16_matches_the_reference() {
    let Some(gpu) = common::f16_gpu() else { return };
    for &(bh, t, d) in SHAPES {
        let s = AttentionShape::heads(bh, t, d).dtype(F16);
        let (n, rows) = ((bh * t * d) as usize, (bh * t) as usize);
        let [q, k, v, d_o] = [21, 22, 23, 24].map(|seed| seeded16(seed, n, -1.5, 1.5));
        let (o, lse) =
            cpu::attention::attention_forward(&q, &k, &v, bh as usize, t as usize, d as usize);
        let o = exact(&o, F16); // as the forward stores it
        let dims = [bh as usize, t as usize, d as usize];
        let want = cpu::attention::attention_backward_from_output([&q, &k, &v, &o, &d_o], dims);
        let [gq, gk, gv, go, gdo] = [&q, &k, &v, &o, &d_o].map(|x| upload_as(gpu, "in", x, F16));
        let glse = gpu.upload("lse", &lse);
        for kernel in candidates(gpu, Pass::Backward, d) {
            // dq written over NaN; dk and dv added to what they hold.
            let start = seeded16(25, n, -1.0, 1.0);
            let grads = [
                upload_as(gpu, "dq", &vec![f32::NAN; n], F16),
                upload_as(gpu, "dk", &start, F16),
                upload_as(gpu, "dv", &start, F16),
            ];
            let outputs = [
                Grad::write(&grads[0]),
                Grad::add(&grads[1]),
                Grad::add(&grads[2]),
            ];
            let delta = gpu.zeroed_f32("delta", rows);
            let inputs = [&gq, &gk, &gv, &go, &glse, &gdo];
            pollster::block_on(gpu.run(|pass| {
                attention_backward_with(gpu, pass, kernel, outputs, &delta, inputs, &s)
            }))
            .unwrap();
            let (atol, rtol) = widen((3e-5 * (t as f32).sqrt(), 1e-3), F16);
            let added =
                |g: &[f32]| -> Vec<f32> { g.iter().zip(&start).map(|(a, b)| a + b).collect() };
            let wants = [want.0.clone(), added(&want.1), added(&want.2)];
            for (i, name) in ["dq", "dk", "dv"].into_iter().enumerate() {
                let got = read_as_f32(gpu, &grads[i], n, F16);
                let what = format!("f16 {kernel:?} bh={bh} t={t} d={d} {name}");
                assert_close(&what, &got, &wants[i], atol, rtol);
            }
        }
    }
}
