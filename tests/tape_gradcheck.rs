//! The tape's backward for every op, and for a whole 3-layer ReZero MLP, against central
//! finite differences of f64 forward functions on the CPU. Parameters get their gradient
//! from `backward_with(out, w)`, i.e. of L = Σ w ⊙ out, or from `backward(loss)`.

mod common;

use common::assert_close;
use common::reference64::*;
use rezero::cpu;
use rezero::kernels::Dtype;
use rezero::tape::{Param, Tape};

const ATOL: f32 = 3e-5;
const RTOL: f32 = 2e-3;

fn param(
    gpu: &rezero::Gpu,
    name: &str,
    shape: &[usize],
    seed: u64,
    lo: f32,
    hi: f32,
) -> (Param, Vec<f32>) {
    let values = cpu::seeded(seed, shape.iter().product(), lo, hi);
    (Param::new(gpu, name, shape, &values, true).unwrap(), values)
}

fn grad_of(gpu: &rezero::Gpu, p: &Param) -> Vec<f32> {
    pollster::block_on(gpu.read_f32(&p.grad, p.len())).unwrap()
}

#[test]
fn matmul_with_bias_in_every_layout() {
    let gpu = require_gpu!();
    let (m, n, k) = (3, 5, 4);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a_shape = if ta { [k, m] } else { [m, k] };
        let b_shape = if tb { [n, k] } else { [k, n] };
        let (pa, a) = param(gpu, "a", &a_shape, 1, -1.0, 1.0);
        let (pb, b) = param(gpu, "b", &b_shape, 2, -1.0, 1.0);
        let (pbias, bias) = param(gpu, "bias", &[n], 3, -1.0, 1.0);
        let w = cpu::seeded(4, m * n, -1.0, 1.0);
        let mut tape = Tape::new(gpu);
        let (ta_, tb_, tbias) = (tape.param(&pa), tape.param(&pb), tape.param(&pbias));
        let out = tape.matmul(&ta_, &tb_, ta, tb, Some(&tbias)).unwrap();
        tape.backward_with(&out, &w).unwrap();
        tape.flush();
        let what = format!("matmul ta={ta} tb={tb}");
        let (a64, b64, bias64) = (to64(&a), to64(&b), to64(&bias));
        let f = |a: &[f64], b: &[f64], bias: &[f64]| {
            dot(&w, &matmul64(a, b, Some(bias), m, n, k, ta, tb))
        };
        assert_close(
            &format!("{what} dA"),
            &grad_of(gpu, &pa),
            &numeric_grad(|v| f(v, &b64, &bias64), &a),
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("{what} dB"),
            &grad_of(gpu, &pb),
            &numeric_grad(|v| f(&a64, v, &bias64), &b),
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("{what} dbias"),
            &grad_of(gpu, &pbias),
            &numeric_grad(|v| f(&a64, &b64, v), &bias),
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn elementwise_chain_with_a_tensor_used_twice() {
    // y = relu(x)·2 + gelu(x) + rezero(x, x, α): x feeds four consumers.
    let gpu = require_gpu!();
    let n = 7;
    let x0: Vec<f32> = cpu::seeded(5, n, -2.0, 2.0)
        .into_iter()
        .map(|v| if v.abs() < 0.1 { v + 0.3 } else { v })
        .collect();
    let px = Param::new(gpu, "x", &[n], &x0, true).unwrap();
    let (palpha, alpha) = param(gpu, "alpha", &[1], 6, -1.0, 1.0);
    let w = cpu::seeded(7, n, -1.0, 1.0);
    let mut tape = Tape::new(gpu);
    let (x, a) = (tape.param(&px), tape.param(&palpha));
    let r = tape.relu(&x).unwrap();
    let r2 = tape.scale(&r, 2.0).unwrap();
    let g = tape.gelu(&x).unwrap();
    let s = tape.add(&r2, &g).unwrap();
    let z = tape.rezero(&x, &x, &a, 0).unwrap();
    let y = tape.add(&s, &z).unwrap();
    tape.backward_with(&y, &w).unwrap();
    tape.flush();
    let f = |x: &[f64], a: f64| -> f64 {
        let y: Vec<f64> = x
            .iter()
            .map(|&v| 2.0 * v.max(0.0) + rezero::cpu::elementwise::gelu_value(v) + v + a * v)
            .collect();
        dot(&w, &y)
    };
    assert_close(
        "dx",
        &grad_of(gpu, &px),
        &numeric_grad(|v| f(v, alpha[0] as f64), &x0),
        ATOL,
        RTOL,
    );
    assert_close(
        "dalpha",
        &grad_of(gpu, &palpha),
        &numeric_grad(|v| f(&to64(&x0), v[0]), &alpha),
        ATOL,
        RTOL,
    );
}

#[test]
fn layernorm_softmax_and_sum() {
    let gpu = require_gpu!();
    let (rows, cols) = (3, 6);
    let (px, x) = param(gpu, "x", &[rows, cols], 8, -2.0, 2.0);
    let (pg, g) = param(gpu, "gain", &[cols], 9, 0.5, 1.5);
    let (pb, b) = param(gpu, "bias", &[cols], 10, -0.5, 0.5);
    let w = cpu::seeded(11, rows * cols, -1.0, 1.0);
    // L = Σ w ⊙ softmax(LN(x)): through the seed, then the same through a sum of scaled terms.
    let mut tape = Tape::new(gpu);
    let (tx, tg, tb) = (tape.param(&px), tape.param(&pg), tape.param(&pb));
    let ln = tape.layernorm(&tx, &tg, &tb, 1e-5).unwrap();
    let sm = tape.softmax(&ln).unwrap();
    tape.backward_with(&sm, &w).unwrap();
    tape.flush();
    let f =
        |x: &[f64], g: &[f64], b: &[f64]| dot(&w, &softmax64(&layernorm64(x, g, b, cols), cols));
    let (x64, g64, b64) = (to64(&x), to64(&g), to64(&b));
    assert_close(
        "dx",
        &grad_of(gpu, &px),
        &numeric_grad(|v| f(v, &g64, &b64), &x),
        ATOL,
        RTOL,
    );
    assert_close(
        "dgain",
        &grad_of(gpu, &pg),
        &numeric_grad(|v| f(&x64, v, &b64), &g),
        ATOL,
        RTOL,
    );
    assert_close(
        "dbias",
        &grad_of(gpu, &pb),
        &numeric_grad(|v| f(&x64, &g64, v), &b),
        ATOL,
        RTOL,
    );

    // sum as the loss: ∂(Σ LN(x))/∂gain.
    for p in [&px, &pg, &pb] {
        pollster::block_on(gpu.run(|pass| {
            rezero::kernels::elementwise::fill(gpu, pass, &p.grad, 0.0, p.len() as u32, Dtype::F32)
        }))
        .unwrap();
    }
    tape.reset();
    let (tx, tg, tb) = (tape.param(&px), tape.param(&pg), tape.param(&pb));
    let ln = tape.layernorm(&tx, &tg, &tb, 1e-5).unwrap();
    let total = tape.sum(&ln).unwrap();
    tape.backward(&total).unwrap();
    tape.flush();
    let f = |g: &[f64]| layernorm64(&x64, g, &b64, cols).iter().sum::<f64>();
    assert_close(
        "sum dgain",
        &grad_of(gpu, &pg),
        &numeric_grad(f, &g),
        ATOL,
        RTOL,
    );
}

#[test]
fn embedding_then_cross_entropy() {
    let gpu = require_gpu!();
    let (vocab, dim) = (5, 4);
    let ids = [3u32, 0, 3, 1, 4, 3];
    let targets = [1u32, 2, 0, 3, 3, 2];
    let (ptable, table) = param(gpu, "table", &[vocab, dim], 12, -1.0, 1.0);
    let mut tape = Tape::new(gpu);
    let t = tape.param(&ptable);
    let rows = tape.embedding(&t, &ids).unwrap();
    let loss = tape.cross_entropy(&rows, &targets).unwrap();
    tape.backward(&loss).unwrap();
    tape.flush();
    let f = |table: &[f64]| {
        let logits: Vec<f64> = ids
            .iter()
            .flat_map(|&i| table[i as usize * dim..(i as usize + 1) * dim].to_vec())
            .collect();
        cross_entropy64(&logits, &targets, dim)
    };
    assert_close(
        "loss",
        &pollster::block_on(tape.read(&loss)).unwrap(),
        &[f(&to64(&table)) as f32],
        1e-5,
        1e-5,
    );
    assert_close(
        "dtable",
        &grad_of(gpu, &ptable),
        &numeric_grad(f, &table),
        ATOL,
        RTOL,
    );
}

#[test]
fn cross_entropy_must_end_the_graph() {
    let gpu = require_gpu!();
    let (p, _) = param(gpu, "logits", &[2, 3], 13, -1.0, 1.0);
    let mut tape = Tape::new(gpu);
    let logits = tape.param(&p);
    let loss = tape.cross_entropy(&logits, &[0, 2]).unwrap();
    let doubled = tape.scale(&loss, 2.0).unwrap();
    let err = tape.backward(&doubled).unwrap_err();
    assert!(matches!(err, rezero::Error::Invalid { .. }), "{err}");
}

/// A 3-layer ReZero MLP: h = x·W_inᵀ + b_in; h ← h + α_i·relu(h·W_iᵀ + b_i); logits = h·W_outᵀ + b_out.
#[test]
fn whole_rezero_mlp_every_parameter() {
    let gpu = require_gpu!();
    let (batch, input, width, classes, layers) = (4, 5, 6, 3, 3);
    let x = cpu::seeded(20, batch * input, -1.0, 1.0);
    let targets = [0u32, 2, 1, 2];
    let mut params = vec![
        param(gpu, "w_in", &[width, input], 21, -0.5, 0.5),
        param(gpu, "b_in", &[width], 22, -0.1, 0.1),
    ];
    for i in 0..layers as u64 {
        params.push(param(gpu, "w", &[width, width], 30 + i, -0.5, 0.5));
        params.push(param(gpu, "b", &[width], 40 + i, -0.1, 0.1));
    }
    params.push(param(gpu, "w_out", &[classes, width], 60, -0.5, 0.5));
    params.push(param(gpu, "b_out", &[classes], 61, -0.1, 0.1));
    // Every block's α in one parameter, nonzero so that the W_i get gradient too.
    params.push(param(gpu, "alphas", &[layers], 62, 0.2, 0.6));
    let (out_w, out_b, alphas) = (2 + 2 * layers, 3 + 2 * layers, 4 + 2 * layers);

    let mut tape = Tape::new(gpu);
    let t: Vec<_> = params.iter().map(|(p, _)| tape.param(p)).collect();
    let input_t = tape.input(&x, &[batch, input]).unwrap();
    let mut h = tape.linear(&input_t, &t[0], Some(&t[1])).unwrap();
    for i in 0..layers {
        let pre = tape.linear(&h, &t[2 + 2 * i], Some(&t[3 + 2 * i])).unwrap();
        let f = tape.relu(&pre).unwrap();
        h = tape.rezero(&h, &f, &t[alphas], i).unwrap();
    }
    let logits = tape.linear(&h, &t[out_w], Some(&t[out_b])).unwrap();
    let loss = tape.cross_entropy(&logits, &targets).unwrap();
    tape.backward(&loss).unwrap();
    tape.flush();

    let values: Vec<Vec<f64>> = params.iter().map(|(_, v)| to64(v)).collect();
    let forward = |vals: &[Vec<f64>]| -> f64 {
        let mut h = linear64(&to64(&x), &vals[0], &vals[1], batch, input, width);
        for i in 0..layers {
            let f = relu64(&linear64(
                &h,
                &vals[2 + 2 * i],
                &vals[3 + 2 * i],
                batch,
                width,
                width,
            ));
            let a = vals[alphas][i];
            h = h.iter().zip(&f).map(|(x, f)| x + a * f).collect();
        }
        let logits = linear64(&h, &vals[out_w], &vals[out_b], batch, width, classes);
        cross_entropy64(&logits, &targets, classes)
    };
    for (index, (p, v)) in params.iter().enumerate() {
        let numeric = numeric_grad(
            |candidate| {
                let mut vals = values.clone();
                vals[index] = candidate.to_vec();
                forward(&vals)
            },
            v,
        );
        assert_close(
            &format!("d loss / d {}#{index}", p.name),
            &grad_of(gpu, p),
            &numeric,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn a_step_longer_than_one_submission_is_chunked_correctly() {
    // 5,000 ops forward and as many backward: the tape submits in chunks of 4,096 ops.
    let gpu = require_gpu!();
    let x0 = cpu::seeded(70, 6, -1.0, 1.0);
    let px = Param::new(gpu, "x", &[6], &x0, true).unwrap();
    let mut tape = Tape::new(gpu);
    let mut y = tape.param(&px);
    for i in 0..5000 {
        // alternately ×2 and ×0.5: the output equals the input, and so does the gradient
        y = tape.scale(&y, if i % 2 == 0 { 2.0 } else { 0.5 }).unwrap();
    }
    assert_eq!(pollster::block_on(tape.read(&y)).unwrap(), x0);
    let seed = cpu::seeded(71, 6, -1.0, 1.0);
    tape.backward_with(&y, &seed).unwrap();
    tape.flush();
    assert_eq!(grad_of(gpu, &px), seed);
}
