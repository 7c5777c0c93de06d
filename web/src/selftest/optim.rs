//! Self-test cases of the optimizer updates (SGD, Adagrad, Adam, AdamW, LAMB, with and
//! without clipping) against `cpu::optim` over two steps, and of loss scaling: the
//! scaler's update, an unscaled step and a skipped (overflowed) one.

use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::loss_scale::{LossScaleRule, ScalerState, loss_scale_update};
use rezero::kernels::optim::{self, GlobalNorm, Gradient};
use rezero::kernels::reduce::REDUCE_SCRATCH_LEN;

use super::harness::{Outcome, Runner, Tol, Verdict, seeded};

pub async fn run(run: &mut Runner<'_>) {
    let gpu = run.gpu;
    for method in Method::ALL {
        for n in [1u32, 33, 1000] {
            for clip in [None, Some(0.5f32)] {
                let case = format!("{method:?} 2 steps n={n} clip={clip:?}");
                run.case("optim", case, optimizer(gpu, method, n, clip))
                    .await;
            }
        }
    }
    let case = "scaler update over 6 steps, overflows included".to_string();
    run.case("loss_scale", case, scaler_updates(gpu)).await;
    for overflow in [false, true] {
        let case = format!("loss-scaled SGD step, clipped, overflowed={overflow}");
        run.case("loss_scale", case, scaled_step(gpu, 33, overflow))
            .await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Sgd,
    Adagrad,
    Adam,
    AdamW,
    Lamb,
}

impl Method {
    const ALL: [Method; 5] = [
        Method::Sgd,
        Method::Adagrad,
        Method::Adam,
        Method::AdamW,
        Method::Lamb,
    ];
}

const SGD: optim::Sgd = optim::Sgd {
    lr: 0.1,
    momentum: 0.9,
    weight_decay: 0.01,
};
const ADAGRAD: optim::Adagrad = optim::Adagrad {
    lr: 0.05,
    eps: 1e-8,
    weight_decay: 0.001,
};
const LAMB: optim::Lamb = optim::Lamb {
    lr: 0.01,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-6,
    weight_decay: 0.01,
};

fn adam(decoupled: bool) -> optim::Adam {
    optim::Adam {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        decoupled,
    }
}

/// An optimizer's buffers: parameters, its one or two states, and LAMB's scratch.
struct Buffers {
    param: wgpu::Buffer,
    state: [wgpu::Buffer; 2],
    /// LAMB's direction, its two squared norms and the reduction's partial sums.
    lamb: [wgpu::Buffer; 4],
}

impl Buffers {
    fn new(gpu: &Gpu, param: &[f32]) -> Buffers {
        let len = param.len();
        Buffers {
            param: gpu.upload("param", param),
            state: ["state1", "state2"].map(|l| gpu.zeroed_f32(l, len)),
            lamb: [
                gpu.zeroed_f32("direction", len),
                gpu.zeroed_f32("w_norm_sq", 1),
                gpu.zeroed_f32("u_norm_sq", 1),
                gpu.zeroed_f32("partials", REDUCE_SCRATCH_LEN),
            ],
        }
    }
}

/// The schedule factor and betas of a step (SGD at half its base rate, a schedule's
/// factor; the others at 1).
fn step_values(method: Method, step: u32) -> rezero::Result<[f32; 4]> {
    let (factor, betas) = match method {
        Method::Sgd => (0.5, None),
        Method::Adagrad => (1.0, None),
        Method::Adam | Method::AdamW => (1.0, Some((0.9, 0.999))),
        Method::Lamb => (1.0, Some((LAMB.beta1, LAMB.beta2))),
    };
    optim::step_values(factor, betas, step)
}

/// Records one update of `method`, consuming the gradient.
fn update(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    (method, n): (Method, u32),
    b: &Buffers,
    (grad, values): (&wgpu::Buffer, &wgpu::Buffer),
    global: Option<GlobalNorm>,
) -> rezero::Result<()> {
    let (p, [s1, s2]) = (&b.param, &b.state);
    let g = Gradient::consume(grad);
    match method {
        Method::Sgd => optim::sgd(gpu, pass, p, s1, g, values, n, &SGD, global),
        Method::Adagrad => optim::adagrad(gpu, pass, p, s1, g, values, n, &ADAGRAD, global),
        Method::Adam | Method::AdamW => {
            let h = adam(matches!(method, Method::AdamW));
            optim::adam(gpu, pass, p, s1, s2, g, values, n, &h, global)
        }
        Method::Lamb => {
            let [direction, w_norm_sq, u_norm_sq, reduce] = &b.lamb;
            let scratch = optim::LambScratch {
                direction,
                w_norm_sq,
                u_norm_sq,
                reduce,
            };
            optim::lamb(gpu, pass, p, s1, s2, g, values, scratch, n, &LAMB, global)
        }
    }
}

/// The reference of one update at `step`, gradients scaled by `scale` (the clipping).
fn reference(method: Method, [p, s1, s2]: [&mut [f32]; 3], g: &[f32], step: u32, scale: f32) {
    match method {
        Method::Sgd => {
            let half = optim::Sgd {
                lr: SGD.lr * 0.5,
                ..SGD
            };
            cpu::optim::sgd(p, s1, g, &half, scale);
        }
        Method::Adagrad => cpu::optim::adagrad(p, s1, g, &ADAGRAD, scale),
        Method::Adam | Method::AdamW => {
            let h = adam(matches!(method, Method::AdamW));
            cpu::optim::adam(p, s1, s2, g, &h, step, scale);
        }
        Method::Lamb => cpu::optim::lamb(p, s1, s2, g, &LAMB, step, scale),
    }
}

/// Two steps of `method` on n parameters: parameters and first state compared with the
/// reference, and the gradient, consumed by the update, left zero.
async fn optimizer(gpu: &Gpu, method: Method, n: u32, clip: Option<f32>) -> Outcome {
    let len = n as usize;
    let mut p = seeded(21, len, -1.0, 1.0);
    let (mut s1, mut s2) = (vec![0.0; len], vec![0.0; len]);
    let buffers = Buffers::new(gpu, &p);
    let mut v = Verdict::default();
    for step in 1..=2u32 {
        let g = seeded(100 + step as u64, len, -1.0, 1.0);
        let norm_sq = cpu::reduce::sum_all(&g, true);
        let (gg, gnorm) = (gpu.upload("grad", &g), gpu.upload("norm_sq", &[norm_sq]));
        let global = clip.map(|max_norm| GlobalNorm {
            norm_sq: &gnorm,
            clip: Some(max_norm),
            loss_scale: None,
        });
        let values = gpu.upload("values", &step_values(method, step)?);
        gpu.run(|pass| update(gpu, pass, (method, n), &buffers, (&gg, &values), global))
            .await?;
        let scale = cpu::optim::clip_scale(norm_sq, clip);
        reference(method, [&mut p, &mut s1, &mut s2], &g, step, scale);
        let what = format!("step {step} gradient (consumed)");
        v.expect(gpu, &what, &gg, &vec![0.0; len], Tol::EXACT)
            .await?;
    }
    let tol = Tol::new(1e-6, 1e-5);
    v.expect(gpu, "param", &buffers.param, &p, tol).await?;
    v.expect(gpu, "first state", &buffers.state[0], &s1, tol)
        .await?;
    Ok(v)
}

/// The scaler's state after each of six updates, two of them after overflows.
async fn scaler_updates(gpu: &Gpu) -> Outcome {
    let rule = LossScaleRule {
        init_scale: 1024.0,
        growth: 2.0,
        backoff: 0.5,
        growth_interval: 2,
    };
    let mut want = rule.initial_state();
    let state = gpu.upload("scaler", &want.to_values());
    let mut v = Verdict::default();
    for (i, norm_sq) in [1.0f32, 4.0, f32::INFINITY, 2.0, f32::NAN, 3.0]
        .into_iter()
        .enumerate()
    {
        let gnorm = gpu.upload("norm_sq", &[norm_sq]);
        gpu.run(|pass| loss_scale_update(gpu, pass, &state, &gnorm, &rule))
            .await?;
        cpu::optim::loss_scale_update(&mut want, norm_sq, &rule);
        let what = format!("state after update {i} (norm² {norm_sq})");
        v.expect(gpu, &what, &state, &want.to_values(), Tol::EXACT)
            .await?;
    }
    Ok(v)
}

/// One SGD step on gradients scaled by 2¹⁰, clipped: the update unscales them; with an
/// overflowed norm the step is skipped (parameters and velocity stay) and the consumed
/// gradient is still zeroed.
async fn scaled_step(gpu: &Gpu, n: u32, overflow: bool) -> Outcome {
    let (len, scale, max_norm) = (n as usize, 1024.0f32, 0.5f32);
    let (mut p, mut velocity) = (seeded(31, len, -1.0, 1.0), seeded(32, len, -0.1, 0.1));
    let g: Vec<f32> = seeded(33, len, -1.0, 1.0)
        .iter()
        .map(|x| x * scale)
        .collect();
    let norm_sq = match overflow {
        true => f32::INFINITY,
        false => cpu::reduce::sum_all(&g, true),
    };
    let state = ScalerState {
        scale,
        ..LossScaleRule::default().initial_state()
    };
    let (gp, gv, gg) = (
        gpu.upload("param", &p),
        gpu.upload("velocity", &velocity),
        gpu.upload("grad", &g),
    );
    let (gnorm, gstate) = (
        gpu.upload("norm_sq", &[norm_sq]),
        gpu.upload("scaler", &state.to_values()),
    );
    let values = gpu.upload("values", &optim::step_values(1.0, None, 1)?);
    let global = GlobalNorm {
        norm_sq: &gnorm,
        clip: Some(max_norm),
        loss_scale: Some(&gstate),
    };
    let grad = Gradient::consume(&gg);
    gpu.run(|pass| optim::sgd(gpu, pass, &gp, &gv, grad, &values, n, &SGD, Some(global)))
        .await?;
    if !overflow {
        // Unscaled, then clipped by the unscaled norm.
        let unscaled_norm = norm_sq.sqrt() / scale;
        let factor = (max_norm / unscaled_norm.max(1e-30)).min(1.0) / scale;
        cpu::optim::sgd(&mut p, &mut velocity, &g, &SGD, factor);
    }
    let mut v = Verdict::default();
    v.expect(gpu, "param", &gp, &p, Tol::new(1e-6, 1e-5))
        .await?;
    v.expect(gpu, "velocity", &gv, &velocity, Tol::new(1e-6, 1e-5))
        .await?;
    v.expect(gpu, "gradient (consumed)", &gg, &vec![0.0; len], Tol::EXACT)
        .await?;
    Ok(v)
}
