//! The optimizer cases of `rezero bench optim`: one update of n parameters by each rule,
//! beside the plain copy.

use super::cases::memory_case;
use super::{Case, wait};
use crate::cpu;
use crate::gpu::Gpu;
use crate::kernels::optim;

/// One optimizer step over n parameters as training makes it, the gradient consumed (set to
/// 0): SGD (reads p, v, g; writes p, v, g), Adagrad (the same), Adam (reads p, m, v, g;
/// writes p, m, v, g).
pub fn optim_cases(gpu: &Gpu, n: u32) -> Vec<Case> {
    let len = n as usize;
    let (p, s1, s2, g) = (
        gpu.upload("p", &cpu::seeded(19, len, -1.0, 1.0)),
        gpu.zeroed_f32("s1", len),
        gpu.zeroed_f32("s2", len),
        gpu.upload("g", &cpu::seeded(20, len, -1.0, 1.0)),
    );
    let sgd = optim::Sgd {
        lr: 1e-3,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let ada = optim::Adagrad {
        lr: 1e-3,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let adam = optim::Adam {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        decoupled: true,
    };
    let one = gpu.upload("values", &[1.0f32, 1.0, 1.0, 0.0]);
    let values = gpu.upload("values", &[1.0f32, 0.1, 0.001, 0.0]);
    let (one1, one2) = (one.clone(), one);
    let (p1, s11, g1, p2, s12, g2) = (
        p.clone(),
        s1.clone(),
        g.clone(),
        p.clone(),
        s1.clone(),
        g.clone(),
    );
    vec![
        memory_case(
            "sgd",
            "momentum",
            n,
            24.0,
            Box::new(move |gpu| {
                let g1 = optim::Gradient::consume(&g1);
                wait(gpu.run(|pass| optim::sgd(gpu, pass, &p1, &s11, g1, &one1, n, &sgd, None)))
            }),
        ),
        memory_case(
            "adagrad",
            "plain",
            n,
            24.0,
            Box::new(move |gpu| {
                let g2 = optim::Gradient::consume(&g2);
                wait(gpu.run(|pass| optim::adagrad(gpu, pass, &p2, &s12, g2, &one2, n, &ada, None)))
            }),
        ),
        memory_case(
            "adam",
            "adamw",
            n,
            32.0,
            Box::new(move |gpu| {
                let g = optim::Gradient::consume(&g);
                wait(
                    gpu.run(|pass| {
                        optim::adam(gpu, pass, &p, &s1, &s2, g, &values, n, &adam, None)
                    }),
                )
            }),
        ),
        lamb_case(gpu, n),
    ]
}

/// A LAMB step of one tensor: the moments and direction (reads p, m, v, g; writes m, v, u, g),
/// the two norms (read p and u), the update (reads u and p, writes p).
fn lamb_case(gpu: &Gpu, n: u32) -> Case {
    let len = n as usize;
    let [p, m, v, g, u] = [19, 0, 0, 20, 0].map(|seed| match seed {
        0 => gpu.zeroed_f32("lamb state", len),
        s => gpu.upload("lamb p/g", &cpu::seeded(s, len, -1.0, 1.0)),
    });
    let [w_norm_sq, u_norm_sq] = [0; 2].map(|_| gpu.zeroed_f32("lamb norm", 1));
    let partials = gpu.zeroed_f32("lamb partials", crate::kernels::reduce::REDUCE_SCRATCH_LEN);
    let values = gpu.upload("values", &[1.0f32, 0.1, 0.001, 0.0]);
    let h = optim::Lamb {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-6,
        weight_decay: 0.01,
    };
    memory_case(
        "lamb",
        "trust-ratio",
        n,
        52.0,
        Box::new(move |gpu| {
            let g = optim::Gradient::consume(&g);
            let scratch = optim::LambScratch {
                direction: &u,
                w_norm_sq: &w_norm_sq,
                u_norm_sq: &u_norm_sq,
                reduce: &partials,
            };
            wait(
                gpu.run(|pass| {
                    optim::lamb(gpu, pass, &p, &m, &v, g, &values, scratch, n, &h, None)
                }),
            )
        }),
    )
}
