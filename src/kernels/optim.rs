//! Launchers for `shaders/optim.wgsl`: SGD with momentum, Adagrad, Adam and AdamW, and
//! LAMB, in place. Each reads the gradient as a [`Gradient`] says: kept, or consumed (set
//! to 0 once read, so the next backward adds into it with no zeroing pass between).

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Shader, Work};

use super::{check_len, check_nonempty, grid_stride, reduce};

pub(crate) const SHADER: Shader = Shader {
    name: "optim",
    wgsl: super::wgsl!("grid.wgsl", "finite.wgsl", "optim.wgsl"),
    uniform_bytes: std::mem::size_of::<Params>(),
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
    /// 1: set each gradient element to 0 once read
    zero_grad: u32,
    loss_scaled: u32,
    clip: f32,
    _pad: u32,
}

/// The gradient an update reads ([n]), and whether the update then sets it to 0: what a
/// training loop whose backward adds (`+=`) into the gradient wants, with no separate
/// zeroing dispatch a parameter.
#[derive(Clone, Copy, Debug)]
pub struct Gradient<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub zero_after: bool,
}

impl<'a> Gradient<'a> {
    /// Read the gradient and leave it as it is.
    pub fn keep(buffer: &'a wgpu::Buffer) -> Gradient<'a> {
        Gradient {
            buffer,
            zero_after: false,
        }
    }

    /// Read the gradient, then set it to 0.
    pub fn consume(buffer: &'a wgpu::Buffer) -> Gradient<'a> {
        Gradient {
            buffer,
            zero_after: true,
        }
    }
}

/// What an update does with the squared global gradient norm ‖g‖² (over all parameters,
/// in a one-element GPU buffer, e.g. summed there by `reduce::sum_all` with `square`; no
/// readback): clip, scaling every gradient by min(1, max_norm / ‖g‖), and/or unscale the
/// gradients of a loss-scaled step (mixed precision), skipping the step where ‖g‖² is inf
/// or NaN (a gradient overflowed).
#[derive(Clone, Copy, Debug)]
pub struct GlobalNorm<'a> {
    /// [1]: the squared global norm of the gradients as they are (loss-scaled ones too).
    pub norm_sq: &'a wgpu::Buffer,
    /// Clip the (unscaled) global norm to this.
    pub clip: Option<f32>,
    /// The loss scaler's state ([`super::loss_scale::ScalerState`]): the gradients are
    /// its scale's multiple.
    pub loss_scale: Option<&'a wgpu::Buffer>,
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

/// LAMB (You et al., 2020): Adam's bias-corrected direction u = m̂/(√v̂ + eps) + wd·p (decay
/// decoupled), applied as p −= lr·(‖p‖/‖u‖)·u with the trust ratio of this one parameter
/// tensor (1 when either norm is 0).
#[derive(Clone, Copy, Debug)]
pub struct Lamb {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// The buffers a LAMB step works in, reusable from one parameter to the next:
/// `direction` [≥ n], `w_norm_sq` and `u_norm_sq` [1] each, and `reduce` of
/// [`reduce::REDUCE_SCRATCH_LEN`] floats for the two norms' partial sums.
#[derive(Clone, Copy, Debug)]
pub struct LambScratch<'a> {
    pub direction: &'a wgpu::Buffer,
    pub w_norm_sq: &'a wgpu::Buffer,
    pub u_norm_sq: &'a wgpu::Buffer,
    pub reduce: &'a wgpu::Buffer,
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

/// The four values an update reads from its `step_values` buffer: the factor the base
/// learning rate is multiplied by this step (a schedule's; 1 for none), and for Adam (its
/// `betas`, β1 and β2) the bias corrections 1 − β1^t and 1 − β2^t of step `step`
/// (counted from 1). Write them
/// with `Gpu::write` before the step's work is submitted, and only once the previous
/// step's work has been (a queue write lands before the next submission).
pub fn step_values(lr_factor: f32, betas: Option<(f32, f32)>, step: u32) -> Result<[f32; 4]> {
    if !(lr_factor >= 0.0 && lr_factor.is_finite()) {
        return Err(invalid(
            "learning-rate factor",
            lr_factor,
            "must be a finite number >= 0",
        ));
    }
    let Some((beta1, beta2)) = betas else {
        return Ok([lr_factor, 1.0, 1.0, 0.0]);
    };
    if step == 0 {
        return Err(Error::Invalid {
            what: "adam step".into(),
            why: "steps count from 1".into(),
        });
    }
    let correction = |beta: f32| 1.0 - beta.powi(step.min(i32::MAX as u32) as i32);
    Ok([lr_factor, correction(beta1), correction(beta2), 0.0])
}

/// Binds param, state1, grad, the clipping norm (the step values when there is none:
/// unread), the step values, then state2 and LAMB's direction where the method has them.
#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    entry: &'static str,
    params: &mut Params,
    [param, state1]: [&wgpu::Buffer; 2],
    grad: Gradient,
    [state2, direction]: [Option<&wgpu::Buffer>; 2],
    values: &wgpu::Buffer,
    global: Option<GlobalNorm>,
) -> Result<()> {
    check_nonempty(entry, &[("n", params.n)])?;
    check_len(entry, "step_values [4]", values, 4)?;
    params.zero_grad = grad.zero_after as u32;
    let grad = grad.buffer;
    for b in [param, state1, grad].iter().chain(state2.as_ref()) {
        check_len(entry, "[n]", b, params.n as u64)?;
    }
    let [norm_sq, scaler] = bind_global_norm(entry, params, global, values)?;
    let mut buffers = vec![param, state1, grad, norm_sq, values];
    buffers.extend(state2);
    buffers.extend(direction);
    let mut bound: Vec<(u32, &wgpu::Buffer)> = (1..).zip(buffers).collect();
    bound.push((10, scaler));
    gpu.dispatch_bound(
        pass,
        // reads and writes param and each state, reads grad (and zeroes it)
        &Kernel::new(SHADER, entry).work(Work::Bytes(
            (3 + 2 * state2.is_some() as u8 + 2 + params.zero_grad as u8) as f64
                * 4.0
                * params.n as f64,
        )),
        params,
        &bound,
        grid_stride(params.n as u64),
    )
}

/// Checks `global` and sets its fields of `params`; the buffers for the norm and scaler
/// bindings (`values` where one is unread: not grad, as a buffer may not be bound read-only
/// and writable at once).
fn bind_global_norm<'b>(
    entry: &'static str,
    params: &mut Params,
    global: Option<GlobalNorm<'b>>,
    values: &'b wgpu::Buffer,
) -> Result<[&'b wgpu::Buffer; 2]> {
    let Some(global) = global else {
        return Ok([values, values]);
    };
    check_len(entry, "norm_sq [1]", global.norm_sq, 1)?;
    if let Some(max_norm) = global.clip {
        if !(max_norm > 0.0 && max_norm.is_finite()) {
            return Err(invalid(
                "clip norm",
                max_norm,
                "must be a finite number > 0",
            ));
        }
        params.clip = max_norm;
    }
    if let Some(state) = global.loss_scale {
        check_len(entry, "loss scaler state [4]", state, 4)?;
        params.loss_scaled = 1;
    }
    Ok([global.norm_sq, global.loss_scale.unwrap_or(values)])
}

/// One SGD step at learning rate `h.lr` × `values[0]`, optionally clipped or loss-scaled ([`GlobalNorm`]).
/// param, velocity, grad: [n]; values: [4], see [`step_values`].
#[allow(clippy::too_many_arguments)]
pub fn sgd(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    param: &wgpu::Buffer,
    velocity: &wgpu::Buffer,
    grad: Gradient,
    values: &wgpu::Buffer,
    n: u32,
    h: &Sgd,
    global: Option<GlobalNorm>,
) -> Result<()> {
    check_common(h.lr, h.weight_decay)?;
    if !(0.0..1.0).contains(&h.momentum) {
        return Err(invalid("momentum", h.momentum, "must be in [0, 1)"));
    }
    let mut params = Params {
        n,
        lr: h.lr,
        momentum: h.momentum,
        weight_decay: h.weight_decay,
        ..Default::default()
    };
    launch(
        gpu,
        pass,
        "sgd",
        &mut params,
        [param, velocity],
        grad,
        [None, None],
        values,
        global,
    )
}

/// One Adagrad step at learning rate `h.lr` × `values[0]`, optionally clipped or loss-scaled ([`GlobalNorm`]).
/// param, sum_sq, grad: [n]; values: [4], see [`step_values`].
#[allow(clippy::too_many_arguments)]
pub fn adagrad(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    param: &wgpu::Buffer,
    sum_sq: &wgpu::Buffer,
    grad: Gradient,
    values: &wgpu::Buffer,
    n: u32,
    h: &Adagrad,
    global: Option<GlobalNorm>,
) -> Result<()> {
    check_common(h.lr, h.weight_decay)?;
    if h.eps.is_nan() || h.eps <= 0.0 {
        return Err(invalid("eps", h.eps, "must be > 0"));
    }
    let mut params = Params {
        n,
        lr: h.lr,
        eps: h.eps,
        weight_decay: h.weight_decay,
        ..Default::default()
    };
    launch(
        gpu,
        pass,
        "adagrad",
        &mut params,
        [param, sum_sq],
        grad,
        [None, None],
        values,
        global,
    )
}

/// One Adam step at learning rate `h.lr` × `values[0]` with the bias corrections in
/// `values[1..3]`, optionally clipped or loss-scaled ([`GlobalNorm`]). param, m, v, grad: [n]; values: [4], see
/// [`step_values`].
#[allow(clippy::too_many_arguments)]
pub fn adam(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    param: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
    grad: Gradient,
    values: &wgpu::Buffer,
    n: u32,
    h: &Adam,
    global: Option<GlobalNorm>,
) -> Result<()> {
    check_common(h.lr, h.weight_decay)?;
    check_moments(h.beta1, h.beta2, h.eps)?;
    let mut params = Params {
        n,
        decoupled: h.decoupled as u32,
        lr: h.lr,
        weight_decay: h.weight_decay,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        ..Default::default()
    };
    launch(
        gpu,
        pass,
        "adam",
        &mut params,
        [param, m],
        grad,
        [Some(v), None],
        values,
        global,
    )
}

/// Errors unless the betas are in [0, 1) and eps is above 0 (Adam's and LAMB's rule).
fn check_moments(beta1: f32, beta2: f32, eps: f32) -> Result<()> {
    for (what, beta) in [("beta1", beta1), ("beta2", beta2)] {
        if !(0.0..1.0).contains(&beta) {
            return Err(invalid(what, beta, "must be in [0, 1)"));
        }
    }
    if eps.is_nan() || eps <= 0.0 {
        return Err(invalid("eps", eps, "must be > 0"));
    }
    Ok(())
}

/// One LAMB step of one parameter tensor at learning rate `h.lr` × `values[0]` with the
/// bias corrections in `values[1..3]`, optionally clipped or loss-scaled ([`GlobalNorm`]): the direction and moments, the
/// two norms summed on the GPU (no readback), then the update scaled by the trust ratio.
/// param, m, v, grad: [n]; values: [4], see [`step_values`] (with the betas).
#[allow(clippy::too_many_arguments)]
pub fn lamb(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    param: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
    grad: Gradient,
    values: &wgpu::Buffer,
    scratch: LambScratch,
    n: u32,
    h: &Lamb,
    global: Option<GlobalNorm>,
) -> Result<()> {
    check_common(h.lr, h.weight_decay)?;
    check_moments(h.beta1, h.beta2, h.eps)?;
    let LambScratch {
        direction,
        w_norm_sq,
        u_norm_sq,
        reduce: partials,
    } = scratch;
    check_len("lamb", "direction [n]", direction, n as u64)?;
    let mut params = Params {
        n,
        lr: h.lr,
        weight_decay: h.weight_decay,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        ..Default::default()
    };
    let moments = [Some(v), Some(direction)];
    launch(
        gpu,
        pass,
        "lamb_direction",
        &mut params,
        [param, m],
        grad,
        moments,
        values,
        global,
    )?;
    reduce::sum_all(gpu, pass, w_norm_sq, partials, param, n, true, false)?;
    reduce::sum_all(gpu, pass, u_norm_sq, partials, direction, n, true, false)?;
    // The apply reads the norm only to skip an overflowed loss-scaled step.
    let norm_sq = global.map_or(values, |g| g.norm_sq);
    let bound = [
        (1, param),
        (4, norm_sq),
        (5, values),
        (7, direction),
        (8, w_norm_sq),
        (9, u_norm_sq),
    ];
    gpu.dispatch_bound(
        pass,
        // reads direction, reads and writes param
        &Kernel::new(SHADER, "lamb_apply").work(Work::Bytes(3.0 * 4.0 * n as f64)),
        &params,
        &bound,
        grid_stride(n as u64),
    )
}
