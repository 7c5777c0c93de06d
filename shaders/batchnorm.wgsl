// Batch normalisation of NCHW activations per channel over batch × pixels: training mode
// (batch statistics, saved for backward, and the running mean and variance updated on the
// GPU), eval mode (the running statistics), and the training-mode backward. Two ways to
// reduce, both summing in a fixed order (deterministic): one workgroup per channel (few
// dispatches: for software Vulkan and small batches), or split, where each channel's
// batch·pixels are cut into blocks reduced in parallel, merged per channel, then applied
// elementwise (enough workgroups to fill a GPU when channels are few). Built after an
// element prelude: the activations x, y, dy and dx are `Operand`s and `Out`s (f32, or f16);
// gamma, beta, their gradients, the statistics and every sum are f32.

struct Params {
    batch: u32,
    channels: u32,
    pixels: u32,      // h·w
    eps: f32,
    momentum: f32,    // running = (1 − momentum)·running + momentum·batch statistic
    accumulate: u32,  // backward: bits DX, DGAMMA, DBETA set where that gradient is added to
    blocks: u32,      // split: blocks per channel
    block_len: u32,   // split: elements of a channel per block
}

const DX: u32 = 1u;
const DGAMMA: u32 = 2u;
const DBETA: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;

// Flat index of the i-th element (over batch × pixels) of channel c.
fn at(c: u32, i: u32) -> u32 {
    let n = i / p.pixels;
    return (n * p.channels + c) * p.pixels + i % p.pixels;
}

// ---- training forward ----
// y, x: [batch, channels, pixels]; mean, rstd, running_mean, running_var, gamma, beta: [channels]
@group(0) @binding(1) var<storage, read_write> y: array<Out>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read> x: array<Operand>;
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
        s += f32(x[at(c, i)]);
    }
    let mu = workgroup_sum(lid.x, s) / f32(count);
    var v = 0.0;
    for (var i = lid.x; i < count; i += WG) {
        let d = f32(x[at(c, i)]) - mu;
        v += d * d;
    }
    let var_sum = workgroup_sum(lid.x, v);
    let r = inverseSqrt(var_sum / f32(count) + p.eps);
    let g = gamma[c] * r;
    let b = beta[c];
    for (var i = lid.x; i < count; i += WG) {
        let j = at(c, i);
        y[j] = Out((f32(x[j]) - mu) * g + b);
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
@group(0) @binding(1) var<storage, read_write> y_eval: array<Out>;
@group(0) @binding(2) var<storage, read> x_eval: array<Operand>;
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
    for (var i = gid.x; i < total; i += grid_step(nwg)) {
        let c = (i / p.pixels) % p.channels;
        let g = gamma_eval[c] * inverseSqrt(var_eval[c] + p.eps);
        y_eval[i] = Out((f32(x_eval[i]) - mean_eval[c]) * g + beta_eval[c]);
    }
}

// ---- training backward, with x̂ = (x − mean)·rstd and N = batch·pixels:
// dx (+)= gamma·rstd·(dy − Σdy/N − x̂·Σ(dy·x̂)/N), dgamma (+)= Σ dy·x̂, dbeta (+)= Σ dy ----
// dx, dy, xb: [batch, channels, pixels]; the rest: [channels]
@group(0) @binding(1) var<storage, read_write> dx: array<Out>;
@group(0) @binding(2) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<Operand>;
@group(0) @binding(5) var<storage, read> xb: array<Operand>;
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
        s_dy += f32(dy[j]);
        s_dyx += f32(dy[j]) * (f32(xb[j]) - mu) * r;
    }
    let sum_dy = workgroup_sum(lid.x, s_dy);
    let sum_dyx = workgroup_sum(lid.x, s_dyx);
    let inv_n = 1.0 / f32(count);
    let g = gamma_b[c] * r;
    for (var i = lid.x; i < count; i += WG) {
        let j = at(c, i);
        let xhat = (f32(xb[j]) - mu) * r;
        var v = g * (f32(dy[j]) - sum_dy * inv_n - xhat * sum_dyx * inv_n);
        if (accumulates(p.accumulate, DX)) {
            v += f32(dx[j]);
        }
        dx[j] = Out(v);
    }
    if (lid.x == 0u) {
        dgamma[c] = select(sum_dyx, dgamma[c] + sum_dyx, accumulates(p.accumulate, DGAMMA));
        dbeta[c] = select(sum_dy, dbeta[c] + sum_dy, accumulates(p.accumulate, DBETA));
    }
}

// ---- split training forward: (1) each block's mean and sum of squared deviations,
// (2) per channel, the blocks merged (Chan et al.) into mean, rstd and the running
// statistics, (3) y = (x − mean)·rstd·gamma + beta elementwise ----

// Elements of block b (of one channel).
fn block_range(b: u32) -> vec2<u32> {
    let count = p.batch * p.pixels;
    let start = b * p.block_len;
    return vec2<u32>(start, min(count, start + p.block_len));
}

// partial: [channels, blocks, 2] (mean, M2) forward; (Σdy, Σdy·x̂) backward
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read> x_split: array<Operand>;

@compute @workgroup_size(WG)
fn batchnorm_partial_stats(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let b = wg.x;
    let c = wg.y;
    let r = block_range(b);
    var s = 0.0;
    for (var i = r.x + lid.x; i < r.y; i += WG) {
        s += f32(x_split[at(c, i)]);
    }
    let mu = workgroup_sum(lid.x, s) / f32(r.y - r.x);
    var v = 0.0;
    for (var i = r.x + lid.x; i < r.y; i += WG) {
        let d = f32(x_split[at(c, i)]) - mu;
        v += d * d;
    }
    let m2 = workgroup_sum(lid.x, v);
    if (lid.x == 0u) {
        partial[(c * p.blocks + b) * 2u] = mu;
        partial[(c * p.blocks + b) * 2u + 1u] = m2;
    }
}

// mean_s, rstd_s, running_*_s: [channels]; partial_in: [channels, blocks, 2]
@group(0) @binding(1) var<storage, read_write> mean_s: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstd_s: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_mean_s: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_var_s: array<f32>;
@group(0) @binding(5) var<storage, read> partial_in: array<f32>;

@compute @workgroup_size(64)
fn batchnorm_merge_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.channels) {
        return;
    }
    var n = 0.0;
    var mu = 0.0;
    var m2 = 0.0;
    for (var b = 0u; b < p.blocks; b++) {
        let r = block_range(b);
        let nb = f32(r.y - r.x);
        let mb = partial_in[(c * p.blocks + b) * 2u];
        let total = n + nb;
        let delta = mb - mu;
        mu += delta * nb / total;
        m2 += partial_in[(c * p.blocks + b) * 2u + 1u] + delta * delta * n * nb / total;
        n = total;
    }
    mean_s[c] = mu;
    rstd_s[c] = inverseSqrt(m2 / n + p.eps);
    let unbiased = m2 / max(n - 1.0, 1.0);
    running_mean_s[c] = (1.0 - p.momentum) * running_mean_s[c] + p.momentum * mu;
    running_var_s[c] = (1.0 - p.momentum) * running_var_s[c] + p.momentum * unbiased;
}

// y_a, x_a: [batch, channels, pixels]; mean_a, rstd_a, gamma_a, beta_a: [channels]
@group(0) @binding(1) var<storage, read_write> y_a: array<Out>;
@group(0) @binding(2) var<storage, read> x_a: array<Operand>;
@group(0) @binding(3) var<storage, read> mean_a: array<f32>;
@group(0) @binding(4) var<storage, read> rstd_a: array<f32>;
@group(0) @binding(5) var<storage, read> gamma_a: array<f32>;
@group(0) @binding(6) var<storage, read> beta_a: array<f32>;

@compute @workgroup_size(256)
fn batchnorm_apply(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let total = p.batch * p.channels * p.pixels;
    for (var i = gid.x; i < total; i += grid_step(nwg)) {
        let c = (i / p.pixels) % p.channels;
        y_a[i] = Out((f32(x_a[i]) - mean_a[c]) * rstd_a[c] * gamma_a[c] + beta_a[c]);
    }
}

// ---- split backward: (1) each block's Σdy and Σdy·x̂, (2) per channel, the sums in block
// order (dgamma, dbeta (+)= them), (3) dx elementwise ----

// partial: as above; dy_p, x_p: [batch, channels, pixels]; mean_p, rstd_p: [channels]
@group(0) @binding(2) var<storage, read> dy_p: array<Operand>;
@group(0) @binding(3) var<storage, read> x_p: array<Operand>;
@group(0) @binding(4) var<storage, read> mean_p: array<f32>;
@group(0) @binding(5) var<storage, read> rstd_p: array<f32>;

@compute @workgroup_size(WG)
fn batchnorm_backward_partial(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let b = wg.x;
    let c = wg.y;
    let r = block_range(b);
    let mu = mean_p[c];
    let rs = rstd_p[c];
    var s_dy = 0.0;
    var s_dyx = 0.0;
    for (var i = r.x + lid.x; i < r.y; i += WG) {
        let j = at(c, i);
        s_dy += f32(dy_p[j]);
        s_dyx += f32(dy_p[j]) * (f32(x_p[j]) - mu) * rs;
    }
    let sum_dy = workgroup_sum(lid.x, s_dy);
    let sum_dyx = workgroup_sum(lid.x, s_dyx);
    if (lid.x == 0u) {
        partial[(c * p.blocks + b) * 2u] = sum_dy;
        partial[(c * p.blocks + b) * 2u + 1u] = sum_dyx;
    }
}

// dgamma_f, dbeta_f: [channels]; partial_f: as above, its first two entries per channel
// overwritten with the channel's (Σdy, Σdy·x̂)
@group(0) @binding(1) var<storage, read_write> dgamma_f: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbeta_f: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial_f: array<f32>;

@compute @workgroup_size(64)
fn batchnorm_backward_sums(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.channels) {
        return;
    }
    var s_dy = 0.0;
    var s_dyx = 0.0;
    for (var b = 0u; b < p.blocks; b++) {
        s_dy += partial_f[(c * p.blocks + b) * 2u];
        s_dyx += partial_f[(c * p.blocks + b) * 2u + 1u];
    }
    partial_f[c * p.blocks * 2u] = s_dy;
    partial_f[c * p.blocks * 2u + 1u] = s_dyx;
    dgamma_f[c] = select(s_dyx, dgamma_f[c] + s_dyx, accumulates(p.accumulate, DGAMMA));
    dbeta_f[c] = select(s_dy, dbeta_f[c] + s_dy, accumulates(p.accumulate, DBETA));
}

// dx_d, dy_d, x_d: [batch, channels, pixels]; mean_d, rstd_d, gamma_d: [channels];
// sums_d: the partial buffer after `batchnorm_backward_sums`
@group(0) @binding(1) var<storage, read_write> dx_d: array<Out>;
@group(0) @binding(2) var<storage, read> dy_d: array<Operand>;
@group(0) @binding(3) var<storage, read> x_d: array<Operand>;
@group(0) @binding(4) var<storage, read> mean_d: array<f32>;
@group(0) @binding(5) var<storage, read> rstd_d: array<f32>;
@group(0) @binding(6) var<storage, read> gamma_d: array<f32>;
@group(0) @binding(7) var<storage, read> sums_d: array<f32>;

@compute @workgroup_size(256)
fn batchnorm_backward_apply(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let total = p.batch * p.channels * p.pixels;
    let inv_n = 1.0 / f32(p.batch * p.pixels);
    for (var i = gid.x; i < total; i += grid_step(nwg)) {
        let c = (i / p.pixels) % p.channels;
        let rs = rstd_d[c];
        let xhat = (f32(x_d[i]) - mean_d[c]) * rs;
        let sum_dy = sums_d[c * p.blocks * 2u];
        let sum_dyx = sums_d[c * p.blocks * 2u + 1u];
        var v = gamma_d[c] * rs * (f32(dy_d[i]) - sum_dy * inv_n - xhat * sum_dyx * inv_n);
        if (accumulates(p.accumulate, DX)) {
            v += f32(dx_d[i]);
        }
        dx_d[i] = Out(v);
    }
}
