// Softmax over each row (max-subtracted, so stable), one workgroup per row, and its
// backward: dx = y ⊙ (dy − Σ dy·y). Optionally of scale·x and causal: row r of a stack of
// [cols, cols] score matrices keeps columns 0 ..= r % cols, the rest get probability 0
// (the materialised attention path). Built after an element prelude: x, y, dy and dx are
// `Operand`s and `Out`s (f32, or f16 activations); the max, the sums and the arithmetic are f32.

struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,  // backward: 1 dx += ..., 0 dx = ...
    causal: u32,      // 1: mask columns past r % cols
    scale: f32,       // softmax(scale · x); the backward multiplies by it too
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Columns of `row` that take part: all, or 0 ..= row % cols when causal.
fn width(row: u32) -> u32 {
    return select(p.cols, row % p.cols + 1u, p.causal == 1u);
}

@group(0) @binding(0) var<uniform> p: Params;
// forward: out = y [rows, cols], in1 = x [rows, cols]
// backward: out = dx, in1 = y, in2 = dy (all [rows, cols])
@group(0) @binding(1) var<storage, read_write> out: array<Out>;
@group(0) @binding(2) var<storage, read> in1: array<Operand>;
@group(0) @binding(3) var<storage, read> in2: array<Operand>;

fn ld1(i: u32) -> f32 {
    return f32(in1[i]);
}

fn ld2(i: u32) -> f32 {
    return f32(in2[i]);
}

@compute @workgroup_size(WG)
fn softmax_forward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let w = width(row);
    var m = -0x1.fffffep+127f;
    for (var c = lid.x; c < w; c += WG) {
        m = max(m, p.scale * ld1(base + c));
    }
    m = workgroup_max(lid.x, m);
    var s = 0.0;
    for (var c = lid.x; c < w; c += WG) {
        s += exp(p.scale * ld1(base + c) - m);
    }
    s = workgroup_sum(lid.x, s);
    let inv = 1.0 / s;
    for (var c = lid.x; c < p.cols; c += WG) {
        out[base + c] = Out(select(0.0, exp(p.scale * ld1(base + c) - m) * inv, c < w));
    }
}

@compute @workgroup_size(WG)
fn softmax_backward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var d = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        d += ld1(base + c) * ld2(base + c);
    }
    d = workgroup_sum(lid.x, d);
    for (var c = lid.x; c < p.cols; c += WG) {
        let v = p.scale * ld1(base + c) * (ld2(base + c) - d);
        if (p.accumulate == 1u) {
            out[base + c] = Out(f32(out[base + c]) + v);
        } else {
            out[base + c] = Out(v);
        }
    }
}
