// Elementwise ops with their backward rules: add, scale, relu, gelu (tanh form), fill, copy.
// Every output is written (out = v) or accumulated (out += v) as `accumulate` says.

struct Params {
    n: u32,           // elements
    accumulate: u32,  // 1: out += v, 0: out = v
    scalar: f32,      // the factor of scale, the value of fill
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// out, a, b: [n]
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

// Every entry point walks the elements in a grid-stride loop over a 1D grid of at most
// a few thousand workgroups (fewer, longer-lived invocations: much faster on software
// Vulkan, no slower on GPUs).

fn put(i: u32, v: f32) {
    if (p.accumulate == 1u) {
        out[i] += v;
    } else {
        out[i] = v;
    }
}

// out = a + b (its backward hands dy to both inputs: `copy` or an accumulating `scale`)
@compute @workgroup_size(GRID_WG)
fn add(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, a[i] + b[i]); }
}

// out = scalar · a (backward: scale dy by the same scalar)
@compute @workgroup_size(GRID_WG)
fn scale(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, p.scalar * a[i]); }
}

// out = max(a, 0)
@compute @workgroup_size(GRID_WG)
fn relu(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, max(a[i], 0.0)); }
}

// dx = dy · [x > 0]; a = dy, b = x
@compute @workgroup_size(GRID_WG)
fn relu_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, select(0.0, a[i], b[i] > 0.0)); }
}

// out = gelu(a) (shaders/activation.wgsl)
@compute @workgroup_size(GRID_WG)
fn gelu(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, gelu_value(a[i])); }
}

// dx = dy · gelu'(x); a = dy, b = x
@compute @workgroup_size(GRID_WG)
fn gelu_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, a[i] * gelu_slope(b[i])); }
}

// out = scalar (accumulate is ignored)
@compute @workgroup_size(GRID_WG)
fn fill(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { out[i] = p.scalar; }
}

// out = a (accumulate is ignored): the plain copy that memory-bound kernels are measured against
@compute @workgroup_size(GRID_WG)
fn copy(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { out[i] = a[i]; }
}

// The vec4 copy for n a multiple of 4: the ceiling of memory-bound kernels (software
// Vulkan moves vec4s it does no arithmetic on much faster). out4, a4: [n / 4]
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> a4: array<vec4<f32>>;

@compute @workgroup_size(GRID_WG)
fn copy_vec4(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n / 4u; i += grid_step(nwg)) {
        out4[i] = a4[i];
    }
}
