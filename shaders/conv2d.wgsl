// 2D convolution over NCHW images (cross-correlation, like every framework), any kernel
// size, stride and zero padding, as an implicit GEMM: the unfolded ("im2col") operand is
// gathered straight from the image into workgroup memory, never stored.
//
// One tiled GEMM kernel serves the three products, picked by the override MODE:
//   MODE 0, forward:          y[co, (n,oy,ox)]   = Σ_(ci,ky,kx)  w[co,(ci,ky,kx)] · x̃[(ci,ky,kx),(n,oy,ox)]
//   MODE 1, backward input:   dx[ci, (n,iy,ix)]  = Σ_(co,ky,kx)  w[co,(ci,ky,kx)] · dỹ[(co,ky,kx),(n,iy,ix)]
//   MODE 2, backward weight:  dw[co, (ci,ky,kx)] = Σ_(n,oy,ox)   dy[n,co,oy,ox] · x̃[(n,oy,ox),(ci,ky,kx)]
// where x̃ reads x at (oy·stride − pad + ky, ox·stride − pad + kx) and dỹ reads dy at the
// output pixel whose window puts tap (ky, kx) on input pixel (iy, ix) (zero when none
// does). MODE 2 splits its long reduction over workgroups along z (k_split each) and
// writes partial sums; `conv2d_weight_finish` adds them up in a fixed order.

struct Params {
    batch: u32,
    c_in: u32,
    h: u32,          // input height
    w: u32,          // input width
    c_out: u32,
    kh: u32,         // kernel height
    kw: u32,         // kernel width
    stride: u32,
    pad: u32,
    oh: u32,         // output height
    ow: u32,         // output width
    has_bias: u32,   // forward: add bias[co]
    accumulate: u32, // 1: out += result, 0: out = result
    m: u32,          // GEMM rows of this MODE
    n: u32,          // GEMM columns
    k: u32,          // GEMM reduction length
    k_split: u32,    // reduction length per z-workgroup (MODE 2; k otherwise)
    splits: u32,     // z-workgroups (conv2d_weight_finish)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// ---- the implicit-GEMM kernel ----
// Bindings by MODE:            out (1)                         a (2)        b (3)    bias (4)
//   0 forward                  y: [batch, c_out, oh, ow]       w            x        bias: [c_out]
//   1 backward input           dx: [batch, c_in, h, w]         w            dy       (unused)
//   2 backward weight          partial: [splits, c_out, c_in·kh·kw]  dy     x        (unused)
// with w: [c_out, c_in, kh, kw], x: [batch, c_in, h, w], dy: [batch, c_out, oh, ow].
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a_src: array<f32>;
@group(0) @binding(3) var<storage, read> b_src: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

override MODE: u32 = 0u;
override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;

// a_tile: [BK, BM], b_tile: [BK, BN]
var<workgroup> a_tile: array<f32, BM * BK>;
var<workgroup> b_tile: array<f32, BK * BN>;

// x at (n, c, y, x) or 0 outside the image.
fn image_at(n: u32, c: u32, y: i32, x: i32) -> f32 {
    if (y < 0 || x < 0 || y >= i32(p.h) || x >= i32(p.w)) {
        return 0.0;
    }
    return b_src[((n * p.c_in + c) * p.h + u32(y)) * p.w + u32(x)];
}

// Element (row, kk) of the GEMM's left operand.
fn load_a(row: u32, kk: u32) -> f32 {
    let taps = p.kh * p.kw;
    if (MODE == 0u) {
        return a_src[row * p.k + kk];
    }
    if (MODE == 1u) {
        let co = kk / taps;
        return a_src[(co * p.c_in + row) * taps + kk % taps];
    }
    let pixels = p.oh * p.ow;
    let n = kk / pixels;
    return a_src[(n * p.c_out + row) * pixels + kk % pixels];
}

// Element (kk, col) of the GEMM's right operand, gathered from the image or from dy.
fn load_b(kk: u32, col: u32) -> f32 {
    let taps = p.kh * p.kw;
    let pixels = p.oh * p.ow;
    if (MODE == 0u) {
        let ci = kk / taps;
        let tap = kk % taps;
        let n = col / pixels;
        let pix = col % pixels;
        let y = i32((pix / p.ow) * p.stride + tap / p.kw) - i32(p.pad);
        let x = i32((pix % p.ow) * p.stride + tap % p.kw) - i32(p.pad);
        return image_at(n, ci, y, x);
    }
    if (MODE == 1u) {
        let co = kk / taps;
        let tap = kk % taps;
        let n = col / (p.h * p.w);
        let pix = col % (p.h * p.w);
        let ty = i32(pix / p.w + p.pad) - i32(tap / p.kw);
        let tx = i32(pix % p.w + p.pad) - i32(tap % p.kw);
        if (ty < 0 || tx < 0) {
            return 0.0;
        }
        let s = p.stride;
        let uy = u32(ty);
        let ux = u32(tx);
        if (uy % s != 0u || ux % s != 0u || uy / s >= p.oh || ux / s >= p.ow) {
            return 0.0;
        }
        return b_src[((n * p.c_out + co) * p.oh + uy / s) * p.ow + ux / s];
    }
    let n = kk / pixels;
    let pix = kk % pixels;
    let ci = col / taps;
    let tap = col % taps;
    let y = i32((pix / p.ow) * p.stride + tap / p.kw) - i32(p.pad);
    let x = i32((pix % p.ow) * p.stride + tap % p.kw) - i32(p.pad);
    return image_at(n, ci, y, x);
}

fn store(row: u32, col: u32, split: u32, value: f32) {
    var idx: u32;
    var v = value;
    if (MODE == 0u) {
        let pixels = p.oh * p.ow;
        idx = ((col / pixels) * p.c_out + row) * pixels + col % pixels;
        if (p.has_bias == 1u) {
            v += bias[row];
        }
    } else if (MODE == 1u) {
        let pixels = p.h * p.w;
        idx = ((col / pixels) * p.c_in + row) * pixels + col % pixels;
    } else {
        out[(split * p.m + row) * p.n + col] = v;
        return;
    }
    if (p.accumulate == 1u) {
        v += out[idx];
    }
    out[idx] = v;
}

// A BM x BN tile of the GEMM per workgroup, 4x4 per invocation, BK-deep slabs of both
// operands staged in workgroup memory ((BM + BN)·BK·4 bytes, checked in Rust).
@compute @workgroup_size(BN / 4u, BM / 4u)
fn conv2d_gemm(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let threads = (BN / 4u) * (BM / 4u);
    let tid = lid.y * (BN / 4u) + lid.x;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let k_begin = wg.z * p.k_split;
    let k_end = min(p.k, k_begin + p.k_split);
    var acc: array<vec4<f32>, 4>;
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        for (var i = tid; i < BM * BK; i += threads) {
            let mm = i / BK;
            let kk = i % BK;
            var v = 0.0;
            if (row0 + mm < p.m && k0 + kk < k_end) {
                v = load_a(row0 + mm, k0 + kk);
            }
            a_tile[kk * BM + mm] = v;
        }
        for (var i = tid; i < BK * BN; i += threads) {
            let nn = i % BN;
            let kk = i / BN;
            var v = 0.0;
            if (col0 + nn < p.n && k0 + kk < k_end) {
                v = load_b(k0 + kk, col0 + nn);
            }
            b_tile[kk * BN + nn] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let ar = kk * BM + lid.y * 4u;
            let br = kk * BN + lid.x * 4u;
            let bv = vec4<f32>(b_tile[br], b_tile[br + 1u], b_tile[br + 2u], b_tile[br + 3u]);
            acc[0] += a_tile[ar] * bv;
            acc[1] += a_tile[ar + 1u] * bv;
            acc[2] += a_tile[ar + 2u] * bv;
            acc[3] += a_tile[ar + 3u] * bv;
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let row = row0 + lid.y * 4u + r;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x * 4u + j;
            if (row < p.m && col < p.n) {
                store(row, col, wg.z, acc[r][j]);
            }
        }
    }
}

// ---- register-blocked kernels: 8 channels × 4 pixels (or taps) per invocation, operands
// read straight from storage (no workgroup memory, no barriers), the window walked with no
// division in the inner loop. Bindings as the MODE of the same pass. ----

const REG_ROWS: u32 = 8u;
const REG_COLS: u32 = 4u;

// Forward: invocation i computes output channels from 8·(i / col_blocks) at the 4 output
// pixels from 4·(i % col_blocks), so neighbouring invocations read neighbouring pixels.
@compute @workgroup_size(64)
fn conv2d_forward_reg(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let pixels = p.oh * p.ow;
    let i = gid.y * nwg.x * 64u + gid.x;
    let col_blocks = (p.n + REG_COLS - 1u) / REG_COLS;
    let block = vec2<u32>((i / col_blocks) * REG_ROWS, (i % col_blocks) * REG_COLS);
    let co0 = block.x;
    if (co0 >= p.c_out) {
        return;
    }
    // Per column: the image's base offset and the window's top-left corner.
    var base: array<u32, 4>;
    var y0: array<i32, 4>;
    var x0: array<i32, 4>;
    var live: array<bool, 4>;
    for (var j = 0u; j < REG_COLS; j++) {
        let col = block.y + j;
        live[j] = col < p.n;
        let c = min(col, p.n - 1u);
        let pix = c % pixels;
        base[j] = (c / pixels) * p.c_in * p.h * p.w;
        y0[j] = i32((pix / p.ow) * p.stride) - i32(p.pad);
        x0[j] = i32((pix % p.ow) * p.stride) - i32(p.pad);
    }
    var rows: array<u32, 8>;
    for (var r = 0u; r < REG_ROWS; r++) {
        rows[r] = min(co0 + r, p.c_out - 1u) * p.k;
    }
    var acc: array<vec4<f32>, 8>;
    var kk = 0u;
    for (var ci = 0u; ci < p.c_in; ci++) {
        let plane = ci * p.h * p.w;
        for (var ky = 0u; ky < p.kh; ky++) {
            for (var kx = 0u; kx < p.kw; kx++) {
                var bv = vec4<f32>(0.0);
                for (var j = 0u; j < REG_COLS; j++) {
                    let y = y0[j] + i32(ky);
                    let x = x0[j] + i32(kx);
                    if (live[j] && y >= 0 && x >= 0 && y < i32(p.h) && x < i32(p.w)) {
                        bv[j] = b_src[base[j] + plane + u32(y) * p.w + u32(x)];
                    }
                }
                for (var r = 0u; r < REG_ROWS; r++) {
                    acc[r] += a_src[rows[r] + kk] * bv;
                }
                kk++;
            }
        }
    }
    for (var r = 0u; r < REG_ROWS; r++) {
        for (var j = 0u; j < REG_COLS; j++) {
            if (co0 + r < p.c_out && live[j]) {
                store(co0 + r, block.y + j, 0u, acc[r][j]);
            }
        }
    }
}

// Backward to the input: 8 input channels × 4 input pixels of one row that share their
// column's remainder modulo the stride (ix = r, r + s, r + 2s, ...), so that the same
// filter taps reach all four and the taps that reach none (3 in 4 at stride 2) are skipped.
@compute @workgroup_size(64)
fn conv2d_backward_input_reg(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let s = p.stride;
    // Column blocks per image row: s remainders × chunks of 4 of the ⌈w/s⌉ columns each.
    let chunks = ((p.w + s - 1u) / s + REG_COLS - 1u) / REG_COLS;
    let row_blocks = s * chunks;
    let col_blocks = p.batch * p.h * row_blocks;
    let i = gid.y * nwg.x * 64u + gid.x;
    let ci0 = (i / col_blocks) * REG_ROWS;
    if (ci0 >= p.c_in) {
        return;
    }
    let cb = i % col_blocks;
    let image_row = cb / row_blocks;       // n · h + iy
    let n = image_row / p.h;
    let iy = image_row % p.h;
    let rem = (cb % row_blocks) / chunks;  // the columns' remainder r
    let ix0 = rem + s * REG_COLS * (cb % chunks);
    let taps = p.kh * p.kw;
    var rows: array<u32, 8>;
    for (var r = 0u; r < REG_ROWS; r++) {
        rows[r] = min(ci0 + r, p.c_in - 1u) * taps;
    }
    let dy_base = n * p.c_out * p.oh * p.ow;
    var acc: array<vec4<f32>, 8>;
    // Taps with (iy + pad − ky) and (ix + pad − kx) multiples of s.
    for (var ky = (iy + p.pad) % s; ky < p.kh; ky += s) {
        let ty = i32(iy + p.pad) - i32(ky);
        let oy = ty / i32(s);
        if (ty < 0 || oy >= i32(p.oh)) {
            continue;
        }
        for (var kx = (ix0 + p.pad) % s; kx < p.kw; kx += s) {
            // ox of column j: (ix0 + s·j + pad − kx) / s = ox0 + j (exact: kx was picked so
            // that s divides ix0 + pad − kx, which may be negative)
            let ox0 = (i32(ix0 + p.pad) - i32(kx)) / i32(s);
            let tap = ky * p.kw + kx;
            for (var co = 0u; co < p.c_out; co++) {
                let dy_row = dy_base + (co * p.oh + u32(oy)) * p.ow;
                var bv = vec4<f32>(0.0);
                for (var j = 0u; j < REG_COLS; j++) {
                    let ox = ox0 + i32(j);
                    let ix = ix0 + s * j;
                    if (ox >= 0 && ox < i32(p.ow) && ix < p.w) {
                        bv[j] = b_src[dy_row + u32(ox)];
                    }
                }
                let w_co = co * p.c_in * taps + tap;
                for (var r = 0u; r < REG_ROWS; r++) {
                    acc[r] += a_src[w_co + rows[r]] * bv;
                }
            }
        }
    }
    for (var r = 0u; r < REG_ROWS; r++) {
        let ci = ci0 + r;
        for (var j = 0u; j < REG_COLS; j++) {
            let ix = ix0 + s * j;
            if (ci < p.c_in && ix < p.w) {
                let idx = ((n * p.c_in + ci) * p.h + iy) * p.w + ix;
                var v = acc[r][j];
                if (p.accumulate == 1u) {
                    v += out[idx];
                }
                out[idx] = v;
            }
        }
    }
}

// Backward to the weights, first stage: 8 output channels × 4 consecutive (ci, ky, kx)
// taps per invocation, summed over the pixels of this z-split (k_split of the
// batch·oh·ow), written as partial sums like MODE 2 (`conv2d_weight_finish` adds them).
// Bindings as MODE 2: out = partial, a = dy, b = x.
@compute @workgroup_size(64)
fn conv2d_backward_weight_reg(@builtin(global_invocation_id) gid: vec3<u32>) {
    // p.m = c_out rows, p.n = c_in·kh·kw columns; gid.x picks the 8 × 4 block, gid.y the
    // split.
    let i = gid.x;
    let col_blocks = (p.n + REG_COLS - 1u) / REG_COLS;
    let co0 = (i / col_blocks) * REG_ROWS;
    if (co0 >= p.m) {
        return;
    }
    let col0 = (i % col_blocks) * REG_COLS;
    let split = gid.y;
    let taps = p.kh * p.kw;
    // Per column: the input plane's offset within an image and the tap.
    var plane: array<u32, 4>;
    var ky: array<i32, 4>;
    var kx: array<i32, 4>;
    for (var j = 0u; j < REG_COLS; j++) {
        let c = min(col0 + j, p.n - 1u);
        plane[j] = (c / taps) * p.h * p.w;
        ky[j] = i32((c % taps) / p.kw) - i32(p.pad);
        kx[j] = i32((c % taps) % p.kw) - i32(p.pad);
    }
    let pixels = p.oh * p.ow;
    let k_begin = split * p.k_split;
    let k_end = min(p.k, k_begin + p.k_split);
    var acc: array<vec4<f32>, 8>;
    for (var kk = k_begin; kk < k_end; kk++) {
        let n = kk / pixels;
        let pix = kk % pixels;
        let oy = i32((pix / p.ow) * p.stride);
        let ox = i32((pix % p.ow) * p.stride);
        let image = n * p.c_in * p.h * p.w;
        var bv = vec4<f32>(0.0);
        for (var j = 0u; j < REG_COLS; j++) {
            let y = oy + ky[j];
            let x = ox + kx[j];
            if (y >= 0 && x >= 0 && y < i32(p.h) && x < i32(p.w)) {
                bv[j] = b_src[image + plane[j] + u32(y) * p.w + u32(x)];
            }
        }
        let dy_base = n * p.c_out * pixels + pix;
        for (var r = 0u; r < REG_ROWS; r++) {
            acc[r] += a_src[dy_base + min(co0 + r, p.m - 1u) * pixels] * bv;
        }
    }
    for (var r = 0u; r < REG_ROWS; r++) {
        for (var j = 0u; j < REG_COLS; j++) {
            if (co0 + r < p.m && col0 + j < p.n) {
                out[(split * p.m + co0 + r) * p.n + col0 + j] = acc[r][j];
            }
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
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
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
                    acc += a_src[((co * p.c_in + ci) * p.kh + ky) * p.kw + kx] * image_at(n, ci, y, x);
                }
            }
        }
        if (p.has_bias == 1u) {
            acc += bias[co];
        }
        if (p.accumulate == 1u) {
            acc += out[i];
        }
        out[i] = acc;
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
    for (var i = gid.x; i < len; i += nwg.x * 256u) {
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
@group(0) @binding(2) var<storage, read> dy_bias: array<f32>;

// Invocations per workgroup for the bias sum, a power of two (`Gpu::row_workgroup_size`).
override WG: u32 = 256u;
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
            s += dy_bias[base + i];
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
