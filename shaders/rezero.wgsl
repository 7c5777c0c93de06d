// The fused ReZero residual: y = x + α·f (grid-stride loops; vec4 when n % 4 == 0), with
// α in a buffer so the optimizer updates it on the GPU. Backward from dy: dx (+)= dy,
// df (+)= α·dy, dα (+)= Σ dy·f, the sum in two stages (per-workgroup partials, then one
// workgroup adds them up). Included after workgroup.wgsl (WG stays 256 here) and grid.wgsl,
// themselves after an element prelude: x, f, y, dy, dx and df are `Operand`s and `Out`s (f32,
// or f16 activations); α, dα and the partial sums are f32, and so is the arithmetic.

struct Params {
    n: u32,            // elements of x, f, y
    accumulate: u32,   // backward: bits DX, DF, DALPHA set where that gradient is added to
    groups: u32,       // workgroups of the first backward stage (= partial sums)
    alpha_index: u32,  // which α of the alpha buffer (one buffer can hold every block's α)
}

const DX: u32 = 1u;
const DF: u32 = 2u;
const DALPHA: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;

// ---- forward ----
// y, x, f: [n]; alpha: [> alpha_index]
@group(0) @binding(1) var<storage, read_write> y: array<Out>;
@group(0) @binding(2) var<storage, read> x: array<Operand>;
@group(0) @binding(3) var<storage, read> f: array<Operand>;
@group(0) @binding(4) var<storage, read> alpha: array<f32>;

@compute @workgroup_size(GRID_WG)
fn rezero_forward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let a = alpha[p.alpha_index];
    for (var i = grid_first(wg, lid); i < p.n; i += grid_step(nwg)) {
        y[i] = Out(fma(a, f32(f[i]), f32(x[i])));
    }
}

// The same for n a multiple of 4 (Rust picks it). y4, x4, f4: [n / 4]
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<Out>>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<Operand>>;
@group(0) @binding(3) var<storage, read> f4: array<vec4<Operand>>;

@compute @workgroup_size(GRID_WG)
fn rezero_forward_vec4(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let a = alpha[p.alpha_index];
    for (var i = grid_first(wg, lid); i < p.n / 4u; i += grid_step(nwg)) {
        // fma: twice as fast as a * f + x on software Vulkan, the same on GPUs.
        y4[i] = vec4<Out>(fma(vec4<f32>(a), vec4<f32>(f4[i]), vec4<f32>(x4[i])));
    }
}

// ---- backward, stage 1: dx, df and one partial Σ dy·f per workgroup ----
// dx, df, dy, f2: [n]; partial: [groups]; alpha2: [> alpha_index]
@group(0) @binding(1) var<storage, read_write> dx: array<Out>;
@group(0) @binding(2) var<storage, read_write> df: array<Out>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<Operand>;
@group(0) @binding(5) var<storage, read> f2: array<Operand>;
@group(0) @binding(6) var<storage, read> alpha2: array<f32>;

@compute @workgroup_size(WG)
fn rezero_backward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let a = alpha2[p.alpha_index];
    let add_dx = accumulates(p.accumulate, DX);
    let add_df = accumulates(p.accumulate, DF);
    var acc = 0.0;
    for (var i = wg.x * WG + lid.x; i < p.n; i += p.groups * WG) {
        let g = f32(dy[i]);
        if (add_dx) {
            dx[i] = Out(f32(dx[i]) + g);
        } else {
            dx[i] = Out(g);
        }
        if (add_df) {
            df[i] = Out(f32(df[i]) + a * g);
        } else {
            df[i] = Out(a * g);
        }
        acc = fma(g, f32(f2[i]), acc);
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        partial[wg.x] = total;
    }
}

// ---- backward, stage 2: dα (+)= Σ partial ----
// dalpha: [> alpha_index]; partial_in: [groups]
@group(0) @binding(1) var<storage, read_write> dalpha: array<f32>;
@group(0) @binding(2) var<storage, read> partial_in: array<f32>;

@compute @workgroup_size(WG)
fn rezero_alpha_reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < p.groups; i += WG) {
        acc += partial_in[i];
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        let old = dalpha[p.alpha_index];
        dalpha[p.alpha_index] = select(total, old + total, accumulates(p.accumulate, DALPHA));
    }
}
