// Causal self-attention fused in the flash-attention style: one invocation a query row,
// keys and values streamed through workgroup memory in tiles of BK, an online softmax, and
// the log-sum-exp saved for the backward pass; no T×T score matrix in memory. Backward
// recomputes the probabilities: one kernel for dQ (one invocation a query row) and one for
// dK and dV (one invocation a key row), so no float atomics and a deterministic result.
// Layout and uniform: attention_layout.wgsl, included before this file, after an element
// prelude: q, k, v, o, dO and the gradients are `Operand`s and `Out`s (f32, or f16
// activations), read into f32; lse, delta and every sum are f32.

override D: u32 = 64u;   // head dimension, at most MAX_D
override BQ: u32 = 32u;  // query rows (invocations) a workgroup
override BK: u32 = 32u;  // key rows a tile
const MAX_D: u32 = 128u;
const MAX_TILE: u32 = 64u; // largest BK the Rust side picks
const NEG_BIG: f32 = -0x1.fffffep+127f;

// The first float of head bh's position 0 in rows `stride` floats apart.
fn head_at(bh: u32, stride: u32) -> u32 {
    return (bh / p.heads) * p.t * stride + (bh % p.heads) * p.d;
}

// The first float of position `row` of head bh in q (and dq; k and v at their offsets).
fn q_at(bh: u32, row: u32) -> u32 {
    return head_at(bh, p.in_stride) + row * p.in_stride;
}

// The first float of position `row` of head bh in o and d_o.
fn o_at(bh: u32, row: u32) -> u32 {
    return head_at(bh, p.out_stride) + row * p.out_stride;
}

// Whether the gradient of bit 1 (q), 2 (k) or 4 (v) is added to what its buffer holds.
fn adds(bit: u32) -> bool {
    return (p.accumulate & bit) != 0u;
}

// Inputs shared by the entry points, at the same bindings in each:
// q, k, v, d_o (laid out as above); delta_in: [bh, t]
@group(0) @binding(3) var<storage, read> q: array<Operand>;
@group(0) @binding(4) var<storage, read> k: array<Operand>;
@group(0) @binding(5) var<storage, read> v: array<Operand>;
@group(0) @binding(6) var<storage, read> d_o: array<Operand>;
@group(0) @binding(7) var<storage, read> delta_in: array<f32>;

// tile_a, tile_b: [BK, D] (keys and values, or queries and output gradients)
var<workgroup> tile_a: array<f32, BK * D>;
var<workgroup> tile_b: array<f32, BK * D>;
// tile_lse, tile_delta: [BK] (backward to K and V only)
var<workgroup> tile_lse: array<f32, BK>;
var<workgroup> tile_delta: array<f32, BK>;

// Keys and values of rows row0 .. row0 + BK of the head at `base` (rows in_stride floats
// apart) into tile_a and tile_b (zeros past t), the whole workgroup taking part.
fn load_key_tiles(base: u32, row0: u32, l: u32) {
    for (var e = l; e < BK * D; e += BQ) {
        let row = row0 + e / D;
        var kv = 0.0;
        var vv = 0.0;
        if (row < p.t) {
            let at = base + row * p.in_stride + e % D;
            kv = f32(k[at + p.k_offset]);
            vv = f32(v[at + p.v_offset]);
        }
        tile_a[e] = kv;
        tile_b[e] = vv;
    }
}

// Scaled queries and output gradients of rows row0 .. row0 + BK of head bh into tile_a
// and tile_b.
fn load_query_tiles(bh: u32, row0: u32, l: u32) {
    let q_base = head_at(bh, p.in_stride);
    let o_base = head_at(bh, p.out_stride);
    for (var e = l; e < BK * D; e += BQ) {
        let row = row0 + e / D;
        var qv = 0.0;
        var dov = 0.0;
        if (row < p.t) {
            qv = f32(q[q_base + row * p.in_stride + e % D]) * p.scale;
            dov = f32(d_o[o_base + row * p.out_stride + e % D]);
        }
        tile_a[e] = qv;
        tile_b[e] = dov;
    }
}

// ---- forward ----
// o (laid out as above); lse: [bh, t]
@group(0) @binding(1) var<storage, read_write> o: array<Out>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;

@compute @workgroup_size(BQ)
fn attention_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let q0 = wg.x * BQ;
    let i = q0 + lid.x;
    let valid = i < p.t;
    let base = head_at(bh, p.in_stride);
    var qi: array<f32, MAX_D>;
    var acc: array<f32, MAX_D>;
    if (valid) {
        let q_row = q_at(bh, i);
        for (var d = 0u; d < D; d++) {
            qi[d] = f32(q[q_row + d]) * p.scale;
        }
    }
    var m = NEG_BIG;
    var l = 0.0;
    let keys = min(q0 + BQ, p.t); // causal: this block needs keys 0 .. its last query
    for (var k0 = 0u; k0 < keys; k0 += BK) {
        load_key_tiles(base, k0, lid.x);
        workgroupBarrier();
        if (valid && k0 <= i) {
            // Scores of the tile first, then one rescale of the running sums a tile.
            let count = min(BK, i + 1u - k0);
            var scores: array<f32, MAX_TILE>;
            var tile_max = NEG_BIG;
            for (var jj = 0u; jj < count; jj++) {
                var s = 0.0;
                for (var d = 0u; d < D; d++) {
                    s += qi[d] * tile_a[jj * D + d];
                }
                scores[jj] = s;
                tile_max = max(tile_max, s);
            }
            let m_new = max(m, tile_max);
            let correction = exp(m - m_new);
            l *= correction;
            for (var d = 0u; d < D; d++) {
                acc[d] *= correction;
            }
            for (var jj = 0u; jj < count; jj++) {
                let weight = exp(scores[jj] - m_new);
                l += weight;
                for (var d = 0u; d < D; d++) {
                    acc[d] += weight * tile_b[jj * D + d];
                }
            }
            m = m_new;
        }
        workgroupBarrier();
    }
    if (valid) {
        let out = o_at(bh, i);
        for (var d = 0u; d < D; d++) {
            o[out + d] = Out(acc[d] / l);
        }
        lse[bh * p.t + i] = m + log(l);
    }
}

// ---- backward, step 1: delta[r] = Σ_d dO[r, d] · O[r, d] ----
// delta: [bh, t]; o_in (laid out as o above; and d_o)
@group(0) @binding(1) var<storage, read_write> delta: array<f32>;
@group(0) @binding(2) var<storage, read> o_in: array<Operand>;

@compute @workgroup_size(64)
fn attention_backward_delta(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var r = gid.x; r < p.bh * p.t; r += nwg.x * 64u) {
        let at = o_at(r / p.t, r % p.t);
        var s = 0.0;
        for (var d = 0u; d < D; d++) {
            s += f32(d_o[at + d]) * f32(o_in[at + d]);
        }
        delta[r] = s;
    }
}

// ---- backward, step 2: dQ (one invocation a query row) ----
// dq (laid out as q); lse_dq: [bh, t] (and q, k, v, d_o, delta_in)
@group(0) @binding(1) var<storage, read_write> dq: array<Out>;
@group(0) @binding(2) var<storage, read> lse_dq: array<f32>;

@compute @workgroup_size(BQ)
fn attention_backward_dq(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let q0 = wg.x * BQ;
    let i = q0 + lid.x;
    let valid = i < p.t;
    let base = head_at(bh, p.in_stride);
    let at = q_at(bh, i);
    var qi: array<f32, MAX_D>;
    var doi: array<f32, MAX_D>;
    var acc: array<f32, MAX_D>;
    var lse_i = 0.0;
    var delta_i = 0.0;
    if (valid) {
        let o_row = o_at(bh, i);
        for (var d = 0u; d < D; d++) {
            qi[d] = f32(q[at + d]) * p.scale;
            doi[d] = f32(d_o[o_row + d]);
        }
        lse_i = lse_dq[bh * p.t + i];
        delta_i = delta_in[bh * p.t + i];
    }
    let keys = min(q0 + BQ, p.t);
    for (var k0 = 0u; k0 < keys; k0 += BK) {
        load_key_tiles(base, k0, lid.x);
        workgroupBarrier();
        if (valid && k0 <= i) {
            let count = min(BK, i + 1u - k0);
            for (var jj = 0u; jj < count; jj++) {
                var s = 0.0;
                var dp = 0.0;
                for (var d = 0u; d < D; d++) {
                    s += qi[d] * tile_a[jj * D + d];
                    dp += doi[d] * tile_b[jj * D + d];
                }
                let ds = exp(s - lse_i) * (dp - delta_i);
                for (var d = 0u; d < D; d++) {
                    acc[d] += ds * tile_a[jj * D + d];
                }
            }
        }
        workgroupBarrier();
    }
    if (valid) {
        for (var d = 0u; d < D; d++) {
            var g = acc[d] * p.scale;
            if (adds(1u)) {
                g += f32(dq[at + d]);
            }
            dq[at + d] = Out(g);
        }
    }
}

// ---- backward, step 3: dK and dV (one invocation a key row) ----
// dk, dv (laid out as k and v); lse_dkv: [bh, t] (and q, k, v, d_o, delta_in)
@group(0) @binding(1) var<storage, read_write> dk: array<Out>;
@group(0) @binding(2) var<storage, read_write> dv: array<Out>;

// dv's element i, read or written through dk's binding where the two are one buffer.
fn dv_load(i: u32) -> f32 {
    if ((p.grads_shared & 1u) != 0u) {
        return f32(dk[i]);
    }
    return f32(dv[i]);
}

fn dv_store(i: u32, g: f32) {
    if ((p.grads_shared & 1u) != 0u) {
        dk[i] = Out(g);
    } else {
        dv[i] = Out(g);
    }
}
@group(0) @binding(8) var<storage, read> lse_dkv: array<f32>;

// Workgroups of BQ key rows; query tiles of BK rows (BK = BQ is asked for in Rust).
@compute @workgroup_size(BQ)
fn attention_backward_dkv(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let j0 = wg.x * BQ;
    let j = j0 + lid.x;
    let valid = j < p.t;
    let at = q_at(bh, j);
    var kj: array<f32, MAX_D>;
    var vj: array<f32, MAX_D>;
    var dk_acc: array<f32, MAX_D>;
    var dv_acc: array<f32, MAX_D>;
    if (valid) {
        for (var d = 0u; d < D; d++) {
            kj[d] = f32(k[at + p.k_offset + d]);
            vj[d] = f32(v[at + p.v_offset + d]);
        }
    }
    // causal: queries j0 .. t see this block's keys
    for (var i0 = j0; i0 < p.t; i0 += BK) {
        load_query_tiles(bh, i0, lid.x);
        for (var e = lid.x; e < BK; e += BQ) {
            let row = i0 + e;
            var lv = 0.0;
            var dl = 0.0;
            if (row < p.t) {
                lv = lse_dkv[bh * p.t + row];
                dl = delta_in[bh * p.t + row];
            }
            tile_lse[e] = lv;
            tile_delta[e] = dl;
        }
        workgroupBarrier();
        if (valid) {
            for (var ii = 0u; ii < BK; ii++) {
                let i = i0 + ii;
                if (i >= j && i < p.t) {
                    var s = 0.0;
                    var dp = 0.0;
                    for (var d = 0u; d < D; d++) {
                        s += tile_a[ii * D + d] * kj[d];
                        dp += tile_b[ii * D + d] * vj[d];
                    }
                    let prob = exp(s - tile_lse[ii]);
                    let ds = prob * (dp - tile_delta[ii]);
                    for (var d = 0u; d < D; d++) {
                        dv_acc[d] += prob * tile_b[ii * D + d];
                        dk_acc[d] += ds * tile_a[ii * D + d];
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (valid) {
        for (var d = 0u; d < D; d++) {
            // tile_a held q·scale, so dk_acc already carries the scale of ∂s/∂k.
            var gk = dk_acc[d];
            var gv = dv_acc[d];
            if (adds(2u)) {
                gk += f32(dk[at + p.k_offset + d]);
            }
            if (adds(4u)) {
                gv += dv_load(at + p.v_offset + d);
            }
            dk[at + p.k_offset + d] = Out(gk);
            dv_store(at + p.v_offset + d, gv);
        }
    }
}
