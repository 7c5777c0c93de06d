//! The tape on f16 activations (mixed precision): a ReZero MLP block's loss and every
//! parameter's gradient against the same step on the f32 tape (itself checked against
//! finite differences in tape_gradcheck.rs), the loss scale carried through backward, the
//! pool holding about half the bytes, the image ops of a ResNet block, and the ops not yet
//! on f16 refused clearly.
//!
//! The tolerance: every f16 activation and activation gradient is the f32 value rounded
//! once, a relative error of at most ε/2 (ε = 2⁻¹⁰, `F16_EPSILON`). To first order the
//! errors of the R roundings along the longest path from the input through the loss and
//! back to a parameter add up, so each gradient is compared norm-wise:
//! ‖g₁₆ − g₃₂‖ ≤ R·ε·‖g₃₂‖, R counting the f16 tensors on that path (here 14: the input, the
//! block's pre-activation, activation, dropout, residual and norm outputs, the logits; then
//! their seven gradients). The loss, one f32 sum of f16 logits, gets the same bound.

mod common;

use common::f16_gpu;
use rezero::cpu;
use rezero::kernels::Dtype;
use rezero::kernels::batchnorm::BatchNormConfig;
use rezero::kernels::bias::Activation;
use rezero::kernels::loss_scale::LossScaleRule;
use rezero::tape::{DropoutStep, Param, RunningStats, Tape};

/// f16 tensors on the longest path forward and back (see the module docs).
const ROUNDINGS: f32 = 14.0;

/// The block's parameters: w_in [h, d], b_in [h], w [h, h], b [h], alphas [1] (0.5, so the
/// branch counts), gain and bias [h], w_out [c, h].
fn params(gpu: &rezero::Gpu, (d, h, c): (usize, usize, usize)) -> Vec<Param> {
    let p = |name: &str, shape: &[usize], seed: u64, lo: f32, hi: f32| {
        let values = cpu::seeded(seed, shape.iter().product(), lo, hi);
        Param::new(gpu, name, shape, &values, true).unwrap()
    };
    vec![
        p("w_in", &[h, d], 1, -0.5, 0.5),
        p("b_in", &[h], 2, -0.1, 0.1),
        p("w", &[h, h], 3, -0.3, 0.3),
        p("b", &[h], 4, -0.1, 0.1),
        Param::new(gpu, "alphas", &[1], &[0.5], false).unwrap(),
        p("gain", &[h], 5, 0.8, 1.2),
        p("bias", &[h], 6, -0.1, 0.1),
        p("w_out", &[c, h], 7, -0.5, 0.5),
    ]
}

/// One forward and backward of the block (its branch through dropout of p = 0.1, the same
/// mask at either precision) on a tape of `dtype` (loss-scaled by `scale`
/// where given); the loss, and the parameters' gradients (zeroed first).
fn step(
    gpu: &rezero::Gpu,
    ps: &[Param],
    dtype: Dtype,
    scale: Option<f32>,
) -> (f32, Vec<Vec<f32>>, u64) {
    let (d, c) = (ps[0].shape[1], ps[7].shape[0]);
    let rows = 48 * d; // many rows: the activations outweigh the weights' f16 copies
    for p in ps {
        gpu.write(&p.grad, &vec![0.0f32; p.len()]);
    }
    let mut tape = Tape::new(gpu);
    tape.set_precision(dtype).unwrap();
    let state = scale.map(|s| {
        let rule = LossScaleRule {
            init_scale: s,
            ..Default::default()
        };
        gpu.upload("scaler", &rule.initial_state().to_values())
    });
    tape.set_loss_scale(state.as_ref());
    tape.set_dropout(Some(DropoutStep { p: 0.1, seed: 1 }), 1);
    let x = tape
        .input(&cpu::seeded(8, rows * d, -1.0, 1.0), &[rows, d])
        .unwrap();
    let t: Vec<_> = ps.iter().map(|p| tape.param(p)).collect();
    let h0 = tape.linear(&x, &t[0], Some(&t[1])).unwrap();
    let f = tape
        .linear_activation(&h0, &t[2], &t[3], Activation::Gelu)
        .unwrap();
    let f = tape.dropout(&f).unwrap();
    let h1 = tape.rezero(&h0, &f, &t[4], 0).unwrap();
    let h2 = tape.layernorm(&h1, &t[5], &t[6], 1e-5).unwrap();
    let logits = tape.linear(&h2, &t[7], None).unwrap();
    let targets = cpu::seeded_ids(9, rows, c as u32);
    let loss = tape.cross_entropy(&logits, &targets).unwrap();
    assert_eq!((h2.dtype(), loss.dtype()), (dtype, Dtype::F32));
    tape.backward(&loss).unwrap();
    let value = pollster::block_on(tape.read(&loss)).unwrap()[0];
    (value, grads_of(gpu, ps), tape.peak_bytes_held())
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// The gradients the parameters hold.
fn grads_of(gpu: &rezero::Gpu, ps: &[Param]) -> Vec<Vec<f32>> {
    ps.iter()
        .map(|p| pollster::block_on(gpu.read_f32(&p.grad, p.len())).unwrap())
        .collect()
}

/// Each parameter's f16 gradient within `bound` of its f32 one, norm-wise relative (and
/// the f32 one not zero, so there is something to compare).
fn assert_grads_within(ps: &[Param], grads16: &[Vec<f32>], grads32: &[Vec<f32>], bound: f32) {
    for ((p, g16), g32) in ps.iter().zip(grads16).zip(grads32) {
        let diff: Vec<f32> = g16.iter().zip(g32).map(|(a, b)| a - b).collect();
        let rel = norm(&diff) / norm(g32);
        eprintln!("{}: relative error {rel:.2e} (bound {bound:.2e})", p.name);
        assert!(rel <= bound, "{}: relative error {rel} > {bound}", p.name);
        assert!(norm(g32) > 0.0, "{}: no gradient to compare", p.name);
    }
}

#[test]
fn an_f16_step_matches_the_f32_one_within_its_roundings() {
    let Some(gpu) = f16_gpu() else { return };
    let ps = params(gpu, (20, 64, 10));
    let (loss32, grads32, _) = step(gpu, &ps, Dtype::F32, None);
    let (loss16, grads16, _) = step(gpu, &ps, Dtype::F16, None);
    let bound = ROUNDINGS * cpu::F16_EPSILON;
    let rel = (loss16 - loss32).abs() / loss32.abs();
    assert!(rel <= bound, "loss {loss16} vs {loss32}: {rel} > {bound}");
    assert_grads_within(&ps, &grads16, &grads32, bound);
}

/// With a loss scale S the parameters' gradients are S times the unscaled ones (the
/// optimizer divides it out), within the same roundings.
#[test]
fn the_loss_scale_rides_through_backward() {
    let Some(gpu) = f16_gpu() else { return };
    let ps = params(gpu, (20, 64, 10));
    let (_, plain, _) = step(gpu, &ps, Dtype::F16, None);
    let s = 1024.0;
    let (_, scaled, _) = step(gpu, &ps, Dtype::F16, Some(s));
    let bound = ROUNDINGS * cpu::F16_EPSILON;
    for ((p, g), gs) in ps.iter().zip(&plain).zip(&scaled) {
        let diff: Vec<f32> = gs.iter().zip(g).map(|(a, b)| a / s - b).collect();
        let rel = norm(&diff) / norm(g);
        assert!(
            rel <= bound,
            "{}: scaled/S vs plain {rel} > {bound}",
            p.name
        );
    }
}

/// The same block at f16 holds about half the pool bytes of f32 (activations and their
/// gradients at 2 bytes; the size classes are powers of two, so not exactly half).
#[test]
fn an_f16_tape_holds_about_half_the_bytes() {
    let Some(gpu) = f16_gpu() else { return };
    let ps = params(gpu, (16, 128, 8));
    let (_, _, bytes32) = step(gpu, &ps, Dtype::F32, None);
    let (_, _, bytes16) = step(gpu, &ps, Dtype::F16, None);
    assert!(
        (bytes16 as f64) <= 0.6 * bytes32 as f64,
        "f16 {bytes16} bytes, f32 {bytes32}"
    );
}

/// A Transformer-shaped graph (embedding, the packed qkv projection, causal attention, the
/// output projection, the loss) on the f16 tape against the f32 one. The embedding and the
/// attention run in f32 inside the f16 tape (their inputs cast up, their outputs rounded),
/// so the roundings on the longest path are as in the block above.
#[test]
fn the_embedding_and_attention_run_inside_an_f16_tape() {
    let Some(gpu) = f16_gpu() else { return };
    let (vocab, dim, heads, batch, t) = (32, 16, 2, 3, 10);
    let p = |name: &str, shape: &[usize], seed: u64| {
        let values = cpu::seeded(seed, shape.iter().product(), -0.5, 0.5);
        Param::new(gpu, name, shape, &values, true).unwrap()
    };
    let ps = [
        p("table", &[vocab, dim], 1),
        p("w_qkv", &[3 * dim, dim], 2),
        p("w_out", &[vocab, dim], 3),
    ];
    let ids = cpu::seeded_ids(4, batch * t, vocab as u32);
    let targets = cpu::seeded_ids(5, batch * t, vocab as u32);
    let run = |dtype: Dtype| {
        for p in &ps {
            gpu.write(&p.grad, &vec![0.0f32; p.len()]);
        }
        let mut tape = Tape::new(gpu);
        tape.set_precision(dtype).unwrap();
        let t_: Vec<_> = ps.iter().map(|p| tape.param(p)).collect();
        let x = tape.embedding(&t_[0], &ids).unwrap();
        let qkv = tape.linear(&x, &t_[1], None).unwrap();
        let o = tape.causal_attention(&qkv, batch, heads).unwrap();
        let logits = tape.linear(&o, &t_[2], None).unwrap();
        let loss = tape.cross_entropy(&logits, &targets).unwrap();
        assert_eq!(o.dtype(), dtype);
        tape.backward(&loss).unwrap();
        let value = pollster::block_on(tape.read(&loss)).unwrap()[0];
        (value, grads_of(gpu, &ps))
    };
    let ((loss32, grads32), (loss16, grads16)) = (run(Dtype::F32), run(Dtype::F16));
    let bound = ROUNDINGS * cpu::F16_EPSILON;
    assert!(
        (loss16 - loss32).abs() <= bound * loss32.abs(),
        "loss {loss16} vs {loss32}"
    );
    assert_grads_within(&ps, &grads16, &grads32, bound);
}

/// A ResNet-shaped graph on the f16 tape against the f32 one: a convolution, batch norm,
/// ReLU, a strided convolution with bias, the zero-padded shortcut and a ReZero residual,
/// global average pooling and the classifier. Its longest path holds 9 f16 tensors forward
/// (the input, conv, norm, relu, conv, residual, pool, logits and the shortcut's copy) and
/// 8 gradients back: R = 17 in the bound of the module docs.
#[test]
fn the_image_ops_run_on_an_f16_tape() {
    let Some(gpu) = f16_gpu() else { return };
    let (batch, classes) = (4, 10);
    let p = |name: &str, shape: &[usize], seed: u64, lo: f32, hi: f32| {
        let values = cpu::seeded(seed, shape.iter().product(), lo, hi);
        Param::new(gpu, name, shape, &values, true).unwrap()
    };
    let ps = [
        p("w0", &[4, 3, 3, 3], 1, -0.4, 0.4),
        p("gamma", &[4], 3, 0.8, 1.2),
        p("beta", &[4], 4, -0.1, 0.1),
        p("w1", &[6, 4, 3, 3], 5, -0.3, 0.3),
        p("b1", &[6], 2, -0.1, 0.1),
        Param::new(gpu, "alphas", &[1], &[0.5], false).unwrap(),
        p("w_out", &[classes, 6], 6, -0.5, 0.5),
    ];
    let x = cpu::seeded(7, batch * 3 * 9 * 9, -1.0, 1.0);
    let targets = cpu::seeded_ids(8, batch, classes as u32);
    let run = |dtype: Dtype| {
        for p in &ps {
            gpu.write(&p.grad, &vec![0.0f32; p.len()]);
        }
        let (mean, var) = (gpu.zeroed_f32("mean", 4), gpu.upload("var", &[1.0f32; 4]));
        let running = RunningStats {
            mean: &mean,
            var: &var,
        };
        let mut tape = Tape::new(gpu);
        tape.set_precision(dtype).unwrap();
        let t: Vec<_> = ps.iter().map(|p| tape.param(p)).collect();
        let x = tape.input(&x, &[batch, 3, 9, 9]).unwrap();
        // (A bias before the batch norm would have no gradient: the norm removes it.)
        let h = tape.conv2d(&x, &t[0], None, 1, 1).unwrap();
        let config = BatchNormConfig::default();
        let h = tape
            .batchnorm(&h, &t[1], &t[2], &running, true, &config)
            .unwrap();
        let h = tape.relu(&h).unwrap();
        let f = tape.conv2d(&h, &t[3], Some(&t[4]), 2, 1).unwrap();
        let s = tape.shortcut(&h, 6, 2).unwrap();
        let r = tape.rezero(&s, &f, &t[5], 0).unwrap();
        let pooled = tape.global_avg_pool(&r).unwrap();
        let logits = tape.linear(&pooled, &t[6], None).unwrap();
        let loss = tape.cross_entropy(&logits, &targets).unwrap();
        assert_eq!(pooled.dtype(), dtype);
        tape.backward(&loss).unwrap();
        let value = pollster::block_on(tape.read(&loss)).unwrap()[0];
        (value, grads_of(gpu, &ps))
    };
    let ((loss32, grads32), (loss16, grads16)) = (run(Dtype::F32), run(Dtype::F16));
    let bound = 17.0 * cpu::F16_EPSILON;
    let rel = (loss16 - loss32).abs() / loss32.abs();
    assert!(rel <= bound, "loss {loss16} vs {loss32}: {rel} > {bound}");
    assert_grads_within(&ps, &grads16, &grads32, bound);
}

/// The ops not yet on f16 say so, naming the op; a device without f16 is refused before
/// anything is recorded, naming the feature.
#[test]
fn what_f16_cannot_do_yet_is_refused_clearly() {
    let Some(gpu) = f16_gpu() else { return };
    let mut tape = Tape::new(gpu);
    tape.set_precision(Dtype::F16).unwrap();
    let x = tape.input(&[0.5; 24], &[4, 6]).unwrap();
    let sum = tape.sum(&x).err();
    let switch = tape.set_precision(Dtype::F32).err().map(|e| e.to_string());
    assert!(
        switch.is_some_and(|e| e.contains("between steps")),
        "precision changed mid-step"
    );
    let err = sum.expect("tape sum ran on f16").to_string();
    assert!(err.contains("tape sum") && err.contains("f16"), "{err}");
    // An f32 parameter pooled on an f16 tape: the pool reads its f16 copy, and the backward
    // (f16 dy, an f32 gradient) is refused, not run on mismatched buffers.
    let mut tape = Tape::new(gpu);
    tape.set_precision(Dtype::F16).unwrap();
    let image = Param::new(gpu, "image", &[2, 3, 2, 2], &[0.25; 24], true).unwrap();
    let image = tape.param(&image);
    let pooled = tape.global_avg_pool(&image).unwrap();
    let w = Param::new(gpu, "w", &[4, 3], &[0.5; 12], true).unwrap();
    let w = tape.param(&w);
    let logits = tape.linear(&pooled, &w, None).unwrap();
    let loss = tape.cross_entropy(&logits, &[1, 2]).unwrap();
    let err = tape.backward(&loss).unwrap_err().to_string();
    assert!(err.contains("global_avg_pool backward"), "{err}");
    if let Some(plain) = common::gpu_with_default_limits() {
        let mut tape = Tape::new(&plain);
        let err = tape.set_precision(Dtype::F16).unwrap_err().to_string();
        assert!(err.contains("SHADER_F16"), "{err}");
        assert_eq!(tape.precision(), Dtype::F32);
    }
}
