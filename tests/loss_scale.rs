//! Dynamic loss scaling (mixed precision, GradScaler's rule) on the GPU: a loss-scaled
//! optimizer step equals the unscaled one, an overflowed step is skipped and its gradients
//! zeroed, the scale follows the rule of the CPU reference, the cross-entropy's gradient
//! carries the scale (keeping gradients f16 would flush to zero), and bad settings are
//! refused.

mod common;

use common::assert_close;
use common::precision::{read_as_f32, upload_as};
use rezero::cpu;
use rezero::kernels::Dtype;
use rezero::kernels::cross_entropy::cross_entropy;
use rezero::kernels::loss_scale::{LossScaleRule, ScalerState, loss_scale_update};
use rezero::optim::{LOSS_SCALE_ENTRY, Method, Optimizer, OptimizerConfig, Schedule};
use rezero::tape::Param;

const METHODS: [&str; 5] = ["sgd", "adagrad", "adam", "adamw", "lamb"];

fn config(method: &str, clip: Option<f32>) -> OptimizerConfig {
    OptimizerConfig {
        method: Method::parse(method).unwrap(),
        lr: 0.01,
        weight_decay: 0.1,
        clip,
        schedule: Schedule::parse("constant", 0).unwrap(),
    }
}

/// Two parameters (one with weight decay, one without) holding the same seeded values.
fn params(gpu: &rezero::Gpu) -> [Param; 2] {
    let (w0, a0) = (cpu::seeded(1, 37, -1.0, 1.0), cpu::seeded(2, 3, -1.0, 1.0));
    [
        Param::new(gpu, "w", &[37], &w0, true).unwrap(),
        Param::new(gpu, "alphas", &[3], &a0, false).unwrap(),
    ]
}

fn refs(p: &[Param; 2]) -> [&Param; 2] {
    [&p[0], &p[1]]
}

fn read(gpu: &rezero::Gpu, buffer: &wgpu::Buffer, len: usize) -> Vec<f32> {
    pollster::block_on(gpu.read_f32(buffer, len)).unwrap()
}

fn state(gpu: &rezero::Gpu, opt: &Optimizer) -> ScalerState {
    let buffer = opt.loss_scale_state().expect("loss scaling is on");
    let values = read(gpu, buffer, 4);
    ScalerState::from_values([values[0], values[1], values[2], values[3]])
}

/// Scaling by a power of two is exact in f32, and so is dividing it out: a loss-scaled
/// step on gradients S·g leaves every bit as the plain step on g, for every method, with
/// and without clipping (whose norm is the unscaled one).
#[test]
fn a_loss_scaled_step_equals_the_plain_one_bit_for_bit() {
    let gpu = require_gpu!();
    let rule = LossScaleRule {
        init_scale: 1024.0,
        ..Default::default()
    };
    for (method, clip) in METHODS.iter().flat_map(|m| [(*m, None), (*m, Some(0.5))]) {
        let (plain, scaled) = (params(gpu), params(gpu));
        let mut plain_opt = Optimizer::new(gpu, &refs(&plain), config(method, clip)).unwrap();
        let mut scaled_opt = Optimizer::new(gpu, &refs(&scaled), config(method, clip)).unwrap();
        scaled_opt.enable_loss_scaling(gpu, rule).unwrap();
        for step in 0..3u64 {
            for (i, (p, s)) in plain.iter().zip(&scaled).enumerate() {
                let g = cpu::seeded(10 + step * 2 + i as u64, p.len(), -1.0, 1.0);
                gpu.write(&p.grad, &g);
                gpu.write(&s.grad, &g.iter().map(|v| v * 1024.0).collect::<Vec<_>>());
            }
            let (pp, sp) = (refs(&plain), refs(&scaled));
            pollster::block_on(gpu.run(|pass| plain_opt.step(gpu, pass, &pp))).unwrap();
            pollster::block_on(gpu.run(|pass| scaled_opt.step(gpu, pass, &sp))).unwrap();
        }
        for (p, s) in plain.iter().zip(&scaled) {
            let (want, got) = (read(gpu, &p.value, p.len()), read(gpu, &s.value, s.len()));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got),
                bits(&want),
                "{method} clip {clip:?}: {}",
                p.name
            );
        }
        let after = state(gpu, &scaled_opt);
        assert_eq!(
            (after.scale, after.clean_steps, after.skipped_steps),
            (1024.0, 3.0, 0.0)
        );
    }
}

/// A step whose gradients overflowed (an inf, a NaN, or a norm past f32's range) changes
/// no parameter and no moment, zeroes the gradients it consumed, halves the scale and
/// counts the skip; the next clean step updates again.
#[test]
fn an_overflowed_step_is_skipped_and_the_scale_halves() {
    let gpu = require_gpu!();
    for (method, poison) in METHODS
        .iter()
        .flat_map(|m| [(*m, f32::INFINITY), (*m, f32::NAN), (*m, 3e38)])
    {
        let ps = params(gpu);
        let refs = [&ps[0], &ps[1]];
        let mut opt = Optimizer::new(gpu, &refs, config(method, None)).unwrap();
        opt.enable_loss_scaling(gpu, LossScaleRule::default())
            .unwrap();
        let grads = |step: u64| {
            [
                cpu::seeded(30 + step, 37, -1.0, 1.0),
                cpu::seeded(40 + step, 3, -1.0, 1.0),
            ]
        };
        let step = |opt: &mut Optimizer, g: &[Vec<f32>; 2]| {
            gpu.write(&ps[0].grad, &g[0]);
            gpu.write(&ps[1].grad, &g[1]);
            pollster::block_on(gpu.run(|pass| opt.step(gpu, pass, &refs))).unwrap();
        };
        step(&mut opt, &grads(0));
        let before = [read(gpu, &ps[0].value, 37), read(gpu, &ps[1].value, 3)];
        let moments: Vec<_> = opt
            .state_entries(&refs)
            .iter()
            .filter(|(name, ..)| name != LOSS_SCALE_ENTRY)
            .map(|(_, s, b)| read(gpu, b, s.iter().product()))
            .collect();
        let mut bad = grads(1);
        bad[0][17] = poison;
        step(&mut opt, &bad);
        let what = format!("{method} with {poison} in a gradient");
        let after = [read(gpu, &ps[0].value, 37), read(gpu, &ps[1].value, 3)];
        assert_eq!(after, before, "{what}: the parameters moved");
        let moments_after: Vec<_> = opt
            .state_entries(&refs)
            .iter()
            .filter(|(name, ..)| name != LOSS_SCALE_ENTRY)
            .map(|(_, s, b)| read(gpu, b, s.iter().product()))
            .collect();
        assert_eq!(moments_after, moments, "{what}: the optimizer state moved");
        assert_eq!(
            read(gpu, &ps[0].grad, 37),
            vec![0.0; 37],
            "{what}: gradient left"
        );
        let skipped = state(gpu, &opt);
        assert_eq!(
            (
                skipped.scale,
                skipped.clean_steps,
                skipped.skipped_steps,
                skipped.last_skipped
            ),
            (32_768.0, 0.0, 1.0, 1.0),
            "{what}"
        );
        step(&mut opt, &grads(2));
        assert_ne!(
            read(gpu, &ps[0].value, 37),
            before[0],
            "{what}: the next step did not update"
        );
        let clean = state(gpu, &opt);
        assert_eq!(
            (clean.clean_steps, clean.last_skipped),
            (1.0, 0.0),
            "{what}"
        );
    }
}

/// The scale over a run of clean and overflowed steps (growth every 3 clean steps, a
/// growth that would overflow kept out) against the CPU reference of the rule.
#[test]
fn the_scale_follows_gradscalers_rule() {
    let gpu = require_gpu!();
    let rule = LossScaleRule {
        init_scale: 2f32.powi(125),
        growth: 2.0,
        backoff: 0.5,
        growth_interval: 3,
    };
    // Growths at the 3rd clean step, then three after the NaN take 2^124 to 2^127; the
    // twelfth clean step would grow it past f32's range, which is kept out.
    let mut norms = vec![1.0, 2.0, 3.0, f32::INFINITY, 1.0, f32::NAN];
    norms.extend([1.0; 12]);
    let state_buffer = gpu.upload("state", &rule.initial_state().to_values());
    let norm_sq = gpu.zeroed_f32("norm_sq", 1);
    let mut want = rule.initial_state();
    for (i, &norm) in norms.iter().enumerate() {
        gpu.write(&norm_sq, &[norm]);
        pollster::block_on(
            gpu.run(|pass| loss_scale_update(gpu, pass, &state_buffer, &norm_sq, &rule)),
        )
        .unwrap();
        cpu::optim::loss_scale_update(&mut want, norm, &rule);
        let v = read(gpu, &state_buffer, 4);
        let got = ScalerState::from_values([v[0], v[1], v[2], v[3]]);
        assert_eq!(got, want, "after step {i} (norm² {norm})");
    }
    assert!(
        want.scale.is_finite() && want.skipped_steps == 2.0,
        "{want:?}"
    );
    assert_eq!(
        want.scale,
        2f32.powi(127),
        "the growth past f32's range was kept out"
    );
    assert_eq!(
        want.clean_steps, 0.0,
        "the last step reached the growth interval"
    );
}

/// The cross-entropy's gradient is the scale's multiple (the loss is not), on f32 and on
/// f16 logits: where the plain f16 gradient flushes small probabilities to zero, the
/// scaled one keeps them.
#[test]
fn the_cross_entropy_gradient_carries_the_scale() {
    let gpu = require_gpu!();
    let (rows, cols) = (64u32, 200u32);
    let len = (rows * cols) as usize;
    let scale = 65_536.0f32;
    for dtype in common::precision::dtypes(gpu) {
        let logits = common::precision::exact(&cpu::seeded(5, len, -12.0, 12.0), dtype);
        let targets = cpu::seeded_ids(6, rows as usize, cols);
        let mut want_d = vec![0.0; len];
        let want_loss =
            cpu::cross_entropy::cross_entropy(&mut want_d, &logits, &targets, cols as usize);
        let (gl, gt) = (
            upload_as(gpu, "logits", &logits, dtype),
            gpu.upload("targets", &targets),
        );
        let scaler = LossScaleRule {
            init_scale: scale,
            ..Default::default()
        }
        .initial_state();
        let state_buffer = gpu.upload("state", &scaler.to_values());
        let (loss, rl) = (
            gpu.zeroed_f32("loss", 1),
            gpu.zeroed_f32("row_loss", rows as usize),
        );
        let (plain, scaled) = (
            gpu.zeroed_f32("dlogits", len),
            gpu.zeroed_f32("dlogits", len),
        );
        pollster::block_on(gpu.run(|pass| {
            cross_entropy(
                gpu, pass, &loss, &plain, &rl, &gl, &gt, rows, cols, dtype, None,
            )?;
            cross_entropy(
                gpu,
                pass,
                &loss,
                &scaled,
                &rl,
                &gl,
                &gt,
                rows,
                cols,
                dtype,
                Some(&state_buffer),
            )
        }))
        .unwrap();
        let got_loss = read(gpu, &loss, 1)[0];
        assert!(
            (got_loss - want_loss).abs() <= 1e-4 * want_loss.abs(),
            "{dtype}: loss {got_loss} vs {want_loss}"
        );
        let unscaled: Vec<f32> = read_as_f32(gpu, &scaled, len, dtype)
            .iter()
            .map(|v| v / scale)
            .collect();
        let (atol, rtol) = common::precision::widen((1e-6 / scale, 1e-4), dtype);
        assert_close(
            &format!("{dtype} scaled dlogits / scale"),
            &unscaled,
            &want_d,
            atol,
            rtol,
        );
        if dtype == Dtype::F16 {
            // Gradients the scale lifts into f16's normal range must all survive; unscaled,
            // many of them flush to zero.
            let lifted = |d: &[f32]| {
                let pairs = d.iter().zip(&want_d);
                let lifted = pairs.filter(|(_, w)| w.abs() * scale >= 2f32.powi(-14));
                lifted.filter(|(g, _)| **g == 0.0).count()
            };
            let plain_zeros = lifted(&read_as_f32(gpu, &plain, len, dtype));
            assert!(
                plain_zeros > 100,
                "only {plain_zeros} plain f16 gradients flushed"
            );
            assert_eq!(lifted(&unscaled), 0, "scaled f16 gradients flushed to 0");
        }
    }
}

/// A rule out of range, and a state buffer too short, are refused before anything runs.
#[test]
fn bad_loss_scale_settings_are_refused() {
    let gpu = require_gpu!();
    let base = LossScaleRule::default();
    let bad = [
        LossScaleRule {
            init_scale: 0.0,
            ..base
        },
        LossScaleRule {
            init_scale: f32::INFINITY,
            ..base
        },
        LossScaleRule {
            init_scale: f32::NAN,
            ..base
        },
        LossScaleRule {
            growth: 1.0,
            ..base
        },
        LossScaleRule {
            backoff: 1.0,
            ..base
        },
        LossScaleRule {
            backoff: 0.0,
            ..base
        },
        LossScaleRule {
            growth_interval: 0,
            ..base
        },
    ];
    let ps = params(gpu);
    for rule in bad {
        let mut opt = Optimizer::new(gpu, &[&ps[0], &ps[1]], config("adam", None)).unwrap();
        let err = opt.enable_loss_scaling(gpu, rule).expect_err("a bad rule");
        assert!(err.to_string().contains("loss scale"), "{rule:?}: {err}");
    }
    let (short, norm_sq) = (gpu.zeroed_f32("state", 3), gpu.zeroed_f32("norm_sq", 1));
    let err =
        pollster::block_on(gpu.run(|pass| loss_scale_update(gpu, pass, &short, &norm_sq, &base)))
            .expect_err("a short state");
    assert!(err.to_string().contains("state"), "{err}");
}

/// A checkpoint's scaler state is restored as it was, and one that could not come from a
/// scaler (a scale of 0, negative, NaN or infinite, a negative count, the wrong length) is
/// refused, naming the entry.
#[test]
fn a_saved_scaler_state_is_restored_or_refused() {
    let gpu = require_gpu!();
    let ps = params(gpu);
    let mut opt = Optimizer::new(gpu, &refs(&ps), config("adam", None)).unwrap();
    opt.enable_loss_scaling(gpu, LossScaleRule::default())
        .unwrap();
    let restore = |opt: &mut Optimizer, saved: Vec<f32>| {
        let entries: Vec<(String, Vec<f32>)> = opt
            .state_entries(&refs(&ps))
            .iter()
            .map(|(name, shape, _)| (name.clone(), vec![0.0; shape.iter().product()]))
            .collect();
        let lookup = |name: &str| match name {
            LOSS_SCALE_ENTRY => Some(saved.clone()),
            _ => entries
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
        };
        opt.restore(gpu, &refs(&ps), 7, &lookup)
    };
    restore(&mut opt, vec![1024.0, 3.0, 2.0, 0.0]).unwrap();
    let got = state(gpu, &opt);
    assert_eq!(
        (got.scale, got.clean_steps, got.skipped_steps),
        (1024.0, 3.0, 2.0)
    );
    for bad in [
        vec![0.0, 0.0, 0.0, 0.0],
        vec![-1.0, 0.0, 0.0, 0.0],
        vec![f32::NAN, 0.0, 0.0, 0.0],
        vec![f32::INFINITY, 0.0, 0.0, 0.0],
        vec![1.0, -1.0, 0.0, 0.0],
        vec![1.0, 0.0, 0.0, 0.5],
        vec![1.0, 0.0, 0.0],
    ] {
        let err = restore(&mut opt, bad.clone()).expect_err("a bad state");
        assert!(err.to_string().contains(LOSS_SCALE_ENTRY), "{bad:?}: {err}");
    }
}
