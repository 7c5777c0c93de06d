// Moving attention heads between the row layout of a linear layer's output and the head
// layout of the attention kernels. Row layout: x[(b·T + t)·stride + offset + h·D + d]
// (stride ≥ H·D; offset picks q, k or v out of a fused [B·T, 3·H·D] projection). Head
// layout: y[((b·H + h)·T + t)·D + d]. Each is the other's backward.

struct Params {
    batch: u32,
    t: u32,
    heads: u32,
    d: u32,
    stride: u32,      // elements per row in the row layout
    offset: u32,      // first column in the row layout
    accumulate: u32,  // heads_to_rows: 1 out += ..., 0 out = ...
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

// The row-layout index of head-layout element i.
fn row_index(i: u32) -> u32 {
    let d = i % p.d;
    let t = (i / p.d) % p.t;
    let bh = i / (p.d * p.t);
    let h = bh % p.heads;
    let b = bh / p.heads;
    return (b * p.t + t) * p.stride + p.offset + h * p.d + d;
}

// out (head layout) = x (row layout)
@compute @workgroup_size(256)
fn rows_to_heads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.batch * p.heads * p.t * p.d; i += grid_step(nwg)) {
        out[i] = x[row_index(i)];
    }
}

// out (row layout) (+)= x (head layout); columns outside the heads are left alone
@compute @workgroup_size(256)
fn heads_to_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.batch * p.heads * p.t * p.d; i += grid_step(nwg)) {
        let r = row_index(i);
        if (p.accumulate == 1u) {
            out[r] += x[i];
        } else {
            out[r] = x[i];
        }
    }
}
