// Global average pooling of NCHW activations: one mean per (image, channel), and its
// backward (each pixel gets an equal share of the gradient). Built after an element
// prelude: x, y, dy and dx are `Operand`s and `Out`s (f32, or f16); the sums are f32.

struct Params {
    rows: u32,     // batch · channels
    pixels: u32,   // h · w
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// y: [rows]; x: [rows, pixels]
@group(0) @binding(1) var<storage, read_write> y: array<Out>;
@group(0) @binding(2) var<storage, read> x: array<Operand>;

@compute @workgroup_size(256)
fn global_avg_pool_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    for (var r = gid.x; r < p.rows; r += grid_step(nwg)) {
        var s = 0.0;
        for (var i = 0u; i < p.pixels; i++) {
            s += f32(x[r * p.pixels + i]);
        }
        y[r] = Out(s / f32(p.pixels));
    }
}

// dx: [rows, pixels]; dy: [rows]
@group(0) @binding(1) var<storage, read_write> dx: array<Out>;
@group(0) @binding(2) var<storage, read> dy: array<Operand>;

@compute @workgroup_size(256)
fn global_avg_pool_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let total = p.rows * p.pixels;
    for (var i = gid.x; i < total; i += grid_step(nwg)) {
        var v = f32(dy[i / p.pixels]) / f32(p.pixels);
        if (p.accumulate == 1u) {
            v += f32(dx[i]);
        }
        dx[i] = Out(v);
    }
}
