// 2D convolution over NCHW images (cross-correlation, like every framework), any kernel
// size, stride and zero padding, as an implicit GEMM: the unfolded ("im2col") operand is
// gathered straight from the image into workgroup memory, never stored.
//
// One blocked GEMM kernel serves the three products, picked by the override MODE:
//   MODE 0, forward:          y[co, (n,oy,ox)]   = Σ_(ci,ky,kx)  w[co,(ci,ky,kx)] · x̃[(ci,ky,kx),(n,oy,ox)]
//   MODE 1, backward input:   dx[ci, (n,iy,ix)]  = Σ_(co,ky,kx)  w[co,(ci,ky,kx)] · dỹ[(co,ky,kx),(n,iy,ix)]
//   MODE 2, backward weight:  dw[co, (ci,ky,kx)] = Σ_(n,oy,ox)   dy[n,co,oy,ox] · x̃[(n,oy,ox),(ci,ky,kx)]
// where x̃ reads x at (oy·stride − pad + ky, ox·stride − pad + kx) and dỹ reads dy at the
// output pixel whose window puts tap (ky, kx) on input pixel (iy, ix) (zero when none
// does). MODE 1 is split by the input pixel's phase (iy mod stride, ix mod stride), one
// phase per z-workgroup: only the taps that reach an output pixel from that phase enter
// its reduction (1 in 4 of a 3x3 kernel's at stride 2 skipped). MODE 2 splits its long
// reduction over z-workgroups (k_split each) and writes partial sums;
// `conv2d_weight_finish` adds them up in a fixed order. Compiled after the tile prelude
// and conv2d_common.wgsl.

// ---- the blocked implicit-GEMM kernel ----
// Bindings 1-4 as conv2d_common.wgsl lists them (MODE 0 forward, 1 backward input,
// 2 backward weight); bindings 5 and 6 hold a and out again, viewed as vec4: with VEC4 a quad of the left
// operand is one vec4 load (MODE 0: c_in·kh·kw, MODE 2: oh·ow a multiple of 4), with
// VEC4_OUT four outputs are one vec4 store (MODE 0: oh·ow, MODE 1 at stride 1: h·w,
// MODE 2: c_in·kh·kw a multiple of 4); the launcher checks these.
@group(0) @binding(5) var<storage, read> a4v: array<vec4<Operand>>;
@group(0) @binding(6) var<storage, read_write> out4v: array<vec4<Out>>;

// One phase of the backward-to-input GEMM: input pixels (iy, ix) with iy ≡ ry, ix ≡ rx
// (mod stride), and the taps (ky, kx) that reach them: ky ≡ ky0, kx ≡ kx0 (mod stride).
struct Phase {
    ry: u32,
    rx: u32,
    ky0: u32,
    kx0: u32,
    taps_y: u32,    // taps of the phase per column of the kernel
    taps_x: u32,
    rows: u32,      // input rows of the phase: ⌈(h − ry) / stride⌉
    cols: u32,      // input columns
}

fn phase_of(z: u32) -> Phase {
    let s = p.stride;
    var ph: Phase;
    ph.ry = z / s;
    ph.rx = z % s;
    ph.ky0 = (ph.ry + p.pad) % s;
    ph.kx0 = (ph.rx + p.pad) % s;
    ph.taps_y = select(0u, (p.kh - ph.ky0 + s - 1u) / s, ph.ky0 < p.kh);
    ph.taps_x = select(0u, (p.kw - ph.kx0 + s - 1u) / s, ph.kx0 < p.kw);
    ph.rows = select(0u, (p.h - ph.ry + s - 1u) / s, ph.ry < p.h);
    ph.cols = select(0u, (p.w - ph.rx + s - 1u) / s, ph.rx < p.w);
    return ph;
}

// This workgroup's tile: first row and column, the end of its reduction, and (MODE 1)
// its phase.
var<private> tile_row0: u32;
var<private> tile_col0: u32;
var<private> tile_k_end: u32;
var<private> tile_cols: u32;
var<private> phase: Phase;

// Tap (ky, kx) number t of the phase's taps, in the order they enter the reduction.
fn phase_tap(t: u32) -> vec2<u32> {
    return vec2<u32>(
        phase.ky0 + p.stride * (t / phase.taps_x),
        phase.kx0 + p.stride * (t % phase.taps_x),
    );
}

// Image n and input pixel (iy, ix) of the phase's GEMM column `col`.
fn phase_pixel(col: u32) -> vec3<u32> {
    let per_image = phase.rows * phase.cols;
    let r = col % per_image;
    return vec3<u32>(
        col / per_image,
        phase.ry + p.stride * (r / phase.cols),
        phase.rx + p.stride * (r % phase.cols),
    );
}

// Element (row, kk) of the GEMM's left operand.
fn load_a(row: u32, kk: u32) -> f32 {
    if (MODE == 0u) {
        return f32(a_src[row * p.k + kk]);
    }
    if (MODE == 1u) {
        let per_co = phase.taps_y * phase.taps_x;
        let tap = phase_tap(kk % per_co);
        return f32(a_src[((kk / per_co * p.c_in + row) * p.kh + tap.x) * p.kw + tap.y]);
    }
    let pixels = p.oh * p.ow;
    return f32(a_src[(kk / pixels * p.c_out + row) * pixels + kk % pixels]);
}

// Element (kk, col) of the GEMM's right operand, gathered from the image or from dy.
fn load_b(kk: u32, col: u32) -> f32 {
    let taps = p.kh * p.kw;
    let pixels = p.oh * p.ow;
    if (MODE == 0u) {
        return window_at(col / pixels, kk / taps, col % pixels, kk % taps);
    }
    if (MODE == 2u) {
        return window_at(kk / pixels, col / taps, kk % pixels, col % taps);
    }
    let per_co = phase.taps_y * phase.taps_x;
    let tap = phase_tap(kk % per_co);
    let at = phase_pixel(col);
    // iy + pad − ky is a multiple of the stride by the choice of the phase's taps.
    let ty = i32(at.y + p.pad) - i32(tap.x);
    let tx = i32(at.z + p.pad) - i32(tap.y);
    let oy = ty / i32(p.stride);
    let ox = tx / i32(p.stride);
    if (ty < 0 || tx < 0 || oy >= i32(p.oh) || ox >= i32(p.ow)) {
        return 0.0;
    }
    return f32(b_src[((at.x * p.c_out + kk / per_co) * p.oh + u32(oy)) * p.ow + u32(ox)]);
}

// Where the tile prelude's quad q starts: A's run along k from (row, k), B's along
// columns from (k, col), like a matmul with both operands untransposed.
fn a_quad(q: u32) -> vec2<u32> {
    return vec2<u32>(q / (BK / 4u), 4u * (q % (BK / 4u)));
}

fn b_quad(q: u32) -> vec2<u32> {
    return vec2<u32>(q / (BN / 4u), 4u * (q % (BN / 4u)));
}

// The tile prelude's hooks (see shaders/tile.wgsl).
fn fetch_a(q: u32, k0: u32) -> vec4<f32> {
    let at = a_quad(q);
    let row = tile_row0 + at.x;
    let kk = k0 + at.y;
    if (VEC4) {
        if (row < p.m && kk < tile_k_end) {
            var idx = row * p.k + kk;
            if (MODE == 2u) {
                let pixels = p.oh * p.ow;
                idx = (kk / pixels * p.c_out + row) * pixels + kk % pixels;
            }
            return vec4<f32>(a4v[idx / 4u]);
        }
        return vec4<f32>(0.0);
    }
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        if (row < p.m && kk + e < tile_k_end) {
            v[e] = load_a(row, kk + e);
        }
    }
    return v;
}

fn fetch_b(q: u32, k0: u32) -> vec4<f32> {
    let at = b_quad(q);
    let kk = k0 + at.x;
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let col = tile_col0 + at.y + e;
        if (kk < tile_k_end && col < tile_cols) {
            v[e] = load_b(kk, col);
        }
    }
    return v;
}

fn stage_a(buf: u32, q: u32, v: vec4<f32>) {
    if (q >= BM * BK / 4u) {
        return;
    }
    let at = a_quad(q);
    for (var e = 0u; e < 4u; e++) {
        sa[((buf * BK + at.y + e) * BM + at.x) / 4u][at.x % 4u] = v[e];
    }
}

fn stage_b(buf: u32, q: u32, v: vec4<f32>) {
    if (q >= BN * BK / 4u) {
        return;
    }
    let at = b_quad(q);
    sb[((buf * BK + at.x) * BN + at.y) / 4u] = v;
}

// Where output (row, col) of this tile lives (MODE 2: in the partial sums of `split`).
fn out_index(row: u32, col: u32, split: u32) -> u32 {
    if (MODE == 0u) {
        return forward_index(row, col);
    }
    if (MODE == 1u) {
        let at = phase_pixel(col);
        return ((at.x * p.c_in + row) * p.h + at.y) * p.w + at.z;
    }
    return (split * p.m + row) * p.n + col;
}

// Stores four consecutive outputs of a row: with bias (MODE 0) and accumulation (MODE 0
// and 1; MODE 2 writes fresh partial sums).
fn store4(row: u32, col: u32, split: u32, value: vec4<f32>) {
    var v = value;
    if (MODE == 0u && p.has_bias == 1u) {
        v += vec4<f32>(f32(bias[row]));
    }
    let add = p.accumulate == 1u && MODE != 2u;
    if (VEC4_OUT) {
        // The four columns lie in one image (or row of partial sums), whole and aligned.
        if (col < tile_cols) {
            let idx = out_index(row, col, split) / 4u;
            if (add) {
                v += vec4<f32>(out4v[idx]);
            }
            out4v[idx] = vec4<Out>(v);
        }
        return;
    }
    for (var e = 0u; e < 4u; e++) {
        if (col + e < tile_cols) {
            let idx = out_index(row, col + e, split);
            var x = v[e];
            if (add) {
                x += f32(out[idx]);
            }
            out[idx] = Out(x);
        }
    }
}

// A BM x BN tile of this MODE's GEMM per workgroup; z picks the phase (MODE 1) or the
// split of the reduction (MODE 2).
@compute @workgroup_size(BN / TN, BM / TM)
fn conv2d_blocked(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    // The bounds are worked out in locals from the uniforms and the workgroup id, so that
    // the early return and the reduction's loop (which holds barriers) are uniform control
    // flow to every compiler (Tint, WebGPU's, counts a module-scope variable as varying).
    var k_begin = 0u;
    var k_end = p.k;
    var cols = p.n;
    if (MODE == 1u) {
        let this_phase = phase_of(wg.z);
        k_end = p.c_out * this_phase.taps_y * this_phase.taps_x;
        cols = p.batch * this_phase.rows * this_phase.cols;
        phase = this_phase;
    } else if (MODE == 2u) {
        k_begin = wg.z * p.k_split;
        k_end = min(p.k, k_begin + p.k_split);
    }
    if (wg.x * BN >= cols) {
        return; // a phase with fewer columns than the grid is wide
    }
    tile_row0 = wg.y * BM;
    tile_col0 = wg.x * BN;
    tile_k_end = k_end;
    tile_cols = cols;
    var acc: array<vec4<f32>, 16>;
    accumulate_tile(lid, k_begin, k_end, &acc);
    for (var v = 0u; v < TM * TN / 4u; v++) {
        let at = acc_position(v, lid);
        if (tile_row0 + at.x < p.m) {
            store4(tile_row0 + at.x, tile_col0 + at.y, wg.z, acc[v]);
        }
    }
}

// ---- direct forward: one invocation per output element, a plain loop over the window
// (the simple variant: reference and fallback). Bindings as MODE 0. ----
@compute @workgroup_size(256)
fn conv2d_direct(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let total = p.batch * p.c_out * p.oh * p.ow;
    for (var i = gid.x; i < total; i += grid_step(nwg)) {
        let ox = i % p.ow;
        let oy = (i / p.ow) % p.oh;
        let co = (i / (p.ow * p.oh)) % p.c_out;
        let n = i / (p.ow * p.oh * p.c_out);
        var acc = 0.0;
        for (var ci = 0u; ci < p.c_in; ci++) {
            for (var ky = 0u; ky < p.kh; ky++) {
                let y = i32(oy * p.stride + ky) - i32(p.pad);
                for (var kx = 0u; kx < p.kw; kx++) {
                    let x = i32(ox * p.stride + kx) - i32(p.pad);
                    acc += f32(a_src[((co * p.c_in + ci) * p.kh + ky) * p.kw + kx]) * image_at(n, ci, y, x);
                }
            }
        }
        if (p.has_bias == 1u) {
            acc += f32(bias[co]);
        }
        if (p.accumulate == 1u) {
            acc += f32(out[i]);
        }
        out[i] = Out(acc);
    }
}

// ---- backward weight, second stage: dw (+)= Σ_split partial[split] in split order ----
// dw: [c_out, c_in, kh, kw]; partial: [splits, c_out·c_in·kh·kw]
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<storage, read> partial: array<f32>;

@compute @workgroup_size(256)
fn conv2d_weight_finish(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let len = p.m * p.n;
    for (var i = gid.x; i < len; i += grid_step(nwg)) {
        var s = 0.0;
        for (var z = 0u; z < p.splits; z++) {
            s += partial[z * len + i];
        }
        if (p.accumulate == 1u) {
            s += dw[i];
        }
        dw[i] = s;
    }
}

// ---- backward bias: db[co] (+)= Σ_(n, pixel) dy[n, co, pixel], one workgroup a channel ----
// db: [c_out]; dy: [batch, c_out, oh, ow]
@group(0) @binding(1) var<storage, read_write> db: array<f32>;
@group(0) @binding(2) var<storage, read> dy_bias: array<Operand>;

// red: [WG], WG (the tile prelude's override) a power of two, `Gpu::row_workgroup_size`
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn conv2d_bias_backward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let co = wg.x;
    let pixels = p.oh * p.ow;
    var s = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        let base = (n * p.c_out + co) * pixels;
        for (var i = lid.x; i < pixels; i += WG) {
            s += f32(dy_bias[base + i]);
        }
    }
    red[lid.x] = s;
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        workgroupBarrier();
        if (lid.x < half) {
            red[lid.x] += red[lid.x + half];
        }
    }
    if (lid.x == 0u) {
        var v = red[0];
        if (p.accumulate == 1u) {
            v += db[co];
        }
        db[co] = v;
    }
}
