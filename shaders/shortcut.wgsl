// The parameter-free shortcut of a downsampling ResNet block ("option A" of He et al.):
// the input subsampled by the stride and padded with zero channels, and its backward.
// Built after an element prelude: x, y, dy and dx are `Operand`s and `Out`s (f32, or f16).

struct Params {
    batch: u32,
    c_in: u32,
    c_out: u32,      // ≥ c_in; channels c_in.. are zero
    stride: u32,
    h: u32,          // input height and width
    w: u32,
    oh: u32,         // ⌈h / stride⌉, ⌈w / stride⌉
    ow: u32,
    accumulate: u32, // backward: 1 dx += ..., 0 dx = ...
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// y: [batch, c_out, oh, ow]; x: [batch, c_in, h, w]
@group(0) @binding(1) var<storage, read_write> y: array<Out>;
@group(0) @binding(2) var<storage, read> x: array<Operand>;

@compute @workgroup_size(256)
fn shortcut_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let total = p.batch * p.c_out * p.oh * p.ow;
    for (var i = gid.x; i < total; i += grid_step(nwg)) {
        let ox = i % p.ow;
        let oy = (i / p.ow) % p.oh;
        let c = (i / (p.ow * p.oh)) % p.c_out;
        let n = i / (p.ow * p.oh * p.c_out);
        var v = 0.0;
        if (c < p.c_in) {
            v = f32(x[((n * p.c_in + c) * p.h + oy * p.stride) * p.w + ox * p.stride]);
        }
        y[i] = Out(v);
    }
}

// dx: [batch, c_in, h, w]; dy: [batch, c_out, oh, ow]
@group(0) @binding(1) var<storage, read_write> dx: array<Out>;
@group(0) @binding(2) var<storage, read> dy: array<Operand>;

@compute @workgroup_size(256)
fn shortcut_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let total = p.batch * p.c_in * p.h * p.w;
    for (var i = gid.x; i < total; i += grid_step(nwg)) {
        let ix = i % p.w;
        let iy = (i / p.w) % p.h;
        let c = (i / (p.w * p.h)) % p.c_in;
        let n = i / (p.w * p.h * p.c_in);
        var v = 0.0;
        if (iy % p.stride == 0u && ix % p.stride == 0u) {
            v = f32(dy[((n * p.c_out + c) * p.oh + iy / p.stride) * p.ow + ix / p.stride]);
        }
        if (p.accumulate == 1u) {
            v += f32(dx[i]);
        }
        dx[i] = Out(v);
    }
}
