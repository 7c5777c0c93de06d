//! Launchers for `shaders/optim.wgsl`: SGD with momentum, Adagrad, Adam and AdamW, in place.

use crate::gpu::{Error, Gpu, Kernel, Result, Shader};

use super::{check_len, check_nonempty, grid_stride};

const SHADER: Shader = Shader {
    name: "optim",
    wgsl: include_str!("../../shaders/optim.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    decoupled: u32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    _pad0: u32,
    _pad1: u32,
}

/// SGD: v = momentum·v + (g + wd·p); p −= lr·v.
#[derive(Clone, Copy, Debug)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

/// Adagrad: s += g²; p −= lr·g / (√s + eps) (g includes wd·p).
#[derive(Clone, Copy, Debug)]
pub struct Adagrad {
    pub lr: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// Adam with bias correction; `decoupled` makes it AdamW (p −= lr·wd·p).
#[derive(Clone, Copy, Debug)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
}

fn invalid(what: &str, value: f32, rule: &str) -> Error {
    Error::Invalid {
        what: what.into(),
        why: format!("{value} {rule}"),
    }
}

fn check_common(lr: f32, weight_decay: f32) -> Result<()> {
    if !(lr >= 0.0 && lr.is_finite()) {
        return Err(invalid("learning rate", lr, "must be a finite number >= 0"));
    }
    if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
        return Err(invalid(
            "weight decay",
            weight_decay,
            "must be a finite number >= 0",
        ));
    }
    Ok(())
}

fn launch(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    entry: &'static str,
    params: &Params,
    buffers: &[&wgpu::Buffer],
) -> Result<()> {
    check_nonempty(entry, &[("n", params.n)])?;
    for b in buffers {
        check_len(entry, "[n]", b, params.n as u64)?;
    }
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, entry),
        params,
        buffers,
        grid_stride(params.n as u64),
    )
}

/// One SGD step. param, velocity, grad: [n]
pub fn sgd(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    param: &wgpu::Buffer,
    velocity: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    n: u32,
    h: &Sgd,
) -> Result<()> {
    check_common(h.lr, h.weight_decay)?;
    if !(0.0..1.0).contains(&h.momentum) {
        return Err(invalid("momentum", h.momentum, "must be in [0, 1)"));
    }
    let params = Params {
        n,
        lr: h.lr,
        momentum: h.momentum,
        weight_decay: h.weight_decay,
        ..Default::default()
    };
    launch(gpu, pass, "sgd", &params, &[param, velocity, grad])
}

/// One Adagrad step. param, sum_sq, grad: [n]
pub fn adagrad(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    param: &wgpu::Buffer,
    sum_sq: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    n: u32,
    h: &Adagrad,
) -> Result<()> {
    check_common(h.lr, h.weight_decay)?;
    if h.eps.is_nan() || h.eps <= 0.0 {
        return Err(invalid("eps", h.eps, "must be > 0"));
    }
    let params = Params {
        n,
        lr: h.lr,
        eps: h.eps,
        weight_decay: h.weight_decay,
        ..Default::default()
    };
    launch(gpu, pass, "adagrad", &params, &[param, sum_sq, grad])
}

/// Adam step number `step` (1 for the first). param, m, v, grad: [n]
#[allow(clippy::too_many_arguments)]
pub fn adam(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    param: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    n: u32,
    h: &Adam,
    step: u32,
) -> Result<()> {
    check_common(h.lr, h.weight_decay)?;
    for (what, beta) in [("beta1", h.beta1), ("beta2", h.beta2)] {
        if !(0.0..1.0).contains(&beta) {
            return Err(invalid(what, beta, "must be in [0, 1)"));
        }
    }
    if h.eps.is_nan() || h.eps <= 0.0 {
        return Err(invalid("eps", h.eps, "must be > 0"));
    }
    if step == 0 {
        return Err(Error::Invalid {
            what: "adam step".into(),
            why: "steps count from 1".into(),
        });
    }
    let params = Params {
        n,
        decoupled: h.decoupled as u32,
        lr: h.lr,
        weight_decay: h.weight_decay,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        bias_correction1: 1.0 - h.beta1.powi(step as i32),
        bias_correction2: 1.0 - h.beta2.powi(step as i32),
        ..Default::default()
    };
    // Binding order follows the shader: param, m (state1), grad, v (state2).
    launch(gpu, pass, "adam", &params, &[param, m, grad, v])
}
