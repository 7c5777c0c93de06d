// Cross-entropy over rows of logits with integer targets. One kernel computes each row's
// loss (log-sum-exp minus the target logit) and the gradient of the mean loss,
// dlogits = (softmax − onehot) · grad_scale; a one-workgroup pass then averages the rows.
// A target >= cols marks a row to ignore: zero loss, zero gradient. Built after an element
// prelude: logits and dlogits are `Operand`s and `Out`s (f32, or f16 activations); the loss,
// the row losses and every sum are f32. With `loss_scaled` the gradient is also multiplied
// by the loss scale (mixed precision: `scaler` is the loss scaler's state, its scale first)
// before it is rounded to the logits' type; the loss itself is never scaled.

struct Params {
    rows: u32,
    cols: u32,
    grad_scale: f32,  // usually 1 / rows: the gradient of the mean
    loss_scaled: u32, // 1: dlogits also times scaler[0]
}

@group(0) @binding(0) var<uniform> p: Params;

// dlogits, logits: [rows, cols]; row_loss: [rows]; targets: [rows]
@group(0) @binding(1) var<storage, read_write> dlogits: array<Out>;
@group(0) @binding(2) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<Operand>;

fn logit(i: u32) -> f32 {
    return f32(logits[i]);
}
@group(0) @binding(4) var<storage, read> targets: array<u32>;
// scaler: [4], the loss scaler's state (bound but unread without loss_scaled)
@group(0) @binding(5) var<storage, read> scaler: array<f32>;

@compute @workgroup_size(WG)
fn cross_entropy_rows(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let target_col = targets[row];
    let valid = target_col < p.cols;
    var m = -0x1.fffffep+127f;
    for (var c = lid.x; c < p.cols; c += WG) {
        m = max(m, logit(base + c));
    }
    m = workgroup_reduce(lid.x, m, true);
    var s = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        s += exp(logit(base + c) - m);
    }
    s = workgroup_reduce(lid.x, s, false);
    let inv = 1.0 / s;
    let grad_scale = p.grad_scale * select(1.0, scaler[0], p.loss_scaled == 1u);
    for (var c = lid.x; c < p.cols; c += WG) {
        var g = exp(logit(base + c) - m) * inv;
        if (c == target_col) {
            g -= 1.0;
        }
        dlogits[base + c] = Out(select(0.0, g * grad_scale, valid));
    }
    if (lid.x == 0u) {
        var loss = 0.0;
        if (valid) {
            loss = m + log(s) - logit(base + target_col);
        }
        row_loss[row] = loss;
    }
}

// loss: [1] = mean of row_loss_in [rows]
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read> row_loss_in: array<f32>;

@compute @workgroup_size(WG)
fn cross_entropy_mean(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var r = lid.x; r < p.rows; r += WG) {
        acc += row_loss_in[r];
    }
    acc = workgroup_reduce(lid.x, acc, false);
    if (lid.x == 0u) {
        loss[0] = acc / f32(p.rows);
    }
}
