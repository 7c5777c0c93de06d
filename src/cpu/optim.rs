//! CPU reference of `kernels::optim`; `scale` is the clipping factor ([`clip_scale`]).

use crate::kernels::optim::{Adagrad, Adam, Sgd};

/// The clipping factor min(1, max_norm / ‖g‖) for a squared global norm, or 1 without clipping.
pub fn clip_scale(norm_sq: f32, max_norm: Option<f32>) -> f32 {
    match max_norm {
        Some(c) => (c / norm_sq.sqrt().max(1e-30)).min(1.0),
        None => 1.0,
    }
}

pub fn sgd(param: &mut [f32], velocity: &mut [f32], grad: &[f32], h: &Sgd, scale: f32) {
    for i in 0..param.len() {
        let g = scale * grad[i] + h.weight_decay * param[i];
        velocity[i] = h.momentum * velocity[i] + g;
        param[i] -= h.lr * velocity[i];
    }
}

pub fn adagrad(param: &mut [f32], sum_sq: &mut [f32], grad: &[f32], h: &Adagrad, scale: f32) {
    for i in 0..param.len() {
        let g = scale * grad[i] + h.weight_decay * param[i];
        sum_sq[i] += g * g;
        param[i] -= h.lr * g / (sum_sq[i].sqrt() + h.eps);
    }
}

pub fn adam(
    param: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    h: &Adam,
    step: u32,
    scale: f32,
) {
    let bc1 = 1.0 - h.beta1.powi(step as i32);
    let bc2 = 1.0 - h.beta2.powi(step as i32);
    for i in 0..param.len() {
        let mut g = scale * grad[i];
        let mut w = param[i];
        if h.decoupled {
            w -= h.lr * h.weight_decay * w;
        } else {
            g += h.weight_decay * w;
        }
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g;
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
        param[i] = w - h.lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + h.eps);
    }
}

/// One LAMB step of one parameter tensor (step counted from 1): the norms in f64.
pub fn lamb(
    param: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    h: &crate::kernels::optim::Lamb,
    step: u32,
    scale: f32,
) {
    let bc1 = 1.0 - h.beta1.powi(step as i32);
    let bc2 = 1.0 - h.beta2.powi(step as i32);
    let mut direction = vec![0.0f32; param.len()];
    for i in 0..param.len() {
        let g = scale * grad[i];
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g;
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
        direction[i] = (m[i] / bc1) / ((v[i] / bc2).sqrt() + h.eps) + h.weight_decay * param[i];
    }
    let norm = |x: &[f32]| x.iter().map(|&a| a as f64 * a as f64).sum::<f64>().sqrt();
    let (w_norm, u_norm) = (norm(param), norm(&direction));
    let ratio = if w_norm > 0.0 && u_norm > 0.0 {
        (w_norm / u_norm) as f32
    } else {
        1.0
    };
    for (w, u) in param.iter_mut().zip(&direction) {
        *w -= h.lr * ratio * u;
    }
}

/// The loss scaler's update after a step whose scaled gradients have squared global norm
/// `norm_sq` (GradScaler's rule; see `kernels::loss_scale`).
pub fn loss_scale_update(
    state: &mut crate::kernels::loss_scale::ScalerState,
    norm_sq: f32,
    rule: &crate::kernels::loss_scale::LossScaleRule,
) {
    if !norm_sq.is_finite() {
        state.scale = (state.scale * rule.backoff).max(f32::MIN_POSITIVE);
        state.clean_steps = 0.0;
        state.skipped_steps += 1.0;
        state.last_skipped = 1.0;
        return;
    }
    state.last_skipped = 0.0;
    state.clean_steps += 1.0;
    if state.clean_steps >= rule.growth_interval as f32 {
        let grown = state.scale * rule.growth;
        if grown.is_finite() {
            state.scale = grown;
        }
        state.clean_steps = 0.0;
    }
}
