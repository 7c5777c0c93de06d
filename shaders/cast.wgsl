// Element type conversions between f32 and f16 buffers (mixed precision: the f16 copies of
// f32 master weights, f16 activations read back as f32). f32 -> f16 rounds to nearest even
// as the device converts; a value beyond f16's range (65504) becomes ±inf, which is what
// dynamic loss scaling looks for. Compiled before grid.wgsl (directives come first).
enable f16;

struct Params {
    n: u32,      // elements
    scale: f32,  // out = scale · x
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// out16: [n] (to_f16's output); out32: [n] (to_f32's output), the same binding
@group(0) @binding(1) var<storage, read_write> out16: array<f16>;
@group(0) @binding(1) var<storage, read_write> out32: array<f32>;
// x32: [n] (to_f16's input); x16: [n] (to_f32's input), the same binding
@group(0) @binding(2) var<storage, read> x32: array<f32>;
@group(0) @binding(2) var<storage, read> x16: array<f16>;

// out16 = f16(scale · x32), overflow to ±inf (an f32 past f16's range is clamped to one
// step beyond it first, so the device's conversion, whatever it does out of range, rounds
// it to infinity)
@compute @workgroup_size(GRID_WG)
fn to_f16(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        out16[i] = to_half(p.scale * x32[i]);
    }
}

// out32 = scale · f32(x16)
@compute @workgroup_size(GRID_WG)
fn to_f32(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        out32[i] = p.scale * f32(x16[i]);
    }
}

// f16 nearest to v; ±inf beyond f16's range, NaN stays NaN. WGSL leaves an out-of-range
// conversion's result to the implementation, so the infinities are made here.
fn to_half(v: f32) -> f16 {
    // 65520 is halfway between f16's largest finite value (65504) and the next power of
    // two: from there on, round-to-nearest-even gives infinity.
    if (abs(v) >= 65520.0) {
        // f32's infinities from their bits: an infinity converts to f16 exactly.
        return f16(bitcast<f32>(select(0xff800000u, 0x7f800000u, v > 0.0)));
    }
    return f16(v);
}
