//! The `Optimizer` over several parameters: weight decay only where `Param::decay` says,
//! global-norm clipping over all of them, the schedule, and gradients zeroed after a step.

mod common;

use common::assert_close;
use rezero::cpu;
use rezero::kernels::optim as k;
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::tape::Param;

#[test]
fn adamw_with_clipping_and_decay_groups_matches_reference() {
    let gpu = require_gpu!();
    let (w0, a0) = (cpu::seeded(1, 6, -1.0, 1.0), cpu::seeded(2, 3, -1.0, 1.0));
    let w = Param::new(gpu, "w", &[2, 3], &w0, true).unwrap();
    let alphas = Param::new(gpu, "alphas", &[3], &a0, false).unwrap();
    let config = OptimizerConfig {
        method: Method::parse("adamw").unwrap(),
        lr: 0.01,
        weight_decay: 0.1,
        clip: Some(0.5),
        schedule: Schedule::parse("constant", 2).unwrap(),
    };
    let mut opt = Optimizer::new(gpu, &[&w, &alphas], config).unwrap();
    let (mut pw, mut pa) = (w0.clone(), a0.clone());
    let (mut mw, mut vw, mut ma, mut va) = (vec![0.0; 6], vec![0.0; 6], vec![0.0; 3], vec![0.0; 3]);
    for step in 1..=3u32 {
        let (gw, ga) = (
            cpu::seeded(10 + step as u64, 6, -1.0, 1.0),
            cpu::seeded(20 + step as u64, 3, -1.0, 1.0),
        );
        gpu.write(&w.grad, &gw);
        gpu.write(&alphas.grad, &ga);
        let lr = opt.lr();
        assert_eq!(
            lr,
            0.01 * if step == 1 { 0.5 } else { 1.0 },
            "warm-up over 2 steps"
        );
        pollster::block_on(gpu.run(|pass| opt.step(gpu, pass, &[&w, &alphas]))).unwrap();
        let norm_sq = cpu::reduce::sum_all(&gw, true) + cpu::reduce::sum_all(&ga, true);
        let scale = cpu::optim::clip_scale(norm_sq, Some(0.5));
        let h = |wd| k::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            decoupled: true,
        };
        cpu::optim::adam(&mut pw, &mut mw, &mut vw, &gw, &h(0.1), step, scale);
        cpu::optim::adam(&mut pa, &mut ma, &mut va, &ga, &h(0.0), step, scale);
    }
    assert_close(
        "w",
        &pollster::block_on(gpu.read_f32(&w.value, 6)).unwrap(),
        &pw,
        1e-6,
        1e-5,
    );
    assert_close(
        "alphas (no decay)",
        &pollster::block_on(gpu.read_f32(&alphas.value, 3)).unwrap(),
        &pa,
        1e-6,
        1e-5,
    );
    assert_eq!(
        pollster::block_on(gpu.read_f32(&w.grad, 6)).unwrap(),
        vec![0.0; 6],
        "gradients are zeroed after a step"
    );
    assert_eq!(opt.steps(), 3);
}

#[test]
fn step_rejects_other_parameters() {
    let gpu = require_gpu!();
    let a = Param::new(gpu, "a", &[2], &[1.0, 2.0], true).unwrap();
    let b = Param::new(gpu, "b", &[3], &[1.0, 2.0, 3.0], true).unwrap();
    let config = OptimizerConfig {
        method: Method::parse("sgd").unwrap(),
        lr: 0.1,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut opt = Optimizer::new(gpu, &[&a], config).unwrap();
    let err = pollster::block_on(gpu.run(|pass| opt.step(gpu, pass, &[&b]))).unwrap_err();
    assert!(matches!(err, rezero::Error::Shape { .. }), "{err}");
    assert!(Method::parse("lion").is_err());
}

#[test]
fn two_steps_on_one_tape_without_a_reset_each_use_their_own_step_values() {
    // The bias corrections of Adam change every step and reach the GPU by a queue write:
    // the second step must not overwrite the first's before the first has been submitted.
    let gpu = require_gpu!();
    let (w0, g) = (cpu::seeded(5, 8, -1.0, 1.0), cpu::seeded(6, 8, -1.0, 1.0));
    let w = Param::new(gpu, "w", &[8], &w0, false).unwrap();
    gpu.write(&w.grad, &g);
    let config = OptimizerConfig {
        method: Method::parse("adam").unwrap(),
        lr: 0.1,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::parse("constant", 0).unwrap(),
    };
    let mut opt = Optimizer::new(gpu, &[&w], config).unwrap();
    let mut tape = rezero::tape::Tape::new(gpu);
    opt.step_on_tape(&mut tape, &[&w]).unwrap();
    opt.step_on_tape(&mut tape, &[&w]).unwrap(); // its gradient: zeroed by the first
    tape.reset();
    let h = k::Adam {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
    };
    let (mut p, mut m, mut v) = (w0.clone(), vec![0.0; 8], vec![0.0; 8]);
    cpu::optim::adam(&mut p, &mut m, &mut v, &g, &h, 1, 1.0);
    cpu::optim::adam(&mut p, &mut m, &mut v, &[0.0; 8], &h, 2, 1.0);
    assert_close(
        "w after two steps",
        &pollster::block_on(gpu.read_f32(&w.value, 8)).unwrap(),
        &p,
        1e-6,
        1e-5,
    );
}

/// LAMB with weight decay on the weights only, clipping and warm-up, over three steps on
/// awkward sizes (one element, a partial workgroup, several grid strides), against the CPU
/// reference.
#[test]
fn lamb_matches_its_reference_over_steps() {
    let gpu = require_gpu!();
    for n in [1usize, 3, 1000, 70_000] {
        let (w0, a0) = (cpu::seeded(3, n, -1.0, 1.0), cpu::seeded(4, 3, -1.0, 1.0));
        let w = Param::new(gpu, "w", &[n], &w0, true).unwrap();
        let alphas = Param::new(gpu, "alphas", &[3], &a0, false).unwrap();
        let config = OptimizerConfig {
            method: Method::parse("lamb").unwrap(),
            lr: 0.02,
            weight_decay: 0.01,
            clip: Some(1.0),
            schedule: Schedule::parse("constant", 2).unwrap(),
        };
        let mut opt = Optimizer::new(gpu, &[&w, &alphas], config).unwrap();
        let (mut pw, mut pa) = (w0.clone(), a0.clone());
        let (mut mw, mut vw) = (vec![0.0; n], vec![0.0; n]);
        let (mut ma, mut va) = (vec![0.0; 3], vec![0.0; 3]);
        for step in 1..=3u32 {
            let gw = cpu::seeded(30 + step as u64, n, -1.0, 1.0);
            let ga = cpu::seeded(40 + step as u64, 3, -1.0, 1.0);
            gpu.write(&w.grad, &gw);
            gpu.write(&alphas.grad, &ga);
            let lr = opt.lr();
            pollster::block_on(gpu.run(|pass| opt.step(gpu, pass, &[&w, &alphas]))).unwrap();
            let norm_sq = cpu::reduce::sum_all(&gw, true) + cpu::reduce::sum_all(&ga, true);
            let scale = cpu::optim::clip_scale(norm_sq, Some(1.0));
            let h = |weight_decay| k::Lamb {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-6,
                weight_decay,
            };
            cpu::optim::lamb(&mut pw, &mut mw, &mut vw, &gw, &h(0.01), step, scale);
            cpu::optim::lamb(&mut pa, &mut ma, &mut va, &ga, &h(0.0), step, scale);
        }
        let what = format!("lamb n={n}");
        let got = pollster::block_on(gpu.read_f32(&w.value, n)).unwrap();
        assert_close(&format!("{what} w"), &got, &pw, 1e-5, 1e-4);
        let got = pollster::block_on(gpu.read_f32(&alphas.value, 3)).unwrap();
        assert_close(&format!("{what} alphas (no decay)"), &got, &pa, 1e-5, 1e-4);
    }
}

/// One LAMB step worked out by hand: w = (3, 4), so ‖w‖ = 5; g = (1, 1) gives m̂ = v̂ = 1
/// after bias correction, u = (1, 1)/(1 + eps), ‖u‖ ≈ √2, and w −= lr·(5/√2)·u.
#[test]
fn a_lamb_step_by_hand() {
    let gpu = require_gpu!();
    let w = Param::new(gpu, "w", &[2], &[3.0, 4.0], true).unwrap();
    let config = OptimizerConfig {
        method: Method::parse("lamb").unwrap(),
        lr: 0.1,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut opt = Optimizer::new(gpu, &[&w], config).unwrap();
    gpu.write(&w.grad, &[1.0, 1.0]);
    pollster::block_on(gpu.run(|pass| opt.step(gpu, pass, &[&w]))).unwrap();
    let step = 0.1 * 5.0 / 2f32.sqrt();
    let got = pollster::block_on(gpu.read_f32(&w.value, 2)).unwrap();
    assert_close(
        "w after one step",
        &got,
        &[3.0 - step, 4.0 - step],
        1e-5,
        1e-5,
    );
    // A zero weight has no trust ratio to take: the ratio is 1, a plain Adam-like step.
    let z = Param::new(gpu, "z", &[2], &[0.0, 0.0], true).unwrap();
    let config = OptimizerConfig {
        method: Method::parse("lamb").unwrap(),
        lr: 0.1,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut opt = Optimizer::new(gpu, &[&z], config).unwrap();
    gpu.write(&z.grad, &[1.0, -1.0]);
    pollster::block_on(gpu.run(|pass| opt.step(gpu, pass, &[&z]))).unwrap();
    let got = pollster::block_on(gpu.read_f32(&z.value, 2)).unwrap();
    assert_close("zero weights", &got, &[-0.1, 0.1], 1e-5, 1e-5);
}

/// `--alpha-lr-mult`: the parameter named `alphas` moves at lr × the multiplier, the others
/// at lr.
#[test]
fn the_alpha_learning_rate_multiplier_scales_only_the_alphas() {
    let gpu = require_gpu!();
    for mult in [0.0f32, 1.0, 2.5] {
        let w = Param::new(gpu, "w", &[2], &[1.0, 1.0], true).unwrap();
        let alphas = Param::new(gpu, "alphas", &[2], &[0.0, 0.0], false).unwrap();
        let config = OptimizerConfig {
            method: Method::Sgd { momentum: 0.0 },
            lr: 0.1,
            weight_decay: 0.0,
            clip: None,
            schedule: Schedule::default(),
        };
        let mut opt = Optimizer::new(gpu, &[&w, &alphas], config).unwrap();
        opt.set_alpha_lr_mult(mult).unwrap();
        gpu.write(&w.grad, &[1.0, -1.0]);
        gpu.write(&alphas.grad, &[1.0, -1.0]);
        pollster::block_on(gpu.run(|pass| opt.step(gpu, pass, &[&w, &alphas]))).unwrap();
        let got = pollster::block_on(gpu.read_f32(&w.value, 2)).unwrap();
        assert_close(&format!("w, mult {mult}"), &got, &[0.9, 1.1], 1e-6, 1e-6);
        let got = pollster::block_on(gpu.read_f32(&alphas.value, 2)).unwrap();
        let step = 0.1 * mult;
        assert_close(
            &format!("alphas, mult {mult}"),
            &got,
            &[-step, step],
            1e-6,
            1e-6,
        );
    }
    let w = Param::new(gpu, "alphas", &[1], &[0.0], false).unwrap();
    let config = OptimizerConfig {
        method: Method::Sgd { momentum: 0.0 },
        lr: 0.1,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut opt = Optimizer::new(gpu, &[&w], config).unwrap();
    for bad in [f32::NAN, -1.0, f32::INFINITY] {
        assert!(opt.set_alpha_lr_mult(bad).is_err(), "{bad}");
    }
}
