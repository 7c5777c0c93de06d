// LayerNorm over each row with gain and bias: y = (x − mean)·rstd·gain + bias, saving mean
// and rstd for the backward pass. Backward to the input (one workgroup a row) and to gain
// and bias (column sums over blocks of rows, then over blocks: deterministic). Built after an
// element prelude: x, y, dy and dx are `Operand`s and `Out`s (f32, or f16 activations); gain,
// bias, their gradients, mean, rstd and every sum are f32.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    accumulate: u32,  // backward: bits DX, DGAIN, DBIAS set where that gradient is added to
    blocks: u32,      // backward to gain and bias: ceil(rows / ROW_BLOCK)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const DX: u32 = 1u;
const DGAIN: u32 = 2u;
const DBIAS: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;

// ---- forward ----
// y, x: [rows, cols]; mean, rstd: [rows]; gain, bias: [cols]
@group(0) @binding(1) var<storage, read_write> y: array<Out>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<Operand>;
@group(0) @binding(5) var<storage, read> gain: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_forward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let inv_n = 1.0 / f32(p.cols);
    var s = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        s += f32(x[base + c]);
    }
    let mu = workgroup_sum(lid.x, s) * inv_n;
    var v = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        let d = f32(x[base + c]) - mu;
        v += d * d;
    }
    let r = inverseSqrt(workgroup_sum(lid.x, v) * inv_n + p.eps);
    for (var c = lid.x; c < p.cols; c += WG) {
        y[base + c] = Out((f32(x[base + c]) - mu) * r * gain[c] + bias[c]);
    }
    if (lid.x == 0u) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

// ---- backward to the input ----
// dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)), g = dy ⊙ gain
// dx, dy, xb: [rows, cols]; mean_b, rstd_b: [rows]; gain_b: [cols]
@group(0) @binding(1) var<storage, read_write> dx: array<Out>;
@group(0) @binding(2) var<storage, read> dy: array<Operand>;
@group(0) @binding(3) var<storage, read> xb: array<Operand>;
@group(0) @binding(4) var<storage, read> mean_b: array<f32>;
@group(0) @binding(5) var<storage, read> rstd_b: array<f32>;
@group(0) @binding(6) var<storage, read> gain_b: array<f32>;

@compute @workgroup_size(WG)
fn layernorm_backward_input(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let mu = mean_b[row];
    let r = rstd_b[row];
    var sg = 0.0;
    var sgx = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        let g = f32(dy[base + c]) * gain_b[c];
        sg += g;
        sgx += g * (f32(xb[base + c]) - mu) * r;
    }
    let inv_n = 1.0 / f32(p.cols);
    let mean_g = workgroup_sum(lid.x, sg) * inv_n;
    let mean_gx = workgroup_sum(lid.x, sgx) * inv_n;
    for (var c = lid.x; c < p.cols; c += WG) {
        let xhat = (f32(xb[base + c]) - mu) * r;
        let v = r * (f32(dy[base + c]) * gain_b[c] - mean_g - xhat * mean_gx);
        if (accumulates(p.accumulate, DX)) {
            dx[base + c] = Out(f32(dx[base + c]) + v);
        } else {
            dx[base + c] = Out(v);
        }
    }
}

// ---- backward to gain and bias, in two stages so a
// few hundred columns still spread over many invocations: each (column, block of
// ROW_BLOCK rows) sums into a partial, then one invocation a column adds the partials in
// block order (deterministic). ----

const ROW_BLOCK: u32 = 64u;

// partial: [2, blocks, cols] (gain sums, then bias sums); dy2, x2: [rows, cols];
// mean2, rstd2: [rows]
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read> dy2: array<Operand>;
@group(0) @binding(3) var<storage, read> x2: array<Operand>;
@group(0) @binding(4) var<storage, read> mean2: array<f32>;
@group(0) @binding(5) var<storage, read> rstd2: array<f32>;

@compute @workgroup_size(64)
fn layernorm_backward_params_partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let block = gid.y;
    if (c >= p.cols) {
        return;
    }
    var sg = 0.0;
    var sb = 0.0;
    let end = min((block + 1u) * ROW_BLOCK, p.rows);
    for (var row = block * ROW_BLOCK; row < end; row++) {
        let i = row * p.cols + c;
        let g = f32(dy2[i]);
        sg += g * (f32(x2[i]) - mean2[row]) * rstd2[row];
        sb += g;
    }
    partial[block * p.cols + c] = sg;
    partial[(p.blocks + block) * p.cols + c] = sb;
}

// dgain, dbias: [cols]; partial_in: [2, blocks, cols]
@group(0) @binding(1) var<storage, read_write> dgain: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(3) var<storage, read> partial_in: array<f32>;

@compute @workgroup_size(64)
fn layernorm_backward_params_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.cols) {
        return;
    }
    var sg = 0.0;
    var sb = 0.0;
    for (var block = 0u; block < p.blocks; block++) {
        sg += partial_in[block * p.cols + c];
        sb += partial_in[(p.blocks + block) * p.cols + c];
    }
    dgain[c] = select(sg, dgain[c] + sg, accumulates(p.accumulate, DGAIN));
    dbias[c] = select(sb, dbias[c] + sb, accumulates(p.accumulate, DBIAS));
}
