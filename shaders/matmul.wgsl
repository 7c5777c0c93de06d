// Matrix multiply: C[b] = op(A[b]) · op(B[b]) (+ bias) (+ C), op = identity or transpose;
// or, with the ACTIVATION override constant, a linear layer's forward in one kernel:
// pre = op(A)·op(B) + bias and C = act(pre), pre kept for the backward (bias.wgsl).
// Four variants: naive (the reference), tiled in workgroup memory, register-blocked 8x4
// with vec4 loads and no barriers (for software Vulkan), and blocked (the established GPU
// design: big register tiles over double-buffered workgroup slabs). Compiled after the
// element prelude (elem_*.wgsl), the activation prelude (activation.wgsl), what the matmul
// kernels share (matmul_io.wgsl) and the tile prelude (tile.wgsl). A and B may be f16
// (`Operand`), C f32 or f16 (`Out`); every sum is f32, and workgroup slabs hold f32.

// ---- naive: one invocation per element of C (the reference variant) ----

@compute @workgroup_size(16, 16)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    let bat = gid.z;
    if (row >= p.m || col >= p.n) {
        return;
    }
    let base_a = bat * p.stride_a;
    let base_b = bat * p.stride_b;
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc += load_a(base_a, row, kk) * load_b(base_b, kk, col);
    }
    store_c(bat, row, col, acc);
}

// ---- tiled: BM x BN tile of C per workgroup, 4x4 per invocation, BK-deep slabs of A
// and B staged in workgroup memory ((BM + BN) * BK * 4 bytes, checked in Rust); BM, BN
// and BK are the override constants of the tile prelude ----

// a_tile: [BK, BM], b_tile: [BK, BN]
var<workgroup> a_tile: array<f32, BM * BK>;
var<workgroup> b_tile: array<f32, BK * BN>;

@compute @workgroup_size(BN / 4u, BM / 4u)
fn matmul_tiled(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let threads = (BN / 4u) * (BM / 4u);
    let tid = lid.y * (BN / 4u) + lid.x;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let bat = wg.z;
    let base_a = bat * p.stride_a;
    let base_b = bat * p.stride_b;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = tid; i < BM * BK; i += threads) {
            // Walk the contiguous dimension of the stored layout fastest.
            var mm = i / BK;
            var kk = i % BK;
            if (p.trans_a == 1u) {
                mm = i % BM;
                kk = i / BM;
            }
            var v = 0.0;
            if (row0 + mm < p.m && k0 + kk < p.k) {
                v = load_a(base_a, row0 + mm, k0 + kk);
            }
            a_tile[kk * BM + mm] = v;
        }
        for (var i = tid; i < BK * BN; i += threads) {
            var nn = i % BN;
            var kk = i / BN;
            if (p.trans_b == 1u) {
                nn = i / BK;
                kk = i % BK;
            }
            var v = 0.0;
            if (col0 + nn < p.n && k0 + kk < p.k) {
                v = load_b(base_b, k0 + kk, col0 + nn);
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
                store_c(bat, row, col, acc[r][j]);
            }
        }
    }
}

// ---- register-blocked 8x4: 8x4 of C per invocation, operands read as vec4 straight from
// storage, no workgroup memory and no barriers (what software Vulkan wants). Needs the
// contiguous dimension of each operand and the batch strides to be multiples of 4 (checked
// in Rust). ----

// a4, b4: the same buffers as a and b, viewed as vec4
@group(0) @binding(2) var<storage, read> a4: array<vec4<Operand>>;
@group(0) @binding(3) var<storage, read> b4: array<vec4<Operand>>;

@compute @workgroup_size(16, 16)
fn matmul_reg8x4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col0 = gid.x * 4u;
    let row0 = gid.y * 8u;
    let bat = gid.z;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let base_a = bat * p.stride_a;
    let base_b = bat * p.stride_b;
    // Rows (of A) and columns (of B) past the edge are clamped; their sums are not stored.
    let last_m = p.m - 1u;
    let last_n = p.n - 1u;
    var acc: array<vec4<f32>, 8>;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        var bv: array<vec4<f32>, 4>;
        if (TRANS_B) {
            var bt: array<vec4<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                bt[j] = vec4<f32>(b4[(base_b + min(col0 + j, last_n) * p.k + k0) / 4u]);
            }
            for (var kk = 0u; kk < 4u; kk++) {
                bv[kk] = vec4<f32>(bt[0][kk], bt[1][kk], bt[2][kk], bt[3][kk]);
            }
        } else {
            // Past k the slots are zeroed here, not left to the declaration's zeroing in
            // the loop, which Dawn on SwiftShader skipped (the browser self-test caught it).
            for (var kk = 0u; kk < 4u; kk++) {
                if (k0 + kk < p.k) {
                    bv[kk] = vec4<f32>(b4[(base_b + (k0 + kk) * p.n + col0) / 4u]);
                } else {
                    bv[kk] = vec4<f32>(0.0);
                }
            }
        }
        if (TRANS_A) {
            // A stored [k, m]: two vec4 cover 8 rows at one k. Rows past m read a clamped
            // group (m is a multiple of 4, so a group is either whole or past the end).
            for (var half = 0u; half < 2u; half++) {
                let r = min(row0 + half * 4u, p.m - 4u);
                var at: array<vec4<f32>, 4>;
                for (var kk = 0u; kk < 4u; kk++) {
                    if (k0 + kk < p.k) {
                        at[kk] = vec4<f32>(a4[(base_a + (k0 + kk) * p.m + r) / 4u]);
                    } else {
                        at[kk] = vec4<f32>(0.0);
                    }
                }
                for (var i = 0u; i < 4u; i++) {
                    let av = vec4<f32>(at[0][i], at[1][i], at[2][i], at[3][i]);
                    acc[half * 4u + i] += av.x * bv[0] + av.y * bv[1] + av.z * bv[2] + av.w * bv[3];
                }
            }
        } else {
            for (var i = 0u; i < 8u; i++) {
                let av = vec4<f32>(a4[(base_a + min(row0 + i, last_m) * p.k + k0) / 4u]);
                acc[i] += av.x * bv[0] + av.y * bv[1] + av.z * bv[2] + av.w * bv[3];
            }
        }
    }
    for (var i = 0u; i < 8u; i++) {
        let row = row0 + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + j;
            if (row < p.m && col < p.n) {
                store_c(bat, row, col, acc[i][j]);
            }
        }
    }
}

// ---- blocked: the established GPU design, on the tile prelude (shaders/tile.wgsl): a
// BM x BN tile of C per workgroup from double-buffered slabs, TM x TN of it per
// invocation. Quads run along each operand's stored contiguous dimension. With VEC4
// (each operand's contiguous dimension, C's columns and every batch stride multiples of
// 4, checked in Rust) quads are read and C written as whole vec4s through the vec4 views
// below, which the launcher binds to the same buffers; otherwise float by float. ----

// a4v, b4v, c4v: the buffers of a, b and c again, viewed as vec4
@group(0) @binding(5) var<storage, read> a4v: array<vec4<Operand>>;
@group(0) @binding(6) var<storage, read> b4v: array<vec4<Operand>>;
@group(0) @binding(7) var<storage, read_write> c4v: array<vec4<Out>>;

// This workgroup's tile: first row and column of C, and the batch's offsets into A and B.
var<private> tile_row0: u32;
var<private> tile_col0: u32;
var<private> tile_base_a: u32;
var<private> tile_base_b: u32;

// Where quad q of A's slab starts within the tile: (row, k). Its elements run along k
// when A is stored [m, k], along rows when stored [k, m].
fn a_quad(q: u32) -> vec2<u32> {
    if (TRANS_A) {
        return vec2<u32>(4u * (q % (BM / 4u)), q / (BM / 4u));
    }
    return vec2<u32>(q / (BK / 4u), 4u * (q % (BK / 4u)));
}

// Where quad q of B's slab starts: (k, column). Its elements run along columns when B is
// stored [k, n], along k when stored [n, k].
fn b_quad(q: u32) -> vec2<u32> {
    if (TRANS_B) {
        return vec2<u32>(4u * (q % (BK / 4u)), q / (BK / 4u));
    }
    return vec2<u32>(q / (BN / 4u), 4u * (q % (BN / 4u)));
}

// Element offset of A's (row, kk) and B's (kk, col) within their batch.
fn a_offset(row: u32, kk: u32) -> u32 {
    return select(row * p.k + kk, kk * p.m + row, TRANS_A);
}

fn b_offset(kk: u32, col: u32) -> u32 {
    return select(kk * p.n + col, col * p.k + kk, TRANS_B);
}

// Quad q of A's slab at depth k0, zero outside A. With VEC4 a quad starts at a multiple
// of 4 along a dimension whose length is a multiple of 4: wholly inside or outside.
fn fetch_a(q: u32, k0: u32) -> vec4<f32> {
    let at = a_quad(q);
    let row = tile_row0 + at.x;
    let kk = k0 + at.y;
    if (VEC4) {
        if (row < p.m && kk < p.k) {
            return vec4<f32>(a4v[(tile_base_a + a_offset(row, kk)) / 4u]);
        }
        return vec4<f32>(0.0);
    }
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let r = row + select(0u, e, TRANS_A);
        let k = kk + select(e, 0u, TRANS_A);
        if (r < p.m && k < p.k) {
            v[e] = f32(a[tile_base_a + a_offset(r, k)]);
        }
    }
    return v;
}

fn fetch_b(q: u32, k0: u32) -> vec4<f32> {
    let at = b_quad(q);
    let kk = k0 + at.x;
    let col = tile_col0 + at.y;
    if (VEC4) {
        if (kk < p.k && col < p.n) {
            return vec4<f32>(b4v[(tile_base_b + b_offset(kk, col)) / 4u]);
        }
        return vec4<f32>(0.0);
    }
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let k = kk + select(0u, e, TRANS_B);
        let c = col + select(e, 0u, TRANS_B);
        if (k < p.k && c < p.n) {
            v[e] = f32(b[tile_base_b + b_offset(k, c)]);
        }
    }
    return v;
}

// Stores quad q of A into slab buffer `buf`, transposed: sa[buf][k][row].
fn stage_a(buf: u32, q: u32, v: vec4<f32>) {
    if (q >= BM * BK / 4u) {
        return;
    }
    let at = a_quad(q);
    let slab = buf * BK;
    if (TRANS_A) {
        sa[((slab + at.y) * BM + at.x) / 4u] = v;
        return;
    }
    for (var e = 0u; e < 4u; e++) {
        sa[((slab + at.y + e) * BM + at.x) / 4u][at.x % 4u] = v[e];
    }
}

// Stores quad q of B into slab buffer `buf`: sb[buf][k][col].
fn stage_b(buf: u32, q: u32, v: vec4<f32>) {
    if (q >= BN * BK / 4u) {
        return;
    }
    let at = b_quad(q);
    let slab = buf * BK;
    if (!TRANS_B) {
        sb[((slab + at.x) * BN + at.y) / 4u] = v;
        return;
    }
    for (var e = 0u; e < 4u; e++) {
        sb[((slab + at.x + e) * BN + at.y) / 4u][at.y % 4u] = v[e];
    }
}

@compute @workgroup_size(BN / TN, BM / TM)
fn matmul_blocked(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    tile_row0 = wg.y * BM;
    tile_col0 = wg.x * BN;
    tile_base_a = wg.z * p.stride_a;
    tile_base_b = wg.z * p.stride_b;
    var acc: array<vec4<f32>, 16>;
    accumulate_tile(lid, 0u, p.k, &acc);
    for (var v = 0u; v < TM * TN / 4u; v++) {
        let at = acc_position(v, lid);
        let row = tile_row0 + at.x;
        let col = tile_col0 + at.y;
        if (VEC4) {
            // C's columns are a multiple of 4: a vec4 of C is wholly inside or outside.
            if (row < p.m && col < p.n) {
                let idx = (wg.z * p.stride_c + row * p.n + col) / 4u;
                var value = acc[v];
                if (p.has_bias == 1u) {
                    value += vec4<f32>(f32(bias[col]), f32(bias[col + 1u]), f32(bias[col + 2u]), f32(bias[col + 3u]));
                }
                if (ACTIVATION != ACT_NONE) {
                    for (var e = 0u; e < 4u; e++) {
                        pre[idx * 4u + e] = Out(value[e]);
                        value[e] = activate(ACTIVATION, value[e]);
                    }
                } else if (p.accumulate == 1u) {
                    value += vec4<f32>(c4v[idx]);
                }
                c4v[idx] = vec4<Out>(value);
            }
        } else {
            for (var e = 0u; e < 4u; e++) {
                if (row < p.m && col + e < p.n) {
                    store_c(wg.z, row, col + e, acc[v][e]);
                }
            }
        }
    }
}
