// Optimizer updates in place on the GPU: SGD with momentum, Adagrad, Adam / AdamW, LAMB.
// Hyperparameters that stay fixed for a run arrive in the uniform; what changes from step
// to step (the learning-rate factor of a schedule, Adam's bias corrections) in the
// four-element `step_values` buffer, so a training loop's dispatches keep their uniform
// and bind group. With `clip` > 0 the gradient is scaled by min(1, clip / ‖g‖),
// ‖g‖² read from a one-element buffer (global-norm clipping with no readback). With
// `zero_grad` each gradient element is set to 0 once read (`take_grad`): the next
// backward adds into it with no zeroing pass between.
//
// Loss scaling (mixed precision, as PyTorch's GradScaler): with `loss_scaled` the gradients
// hold the loss scale's multiple, read from `scaler` (the state `loss_scale_update` keeps):
// every update divides by it, and a step whose squared global norm `norm_sq` is inf or NaN
// (some gradient overflowed) is skipped: parameters and moments stay, gradients are still
// zeroed when asked. `loss_scale_update` (shaders/loss_scale.wgsl) then halves the scale, or doubles it after
// `growth_interval` clean steps in a row.

struct Params {
    n: u32,               // elements of the parameter
    decoupled: u32,       // Adam: 1 AdamW (p -= lr·wd·p), 0 L2 (g += wd·p)
    lr: f32,              // base learning rate (times step_values[0])
    weight_decay: f32,
    momentum: f32,        // SGD
    beta1: f32,           // Adam
    beta2: f32,           // Adam
    eps: f32,             // Adam, Adagrad
    zero_grad: u32,       // 1: grad[i] = 0 once read
    loss_scaled: u32,     // 1: gradients are scaled by scaler[0]; skip the step on overflow
    clip: f32,            // max global gradient norm; 0 turns clipping off
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// param, state1, grad, state2: [n]; norm_sq: [1] (bound but unread when clip is 0)
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> state1: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read> norm_sq: array<f32>;
// step_values: [4] = [lr factor, 1 − beta1^t, 1 − beta2^t, 0]
@group(0) @binding(5) var<storage, read> step_values: array<f32>;
@group(0) @binding(6) var<storage, read_write> state2: array<f32>;
// LAMB: direction: [n], the update before its trust ratio; w_norm_sq, u_norm_sq: [1]
@group(0) @binding(7) var<storage, read_write> direction: array<f32>;
@group(0) @binding(8) var<storage, read> w_norm_sq: array<f32>;
@group(0) @binding(9) var<storage, read> u_norm_sq: array<f32>;
// scaler: [4], the loss scaler's state (its scale first; bound but unread without loss_scaled)
@group(0) @binding(10) var<storage, read> scaler: array<f32>;

// Whether this step is skipped: loss scaling found an overflowed gradient.
fn skipped() -> bool {
    return p.loss_scaled == 1u && !is_finite(norm_sq[0]);
}

// A skipped step's only work: the gradients it would have consumed are zeroed.
fn skip_step(wg: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) {
    if (p.zero_grad == 1u) {
        for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
            grad[i] = 0.0;
        }
    }
}

fn lr() -> f32 {
    return p.lr * step_values[0];
}

// The factor every gradient element is multiplied by: 1 / the loss scale (1 without loss
// scaling), times min(1, clip / ‖g‖) when clipping, ‖g‖ the unscaled norm.
fn grad_scale() -> f32 {
    let unscale = select(1.0, 1.0 / scaler[0], p.loss_scaled == 1u);
    if (p.clip > 0.0) {
        return unscale * min(1.0, p.clip / max(sqrt(norm_sq[0]) * unscale, 1e-30));
    }
    return unscale;
}

// grad[i], set to 0 once read when the launcher asks.
fn take_grad(i: u32) -> f32 {
    let g = grad[i];
    if (p.zero_grad == 1u) {
        grad[i] = 0.0;
    }
    return g;
}

// Each entry point walks the elements in a grid-stride loop over a 1D grid.

// v = momentum·v + (g + wd·p); p -= lr·v      (state1 = v)
@compute @workgroup_size(GRID_WG)
fn sgd(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    if (skipped()) {
        skip_step(wg, lid, nwg);
        return;
    }
    let scale = grad_scale();
    let lr = lr();
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        let g = scale * take_grad(i) + p.weight_decay * param[i];
        let v = p.momentum * state1[i] + g;
        state1[i] = v;
        param[i] -= lr * v;
    }
}

// s += g²; p -= lr·g / (√s + eps)      (state1 = s)
@compute @workgroup_size(GRID_WG)
fn adagrad(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    if (skipped()) {
        skip_step(wg, lid, nwg);
        return;
    }
    let scale = grad_scale();
    let lr = lr();
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        let g = scale * take_grad(i) + p.weight_decay * param[i];
        let s = state1[i] + g * g;
        state1[i] = s;
        param[i] -= lr * g / (sqrt(s) + p.eps);
    }
}

// m, v moments with bias correction; AdamW decays p directly   (state1 = m, state2 = v)
@compute @workgroup_size(GRID_WG)
fn adam(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    if (skipped()) {
        skip_step(wg, lid, nwg);
        return;
    }
    let scale = grad_scale();
    let lr = lr();
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        var g = scale * take_grad(i);
        var w = param[i];
        if (p.decoupled == 1u) {
            w -= lr * p.weight_decay * w;
        } else {
            g += p.weight_decay * w;
        }
        param[i] = w - lr * adam_direction(i, g);
    }
}

// Adam's moments of element i updated with gradient g (state1 = m, state2 = v), and the
// bias-corrected direction m̂ / (√v̂ + eps) they give (Adam's and LAMB's).
fn adam_direction(i: u32, g: f32) -> f32 {
    let m = p.beta1 * state1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * state2[i] + (1.0 - p.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    return (m / step_values[1]) / (sqrt(v / step_values[2]) + p.eps);
}

// LAMB (You et al., 2020), stage 1: Adam's moments with bias correction, and the direction
// u = m̂ / (√v̂ + eps) + wd·p (decoupled decay) into `direction`   (state1 = m, state2 = v)
@compute @workgroup_size(GRID_WG)
fn lamb_direction(@builtin(local_invocation_id) lid: vec3<u32>,
                  @builtin(workgroup_id) wg: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    if (skipped()) {
        skip_step(wg, lid, nwg);
        return;
    }
    let scale = grad_scale();
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        direction[i] = adam_direction(i, scale * take_grad(i)) + p.weight_decay * param[i];
    }
}

// LAMB, stage 2 (after ‖p‖² and ‖u‖² are summed): p −= lr · (‖p‖ / ‖u‖) · u, the trust
// ratio taken as 1 when either norm is 0.
@compute @workgroup_size(GRID_WG)
fn lamb_apply(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(workgroup_id) wg: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    if (skipped()) {
        return;
    }
    let w_norm = sqrt(w_norm_sq[0]);
    let u_norm = sqrt(u_norm_sq[0]);
    let ratio = select(1.0, w_norm / u_norm, w_norm > 0.0 && u_norm > 0.0);
    let step = lr() * ratio;
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        param[i] -= step * direction[i];
    }
}

