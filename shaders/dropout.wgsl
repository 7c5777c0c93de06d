// Dropout with a counter-based random stream: element i is kept when
// pcg(pcg(i) ^ pcg(site ^ step)) ≥ threshold (threshold = p·2³²), and kept elements are
// scaled by 1/(1 − p). `site` (which dropout of the model, and the run's seed) is in the
// uniform; `step` in a one-element buffer written once a step, so the dispatches keep their
// uniforms and bind groups from step to step. Nothing is stored: the backward pass draws
// the same mask again, so a run with dropout stays reproducible and a resumed run
// bit-identical. Included after an element prelude (x and out are `Operand`s and `Out`s:
// f32, or f16 activations; the product is taken in f32) and grid.wgsl.

struct Params {
    n: u32,           // elements
    threshold: u32,   // dropped when the draw is below it: p·2³²
    site: u32,        // the site's stream: a function of the run's seed and the site
    accumulate: u32,  // backward: 1 dx += ..., 0 dx = ...
    scale: f32,       // 1 / (1 − p)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// out, x: [n] (forward: y and x; backward: dx and dy)
@group(0) @binding(1) var<storage, read_write> out: array<Out>;
@group(0) @binding(2) var<storage, read> x: array<Operand>;
// step_key: [1], the step's stream
@group(0) @binding(3) var<storage, read> step_key: array<u32>;

// The PCG hash (O'Neill's permuted congruential output, one round).
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// 1/(1 − p) where element i is kept, 0 where it is dropped.
fn factor(i: u32, key: u32) -> f32 {
    return select(0.0, p.scale, pcg(pcg(i) ^ key) >= p.threshold);
}

@compute @workgroup_size(GRID_WG)
fn dropout_forward(@builtin(local_invocation_id) lid: vec3<u32>,
                   @builtin(workgroup_id) wg: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let key = pcg(p.site ^ step_key[0]);
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        out[i] = Out(f32(x[i]) * factor(i, key));
    }
}

@compute @workgroup_size(GRID_WG)
fn dropout_backward(@builtin(local_invocation_id) lid: vec3<u32>,
                    @builtin(workgroup_id) wg: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let key = pcg(p.site ^ step_key[0]);
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        var g = f32(x[i]) * factor(i, key);
        if (p.accumulate == 1u) {
            g += f32(out[i]);
        }
        out[i] = Out(g);
    }
}
