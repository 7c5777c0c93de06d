//! The tape's image ops (conv2d, batchnorm, global average pooling) inside a small ReZero
//! ResNet-like network, every parameter's gradient against central finite differences
//! of the same network written in f64 on the CPU; and the eval-mode batchnorm rules.

mod common;

use common::assert_close;
use common::reference64::*;
use rezero::cpu;
use rezero::kernels::batchnorm::{BatchNormConfig, BatchNormShape};
use rezero::kernels::conv2d::Conv2d;
use rezero::tape::{Param, RunningStats, Tape};

const ATOL: f32 = 5e-5;
const RTOL: f32 = 3e-3;

struct Net {
    params: Vec<(Param, Vec<f32>)>,
}

const STEM_W: usize = 0;
const STEM_B: usize = 1;
const BN_G: usize = 2;
const BN_B: usize = 3;
const BLOCK_W: usize = 4;
const ALPHA: usize = 5;
const DOWN_W: usize = 6;
const FC_W: usize = 7;
const FC_B: usize = 8;

fn net(gpu: &rezero::Gpu) -> Net {
    let p = |name: &str, shape: &[usize], seed, lo, hi| {
        let values = cpu::seeded(seed, shape.iter().product(), lo, hi);
        (Param::new(gpu, name, shape, &values, true).unwrap(), values)
    };
    Net {
        params: vec![
            p("stem_w", &[4, 3, 3, 3], 1, -0.5, 0.5),
            p("stem_b", &[4], 2, -0.1, 0.1),
            p("bn_gamma", &[4], 3, 0.5, 1.5),
            p("bn_beta", &[4], 4, -0.5, 0.5),
            p("block_w", &[4, 4, 3, 3], 5, -0.5, 0.5),
            // Nonzero so that the block's weights get gradient.
            p("alpha", &[1], 6, 0.3, 0.6),
            p("down_w", &[5, 4, 1, 1], 7, -0.5, 0.5),
            p("fc_w", &[3, 5], 8, -0.5, 0.5),
            p("fc_b", &[3], 9, -0.1, 0.1),
        ],
    }
}

#[test]
fn small_rezero_resnet_every_parameter() {
    let gpu = require_gpu!();
    let (batch, h, w) = (2, 5, 6);
    let x = cpu::seeded(10, batch * 3 * h * w, -1.0, 1.0);
    let targets = [2u32, 0];
    let net = net(gpu);
    let (rm, rv) = (gpu.zeroed_f32("rm", 4), gpu.upload("rv", &[1.0f32; 4]));
    let running = RunningStats {
        mean: &rm,
        var: &rv,
    };
    let config = BatchNormConfig::default();

    let mut tape = Tape::new(gpu);
    let t: Vec<_> = net.params.iter().map(|(p, _)| tape.param(p)).collect();
    let input = tape.input(&x, &[batch, 3, h, w]).unwrap();
    let stem = tape
        .conv2d(&input, &t[STEM_W], Some(&t[STEM_B]), 1, 1)
        .unwrap();
    let normed = tape
        .batchnorm(&stem, &t[BN_G], &t[BN_B], &running, true, &config)
        .unwrap();
    let h0 = tape.relu(&normed).unwrap();
    let f = tape.conv2d(&h0, &t[BLOCK_W], None, 1, 1).unwrap();
    let f = tape.relu(&f).unwrap();
    let h1 = tape.rezero(&h0, &f, &t[ALPHA], 0).unwrap();
    let down = tape.conv2d(&h1, &t[DOWN_W], None, 2, 0).unwrap();
    let pooled = tape.global_avg_pool(&down).unwrap();
    let logits = tape.linear(&pooled, &t[FC_W], Some(&t[FC_B])).unwrap();
    let loss = tape.cross_entropy(&logits, &targets).unwrap();
    tape.backward(&loss).unwrap();
    tape.flush();

    let conv = |c_in, c_out, k| Conv2d::new(batch as u32, c_in, h as u32, w as u32, c_out, k);
    let stem_s = conv(3, 4, 3).pad(1);
    let block_s = conv(4, 4, 3).pad(1);
    let down_s = conv(4, 5, 1).stride(2);
    let bn_s = BatchNormShape::new(batch as u32, 4, (h * w) as u32);
    let values: Vec<Vec<f64>> = net.params.iter().map(|(_, v)| to64(v)).collect();
    let forward = |v: &[Vec<f64>]| -> f64 {
        let stem = conv64(&to64(&x), &v[STEM_W], &v[STEM_B], &stem_s);
        let h0 = relu64(&batchnorm64(&stem, &v[BN_G], &v[BN_B], &bn_s, 1e-5));
        let f = relu64(&conv64(&h0, &v[BLOCK_W], &[0.0; 4], &block_s));
        let h1: Vec<f64> = h0
            .iter()
            .zip(&f)
            .map(|(x, f)| x + v[ALPHA][0] * f)
            .collect();
        let down = conv64(&h1, &v[DOWN_W], &[0.0; 5], &down_s);
        let pixels = (down_s.out_h() * down_s.out_w()) as usize;
        let pooled: Vec<f64> = down
            .chunks(pixels)
            .map(|r| r.iter().sum::<f64>() / pixels as f64)
            .collect();
        let logits = linear64(&pooled, &v[FC_W], &v[FC_B], batch, 5, 3);
        cross_entropy64(&logits, &targets, 3)
    };
    for (index, (p, v)) in net.params.iter().enumerate() {
        let numeric = numeric_grad(
            |candidate| {
                let mut vals = values.clone();
                vals[index] = candidate.to_vec();
                forward(&vals)
            },
            v,
        );
        let got = pollster::block_on(gpu.read_f32(&p.grad, p.len())).unwrap();
        assert_close(
            &format!("d loss / d {}", p.name),
            &got,
            &numeric,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn eval_mode_batchnorm_uses_running_stats_and_needs_gradients_off() {
    let gpu = require_gpu!();
    let gamma = Param::new(gpu, "g", &[2], &[1.0, 2.0], false).unwrap();
    let beta = Param::new(gpu, "b", &[2], &[0.0, 1.0], false).unwrap();
    let (rm, rv) = (
        gpu.upload("rm", &[1.0f32, -1.0]),
        gpu.upload("rv", &[4.0f32, 0.25]),
    );
    let running = RunningStats {
        mean: &rm,
        var: &rv,
    };
    let config = BatchNormConfig {
        eps: 1e-12,
        ..Default::default()
    };
    let mut tape = Tape::new(gpu);
    let (g, b) = (tape.param(&gamma), tape.param(&beta));
    let x = tape.input(&[3.0, 5.0, 0.0, 1.0], &[1, 2, 1, 2]).unwrap();
    let err = tape
        .batchnorm(&x, &g, &b, &running, false, &config)
        .unwrap_err();
    assert!(err.to_string().contains("disable gradients"), "{err}");
    tape.set_grad_enabled(false);
    let y = tape
        .batchnorm(&x, &g, &b, &running, false, &config)
        .unwrap();
    // channel 0: (x − 1)/2 · 1 + 0; channel 1: (x + 1)/0.5 · 2 + 1
    assert_close(
        "eval",
        &pollster::block_on(tape.read(&y)).unwrap(),
        &[1.0, 2.0, 5.0, 9.0],
        1e-5,
        1e-5,
    );
}
