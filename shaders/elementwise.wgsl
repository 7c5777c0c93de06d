// Elementwise ops with their backward rules: add, scale, relu, gelu (tanh form), fill, copy.
// Every output is written (out = v) or accumulated (out += v) as `accumulate` says. Built
// after an element prelude: the buffers hold `Operand`s and `Out`s (f32, or f16 for f16
// activations); the arithmetic is f32 (`ld_a`, `ld_b` read into f32, `put` rounds once).

struct Params {
    n: u32,           // elements
    accumulate: u32,  // 1: out += v, 0: out = v
    scalar: f32,      // the factor of scale, the value of fill
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// out, a, b: [n]
@group(0) @binding(1) var<storage, read_write> out: array<Out>;
@group(0) @binding(2) var<storage, read> a: array<Operand>;
@group(0) @binding(3) var<storage, read> b: array<Operand>;

fn ld_a(i: u32) -> f32 {
    return f32(a[i]);
}

fn ld_b(i: u32) -> f32 {
    return f32(b[i]);
}

// Every entry point walks the elements in a grid-stride loop over a 1D grid of at most
// a few thousand workgroups (fewer, longer-lived invocations: much faster on software
// Vulkan, no slower on GPUs).

fn put(i: u32, v: f32) {
    if (p.accumulate == 1u) {
        out[i] = Out(f32(out[i]) + v);
    } else {
        out[i] = Out(v);
    }
}

// out = a + b (its backward hands dy to both inputs: `copy` or an accumulating `scale`)
@compute @workgroup_size(GRID_WG)
fn add(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, ld_a(i) + ld_b(i)); }
}

// out = scalar · a (backward: scale dy by the same scalar)
@compute @workgroup_size(GRID_WG)
fn scale(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, p.scalar * ld_a(i)); }
}

// out = max(a, 0)
@compute @workgroup_size(GRID_WG)
fn relu(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, max(ld_a(i), 0.0)); }
}

// dx = dy · [x > 0]; a = dy, b = x
@compute @workgroup_size(GRID_WG)
fn relu_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, select(0.0, ld_a(i), ld_b(i) > 0.0)); }
}

// out = gelu(a) (shaders/activation.wgsl)
@compute @workgroup_size(GRID_WG)
fn gelu(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, gelu_value(ld_a(i))); }
}

// dx = dy · gelu'(x); a = dy, b = x
@compute @workgroup_size(GRID_WG)
fn gelu_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { put(i, ld_a(i) * gelu_slope(ld_b(i))); }
}

// out = scalar (accumulate is ignored)
@compute @workgroup_size(GRID_WG)
fn fill(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { out[i] = Out(p.scalar); }
}

// out = a (accumulate is ignored): the plain copy that memory-bound kernels are measured against
@compute @workgroup_size(GRID_WG)
fn copy(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) { out[i] = Out(a[i]); }
}

// The vec4 copy for n a multiple of 4: the ceiling of memory-bound kernels (software
// Vulkan moves vec4s it does no arithmetic on much faster). out4, a4: [n / 4]
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<Out>>;
@group(0) @binding(2) var<storage, read> a4: array<vec4<Operand>>;

@compute @workgroup_size(GRID_WG)
fn copy_vec4(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n / 4u; i += grid_step(nwg)) {
        out4[i] = vec4<Out>(a4[i]);
    }
}
