// Batch normalisation of NCHW activations per channel over batch × pixels: training mode
// (batch statistics, saved for backward, and the running mean and variance updated on the
// GPU), eval mode (the running statistics), and the training-mode backward. One workgroup
// per channel for the reductions, summed in a fixed order (deterministic).

struct Params {
    batch: u32,
    channels: u32,
    pixels: u32,      // h·w
    eps: f32,
    momentum: f32,    // running = (1 − momentum)·running + momentum·batch statistic
    accumulate: u32,  // backward: 1 dx += ..., 0 dx = ...
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Invocations per workgroup, a power of two (`Gpu::row_workgroup_size`).
override WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

fn workgroup_sum(l: u32, v: f32) -> f32 {
    red[l] = v;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (l < s) {
            red[l] += red[l + s];
        }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

// Flat index of the i-th element (over batch × pixels) of channel c.
fn at(c: u32, i: u32) -> u32 {
    let n = i / p.pixels;
    return (n * p.channels + c) * p.pixels + i % p.pixels;
}

// ---- training forward ----
// y, x: [batch, channels, pixels]; mean, rstd, running_mean, running_var, gamma, beta: [channels]
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read> x: array<f32>;
@group(0) @binding(7) var<storage, read> gamma: array<f32>;
@group(0) @binding(8) var<storage, read> beta: array<f32>;

@compute @workgroup_size(WG)
fn batchnorm_train_forward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let c = wg.x;
    let count = p.batch * p.pixels;
    var s = 0.0;
    for (var i = lid.x; i < count; i += WG) {
        s += x[at(c, i)];
    }
    let mu = workgroup_sum(lid.x, s) / f32(count);
    var v = 0.0;
    for (var i = lid.x; i < count; i += WG) {
        let d = x[at(c, i)] - mu;
        v += d * d;
    }
    let var_sum = workgroup_sum(lid.x, v);
    let r = inverseSqrt(var_sum / f32(count) + p.eps);
    let g = gamma[c] * r;
    let b = beta[c];
    for (var i = lid.x; i < count; i += WG) {
        let j = at(c, i);
        y[j] = (x[j] - mu) * g + b;
    }
    if (lid.x == 0u) {
        mean[c] = mu;
        rstd[c] = r;
        // The running variance is the unbiased estimate, as in the frameworks.
        let unbiased = var_sum / f32(max(count, 2u) - 1u);
        running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mu;
        running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
    }
}

// ---- eval forward: y = (x − running_mean)·rsqrt(running_var + eps)·gamma + beta ----
// y_eval, x_eval: [batch, channels, pixels]; the rest: [channels]
@group(0) @binding(1) var<storage, read_write> y_eval: array<f32>;
@group(0) @binding(2) var<storage, read> x_eval: array<f32>;
@group(0) @binding(3) var<storage, read> mean_eval: array<f32>;
@group(0) @binding(4) var<storage, read> var_eval: array<f32>;
@group(0) @binding(5) var<storage, read> gamma_eval: array<f32>;
@group(0) @binding(6) var<storage, read> beta_eval: array<f32>;

@compute @workgroup_size(256)
fn batchnorm_eval_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let total = p.batch * p.channels * p.pixels;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let c = (i / p.pixels) % p.channels;
        let g = gamma_eval[c] * inverseSqrt(var_eval[c] + p.eps);
        y_eval[i] = (x_eval[i] - mean_eval[c]) * g + beta_eval[c];
    }
}

// ---- training backward, with x̂ = (x − mean)·rstd and N = batch·pixels:
// dx = gamma·rstd·(dy − Σdy/N − x̂·Σ(dy·x̂)/N), dgamma += Σ dy·x̂, dbeta += Σ dy ----
// dx, dy, xb: [batch, channels, pixels]; the rest: [channels]
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read> xb: array<f32>;
@group(0) @binding(6) var<storage, read> mean_b: array<f32>;
@group(0) @binding(7) var<storage, read> rstd_b: array<f32>;
@group(0) @binding(8) var<storage, read> gamma_b: array<f32>;

@compute @workgroup_size(WG)
fn batchnorm_backward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let c = wg.x;
    let count = p.batch * p.pixels;
    let mu = mean_b[c];
    let r = rstd_b[c];
    var s_dy = 0.0;
    var s_dyx = 0.0;
    for (var i = lid.x; i < count; i += WG) {
        let j = at(c, i);
        s_dy += dy[j];
        s_dyx += dy[j] * (xb[j] - mu) * r;
    }
    let sum_dy = workgroup_sum(lid.x, s_dy);
    let sum_dyx = workgroup_sum(lid.x, s_dyx);
    let inv_n = 1.0 / f32(count);
    let g = gamma_b[c] * r;
    for (var i = lid.x; i < count; i += WG) {
        let j = at(c, i);
        let xhat = (xb[j] - mu) * r;
        var v = g * (dy[j] - sum_dy * inv_n - xhat * sum_dyx * inv_n);
        if (p.accumulate == 1u) {
            v += dx[j];
        }
        dx[j] = v;
    }
    if (lid.x == 0u) {
        dgamma[c] += sum_dyx;
        dbeta[c] += sum_dy;
    }
}
