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

@group(0) @binding(0) var<uniform> p: Params;
// out: [rows] for sum_rows, [groups] for sum_partial, [1] for sum_finish
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// x: [rows, cols] or [n]; for sum_finish the partials [groups]
@group(0) @binding(2) var<storage, read> x: array<f32>;

fn term(v: f32) -> f32 {
    return select(v, v * v, p.square == 1u);
}

fn put(i: u32, v: f32) {
    out[i] = select(v, out[i] + v, accumulates(p.accumulate, 1u));
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
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        put(row, total);
    }
}

@compute @workgroup_size(WG)
fn sum_partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    var acc = 0.0;
    for (var i = wg.x * WG + lid.x; i < p.n; i += p.groups * WG) {
        acc += term(x[i]);
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        out[wg.x] = total;
    }
}

// x holds the partials here; they are already squared, so `square` is not applied again.
@compute @workgroup_size(WG)
fn sum_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < p.groups; i += WG) {
        acc += x[i];
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        put(0u, total);
    }
}
