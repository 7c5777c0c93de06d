// Sums: per row (one workgroup a row) and over a whole tensor (two stages: per-workgroup
// partials, then one workgroup). `square` sums x² instead of x (for norms).

struct Params {
    rows: u32,        // rows (per-row sums)
    cols: u32,        // columns (per-row sums)
    n: u32,           // elements (whole-tensor sums)
    square: u32,      // 1: sum x², 0: sum x
    groups: u32,      // workgroups of the first whole-tensor stage
    accumulate: u32,  // 1: out += sum, 0: out = sum
    _pad0: u32,
    _pad1: u32,
}

// Invocations per workgroup, a power of two; Rust sets it per device (see
// `Gpu::row_workgroup_size`).
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
// out: [rows] for sum_rows, [groups] for sum_partial, [1] for sum_finish
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// x: [rows, cols] or [n]; for sum_finish the partials [groups]
@group(0) @binding(2) var<storage, read> x: array<f32>;

var<workgroup> sums: array<f32, WG>;

fn term(v: f32) -> f32 {
    return select(v, v * v, p.square == 1u);
}

fn workgroup_sum(l: u32) {
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (l < s) {
            sums[l] += sums[l + s];
        }
    }
    workgroupBarrier();
}

fn put(i: u32, v: f32) {
    if (p.accumulate == 1u) {
        out[i] += v;
    } else {
        out[i] = v;
    }
}

@compute @workgroup_size(WG)
fn sum_rows(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wg.y * nwg.x + wg.x;
    if (row >= p.rows) {
        return; // uniform per workgroup, so the barriers below stay uniform
    }
    var acc = 0.0;
    for (var c = lid.x; c < p.cols; c += WG) {
        acc += term(x[row * p.cols + c]);
    }
    sums[lid.x] = acc;
    workgroup_sum(lid.x);
    if (lid.x == 0u) {
        put(row, sums[0]);
    }
}

@compute @workgroup_size(WG)
fn sum_partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    var acc = 0.0;
    for (var i = wg.x * WG + lid.x; i < p.n; i += p.groups * WG) {
        acc += term(x[i]);
    }
    sums[lid.x] = acc;
    workgroup_sum(lid.x);
    if (lid.x == 0u) {
        out[wg.x] = sums[0];
    }
}

// x holds the partials here; they are already squared, so `square` is not applied again.
@compute @workgroup_size(WG)
fn sum_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < p.groups; i += WG) {
        acc += x[i];
    }
    sums[lid.x] = acc;
    workgroup_sum(lid.x);
    if (lid.x == 0u) {
        put(0u, sums[0]);
    }
}
