// Causal attention in the FlashAttention-2 layout, forward and backward.
// Forward: one workgroup per (head, block of BR query rows). The scaled Q block stays in
// workgroup memory across the loop over key tiles of BC rows; each tile's BR×BC scores are
// computed register-blocked (4×4 a block), an online softmax keeps every row's running
// max and sum, and each invocation accumulates a 4-row block of O. Key tiles wholly above
// the diagonal are never visited and only the tiles that cross it (or the end of the
// sequence) are masked. The log-sum-exp of each row is saved for the backward pass.
// Backward, no atomics: the probabilities are recomputed from the saved log-sum-exp, tile
// by tile, and each gradient is summed by the one workgroup that owns its rows.
//   dQ: a workgroup per block of BR query rows, over the key tiles up to the diagonal;
//   dK and dV: a workgroup per block of BC key rows, over the query tiles from the diagonal;
//   or all three in one pass (attention_backward_head_tiled): a workgroup per head over
//   its key blocks, each score tile computed once and dQ summed in place.
// Score tiles are register-blocked there too and the gradient blocks accumulated in
// registers (4 rows × OC columns an invocation). delta = rowsum(dO ∘ O) comes from
// attention.wgsl's attention_backward_delta.
// Layout and uniform: attention_layout.wgsl, included before this file.

override D: u32 = 64u;   // head dimension
override BR: u32 = 32u;  // query rows a block: 16 or 32
override BC: u32 = 32u;  // key rows a tile: a multiple of 4 (the backward: 16 or 32)
const WG: u32 = 64u;     // invocations a workgroup
const MAX_OC: u32 = 16u; // the most O (or gradient) columns an invocation holds
const NEG_BIG: f32 = -3.4028235e38;
// Columns an invocation holds: D over the column groups of WG / (rows / 4) invocations
// each (forward and dQ: rows BR; dK and dV: rows BC), constants once the pipeline is made,
// so the loops over them unroll into registers. Every override is declared here, before
// the functions: naga 30 panics on an override declared after a function that comes
// before the entry point using it.
override CG: u32 = WG / (BR / 4u);
override OC: u32 = (D + CG - 1u) / CG;
override CG_KV: u32 = WG / (BC / 4u);
override OC_KV: u32 = (D + CG_KV - 1u) / CG_KV;
// Rows are D + 1 floats apart in workgroup memory (score, P and dS rows, and the rows of
// a transposed key or value tile, BC + 1), so invocations reading or writing one column of
// different rows do not meet in one memory bank.
override ROW: u32 = D + 1u;
override SROW: u32 = BC + 1u;

// The layout (attention_layout.wgsl) as constants: the uniform's heads, in_stride,
// out_stride, k_offset and v_offset, set when the pipeline is made.
override HEADS: u32 = 1u;
override IN_STRIDE: u32 = 64u;
override OUT_STRIDE: u32 = 64u;
override K_OFFSET: u32 = 0u;
override V_OFFSET: u32 = 0u;

// The first float of head bh's position 0 in rows `stride` floats apart.
fn head_at(bh: u32, stride: u32) -> u32 {
    return (bh / HEADS) * p.t * stride + (bh % HEADS) * D;
}

// The first float of position `row` of head bh in q (and dq; k and v at their offsets).
fn q_at(bh: u32, row: u32) -> u32 {
    return head_at(bh, IN_STRIDE) + row * IN_STRIDE;
}

// The first float of position `row` of head bh in o and d_o.
fn o_at(bh: u32, row: u32) -> u32 {
    return head_at(bh, OUT_STRIDE) + row * OUT_STRIDE;
}

// Whether the gradient of bit 1 (q), 2 (k) or 4 (v) is added to what its buffer holds.
fn adds(bit: u32) -> bool {
    return (p.accumulate & bit) != 0u;
}

// Inputs of every entry point
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
var<workgroup> q_tile: array<f32, BR * ROW>;     // scaled queries [BR, D]

// ---- forward ----
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
var<workgroup> kv_tile: array<f32, BC * ROW + D>; // keys [D, SROW] (transposed), then values [BC, ROW]
var<workgroup> s_tile: array<f32, BR * SROW>;    // scores, then probabilities [BR, SROW]
var<workgroup> row_max: array<f32, BR>;
var<workgroup> row_sum: array<f32, BR>;
var<workgroup> row_scale: array<f32, BR>;        // exp(old max − new max) of this tile

// Rows row0 .. row0 + rows of q (which 0), k (1) or v (2) of the head at `base` into
// their tile scaled by `by`, zeros past t. Keys go in transposed, [D, SROW] (see
// tile_scores); queries and values row by row, [rows, ROW].
fn load_rows(base: u32, row0: u32, rows: u32, lid: u32, which: u32, by: f32) {
    for (var e = lid; e < rows * D; e += WG) {
        let row = row0 + e / D;
        var x = 0.0;
        if (row < p.t) {
            let at = base + row * IN_STRIDE + e % D;
            switch which {
                case 0u: { x = q[at]; }
                case 1u: { x = k[at + K_OFFSET]; }
                default: { x = v[at + V_OFFSET]; }
            }
        }
        let slot = (e / D) * ROW + e % D;
        switch which {
            case 0u: { q_tile[slot] = x * by; }
            case 1u: { kv_tile[(e % D) * SROW + e / D] = x; }
            default: { kv_tile[slot] = x; }
        }
    }
}

// The scores of the tile at key row k0, masked above the diagonal and past t. Each
// invocation takes 4 query rows and the 4 keys c, c + KS, c + 2·KS, c + 3·KS (KS = BC / 4
// key sets): neighbouring invocations take neighbouring keys, so their reads of the
// transposed key tile are one contiguous run and their reads of a query one broadcast.
fn tile_scores(q0: u32, k0: u32, lid: u32) {
    let masked = k0 + BC > q0 + 1u || k0 + BC > p.t;
    let sets = BC / 4u;
    for (var b = lid; b < (BR / 4u) * sets; b += WG) {
        let r = (b / sets) * 4u;
        let c = b % sets;
        var acc = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        for (var d = 0u; d < D; d++) {
            let at = d * SROW + c;
            let kd = vec4(kv_tile[at], kv_tile[at + sets], kv_tile[at + 2u * sets],
                          kv_tile[at + 3u * sets]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] += q_tile[(r + i) * ROW + d] * kd;
            }
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                let col = c + j * sets;
                var s = acc[i][j];
                if (masked && (k0 + col > q0 + r + i || k0 + col >= p.t)) {
                    s = NEG_BIG;
                }
                s_tile[(r + i) * SROW + col] = s;
            }
        }
    }
}

// Online softmax of one row of the tile: probabilities in place, running max and sum.
fn softmax_row(row: u32) {
    var tile_max = NEG_BIG;
    for (var j = 0u; j < BC; j++) {
        tile_max = max(tile_max, s_tile[row * SROW + j]);
    }
    let m_old = row_max[row];
    let m_new = max(m_old, tile_max);
    var sum = 0.0;
    for (var j = 0u; j < BC; j++) {
        let e = exp(s_tile[row * SROW + j] - m_new);
        s_tile[row * SROW + j] = e;
        sum += e;
    }
    let scale = exp(m_old - m_new);
    row_scale[row] = scale;
    row_sum[row] = row_sum[row] * scale + sum;
    row_max[row] = m_new;
}

@compute @workgroup_size(WG)
fn attention_forward_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let q0 = wg.x * BR;
    let base = head_at(bh, IN_STRIDE);
    // This invocation's O block: rows r0 .. r0 + 4, columns c0, c0 + CG, c0 + 2·CG, ...
    // Neighbouring invocations take neighbouring columns of the same rows: their reads of
    // a V row are one contiguous run, their reads of P one broadcast.
    let c0 = lid % CG;
    let r0 = (lid / CG) * 4u;
    var acc: array<vec4<f32>, MAX_OC>;
    load_rows(base, q0, BR, lid, 0u, p.scale);
    if (lid < BR) {
        row_max[lid] = NEG_BIG;
        row_sum[lid] = 0.0;
    }
    let keys = min(q0 + BR, p.t); // causal: the block needs keys 0 .. its last query
    for (var k0 = 0u; k0 < keys; k0 += BC) {
        workgroupBarrier();
        load_rows(base, k0, BC, lid, 1u, 1.0);
        workgroupBarrier();
        tile_scores(q0, k0, lid);
        workgroupBarrier();
        load_rows(base, k0, BC, lid, 2u, 1.0);
        if (lid < BR) {
            softmax_row(lid);
        }
        workgroupBarrier();
        let scale = vec4(row_scale[r0], row_scale[r0 + 1u], row_scale[r0 + 2u], row_scale[r0 + 3u]);
        for (var cc = 0u; cc < OC; cc++) {
            acc[cc] *= scale;
        }
        for (var j = 0u; j < BC; j++) {
            let pr = vec4(s_tile[r0 * SROW + j], s_tile[(r0 + 1u) * SROW + j],
                          s_tile[(r0 + 2u) * SROW + j], s_tile[(r0 + 3u) * SROW + j]);
            for (var cc = 0u; cc < OC; cc++) {
                // Columns past D read the next row's first floats (or padding): never stored.
                acc[cc] += pr * kv_tile[min(j * ROW + c0 + cc * CG, BC * ROW - 1u)];
            }
        }
    }
    workgroupBarrier();
    for (var i = 0u; i < 4u; i++) {
        let row = q0 + r0 + i;
        if (row < p.t) {
            let l = row_sum[r0 + i];
            for (var cc = 0u; cc < OC; cc++) {
                let col = c0 + cc * CG;
                if (col < D) {
                    o[o_at(bh, row) + col] = acc[cc][i] / l;
                }
            }
        }
    }
    if (lid < BR && q0 + lid < p.t) {
        lse[bh * p.t + q0 + lid] = row_max[lid] + log(row_sum[lid]);
    }
}

// ---- backward ----
@group(0) @binding(6) var<storage, read> d_o: array<f32>;
@group(0) @binding(7) var<storage, read> lse_in: array<f32>; // of the scaled scores
@group(0) @binding(8) var<storage, read> delta: array<f32>;
var<workgroup> do_tile: array<f32, BR * ROW>;  // output gradients [BR, D]
var<workgroup> k_tile: array<f32, BC * ROW + D>; // keys [BC, ROW], or [D, SROW] transposed
var<workgroup> v_tile: array<f32, BC * ROW + D>; // values [D, SROW] (transposed)
var<workgroup> p_tile: array<f32, BR * SROW>;  // probabilities (dK and dV only) [BR, SROW]
var<workgroup> ds_tile: array<f32, BR * SROW>; // dS = P ∘ (dP − delta) [BR, SROW]
var<workgroup> lse_rows: array<f32, BR>;
var<workgroup> delta_rows: array<f32, BR>;

// Rows row0 .. row0 + rows of q and d_o (which 0) or k and v (which 1) into their tiles,
// zeros past t; queries scaled. Values go in transposed, and keys when `k_transposed` (see
// tile_gradients). Row statistics too, for query rows.
fn load_pair(bh: u32, row0: u32, rows: u32, lid: u32, which: u32, k_transposed: bool) {
    let base = head_at(bh, IN_STRIDE);
    let o_base = head_at(bh, OUT_STRIDE);
    for (var e = lid; e < rows * D; e += WG) {
        let row = row0 + e / D;
        let slot = (e / D) * ROW + e % D;
        let slot_t = (e % D) * SROW + e / D;
        var a = 0.0;
        var b = 0.0;
        if (row < p.t) {
            let at = base + row * IN_STRIDE + e % D;
            if (which == 0u) {
                a = q[at] * p.scale;
                b = d_o[o_base + row * OUT_STRIDE + e % D];
            } else {
                a = k[at + K_OFFSET];
                b = v[at + V_OFFSET];
            }
        }
        if (which == 0u) {
            q_tile[slot] = a;
            do_tile[slot] = b;
        } else {
            k_tile[select(slot, slot_t, k_transposed)] = a;
            v_tile[slot_t] = b;
        }
    }
    if (which == 0u && lid < rows) {
        let row = row0 + lid;
        var l = 0.0;
        var dl = 0.0;
        if (row < p.t) {
            l = lse_in[bh * p.t + row];
            dl = delta[bh * p.t + row];
        }
        lse_rows[lid] = l;
        delta_rows[lid] = dl;
    }
}

// Key `key`'s element d from k_tile, as load_pair laid it out.
fn key_at(key: u32, d: u32, k_transposed: bool) -> f32 {
    if (k_transposed) {
        return k_tile[d * SROW + key];
    }
    return k_tile[key * ROW + d];
}

// The probabilities and dS of the tile of queries i0 and keys k0: P into p_tile when
// `keep_p`, dS into ds_tile, zero above the diagonal and past t. Each invocation takes 4
// query rows and the 4 keys c, c + KS, c + 2·KS, c + 3·KS (KS = BC / 4), as tile_scores
// does: its reads of the transposed value (and key) tiles run along neighbouring keys.
fn tile_gradients(i0: u32, k0: u32, lid: u32, keep_p: bool, k_transposed: bool) {
    let masked = k0 + BC > i0 + 1u || k0 + BC > p.t || i0 + BR > p.t;
    let sets = BC / 4u;
    for (var b = lid; b < (BR / 4u) * sets; b += WG) {
        let r = (b / sets) * 4u;
        let c = b % sets;
        var s = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        var dp = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        for (var d = 0u; d < D; d++) {
            let kd = vec4(key_at(c, d, k_transposed), key_at(c + sets, d, k_transposed),
                          key_at(c + 2u * sets, d, k_transposed),
                          key_at(c + 3u * sets, d, k_transposed));
            let at = d * SROW + c;
            let vd = vec4(v_tile[at], v_tile[at + sets], v_tile[at + 2u * sets],
                          v_tile[at + 3u * sets]);
            for (var i = 0u; i < 4u; i++) {
                s[i] += q_tile[(r + i) * ROW + d] * kd;
                dp[i] += do_tile[(r + i) * ROW + d] * vd;
            }
        }
        for (var i = 0u; i < 4u; i++) {
            let prob = exp(s[i] - lse_rows[r + i]);
            let ds = prob * (dp[i] - delta_rows[r + i]);
            for (var j = 0u; j < 4u; j++) {
                let query = i0 + r + i;
                let col = c + j * sets;
                let key = k0 + col;
                let off = masked && (key > query || key >= p.t || query >= p.t);
                if (keep_p) {
                    p_tile[(r + i) * SROW + col] = select(prob[j], 0.0, off);
                }
                ds_tile[(r + i) * SROW + col] = select(ds[j], 0.0, off);
            }
        }
    }
}

// acc += dS·K for this invocation's query rows r0 .. r0 + 4 and columns c0, c0 + CG, ...
// of the tile (K row by row in k_tile).
fn add_ds_k(acc: ptr<function, array<vec4<f32>, MAX_OC>>, c0: u32, r0: u32) {
    for (var j = 0u; j < BC; j++) {
        let ds = vec4(ds_tile[r0 * SROW + j], ds_tile[(r0 + 1u) * SROW + j],
                      ds_tile[(r0 + 2u) * SROW + j], ds_tile[(r0 + 3u) * SROW + j]);
        for (var cc = 0u; cc < OC; cc++) {
            // Columns past D read padding or the next row: never stored.
            (*acc)[cc] += ds * k_tile[min(j * ROW + c0 + cc * CG, BC * ROW - 1u)];
        }
    }
}

// dq (laid out as q), of the dQ kernel and the one-pass kernel
@group(0) @binding(9) var<storage, read_write> dq: array<f32>;

// Writes dq·scale of the query tile at i0 as acc holds it (this invocation's rows r0 ..
// r0 + 4, columns c0, c0 + CG, ...), added to what dq holds when `adding`.
fn store_dq(bh: u32, i0: u32, c0: u32, r0: u32, acc: ptr<function, array<vec4<f32>, MAX_OC>>,
            adding: bool) {
    for (var i = 0u; i < 4u; i++) {
        let row = i0 + r0 + i;
        for (var cc = 0u; cc < OC; cc++) {
            let col = c0 + cc * CG;
            if (row < p.t && col < D) {
                let at = q_at(bh, row) + col;
                var g = (*acc)[cc][i] * p.scale;
                if (adding) {
                    g += dq[at];
                }
                dq[at] = g;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn attention_backward_dq_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let i0 = wg.x * BR;
    let c0 = lid % CG; // neighbouring columns, as in the forward
    let r0 = (lid / CG) * 4u;
    var acc: array<vec4<f32>, MAX_OC>;
    load_pair(bh, i0, BR, lid, 0u, false);
    let keys = min(i0 + BR, p.t);
    for (var k0 = 0u; k0 < keys; k0 += BC) {
        workgroupBarrier();
        // K row by row: the dQ loop below reads it along columns.
        load_pair(bh, k0, BC, lid, 1u, false);
        workgroupBarrier();
        tile_gradients(i0, k0, lid, false, false);
        workgroupBarrier();
        add_ds_k(&acc, c0, r0);
    }
    store_dq(bh, i0, c0, r0, &acc, adds(1u));
}

// dk, dv (laid out as k and v)
@group(0) @binding(1) var<storage, read_write> dk: array<f32>;
@group(0) @binding(2) var<storage, read_write> dv: array<f32>;

// dV += Pᵀ·dO and dK += dSᵀ·Q for this invocation's key rows r0 .. r0 + 4 and columns
// c0, c0 + CG_KV, ... of the block.
fn add_kv_gradients(dk_acc: ptr<function, array<vec4<f32>, MAX_OC>>,
                    dv_acc: ptr<function, array<vec4<f32>, MAX_OC>>, c0: u32, r0: u32) {
    for (var i = 0u; i < BR; i++) {
        let pr = vec4(p_tile[i * SROW + r0], p_tile[i * SROW + r0 + 1u],
                      p_tile[i * SROW + r0 + 2u], p_tile[i * SROW + r0 + 3u]);
        let ds = vec4(ds_tile[i * SROW + r0], ds_tile[i * SROW + r0 + 1u],
                      ds_tile[i * SROW + r0 + 2u], ds_tile[i * SROW + r0 + 3u]);
        for (var cc = 0u; cc < OC_KV; cc++) {
            let at = min(i * ROW + c0 + cc * CG_KV, BR * ROW - 1u);
            (*dv_acc)[cc] += pr * do_tile[at];
            (*dk_acc)[cc] += ds * q_tile[at]; // q_tile holds q·scale: dK's scale is in
        }
    }
}

// Writes (or adds) the block of key rows k0 .. k0 + BC's dK and dV, as add_kv_gradients
// left them in this invocation's registers.
fn store_kv_gradients(bh: u32, k0: u32, c0: u32, r0: u32,
                      dk_acc: ptr<function, array<vec4<f32>, MAX_OC>>,
                      dv_acc: ptr<function, array<vec4<f32>, MAX_OC>>) {
    for (var j = 0u; j < 4u; j++) {
        let row = k0 + r0 + j;
        for (var cc = 0u; cc < OC_KV; cc++) {
            let col = c0 + cc * CG_KV;
            if (row < p.t && col < D) {
                let at = q_at(bh, row) + col;
                var gk = (*dk_acc)[cc][j];
                var gv = (*dv_acc)[cc][j];
                if (adds(2u)) {
                    gk += dk[at + K_OFFSET];
                }
                if (adds(4u)) {
                    gv += dv[at + V_OFFSET];
                }
                dk[at + K_OFFSET] = gk;
                dv[at + V_OFFSET] = gv;
            }
        }
    }
}

// One query tile's part in the gradients of the key block at k0 (the keys already in
// k_tile, transposed when `k_transposed`): loads the queries i0 .. i0 + BR and their dO,
// forms P and dS, and adds to this invocation's dK and dV rows r0 .. r0 + 4. P and dS
// stay in their tiles for the caller.
fn query_tile_for_keys(bh: u32, i0: u32, k0: u32, lid: u32, k_transposed: bool, c0: u32, r0: u32,
                       dk_acc: ptr<function, array<vec4<f32>, MAX_OC>>,
                       dv_acc: ptr<function, array<vec4<f32>, MAX_OC>>) {
    workgroupBarrier();
    load_pair(bh, i0, BR, lid, 0u, k_transposed);
    workgroupBarrier();
    tile_gradients(i0, k0, lid, true, k_transposed);
    workgroupBarrier();
    add_kv_gradients(dk_acc, dv_acc, c0, r0);
}

@compute @workgroup_size(WG)
fn attention_backward_dkv_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let k0 = wg.x * BC;
    let c0 = lid % CG_KV; // neighbouring columns, as in the forward
    let r0 = (lid / CG_KV) * 4u; // this invocation's key rows, within the block
    var dk_acc: array<vec4<f32>, MAX_OC>;
    var dv_acc: array<vec4<f32>, MAX_OC>;
    load_pair(bh, k0, BC, lid, 1u, true);
    // causal: the query tiles from the one holding this block's first key
    for (var i0 = (k0 / BR) * BR; i0 < p.t; i0 += BR) {
        query_tile_for_keys(bh, i0, k0, lid, true, c0, r0, &dk_acc, &dv_acc);
    }
    store_kv_gradients(bh, k0, c0, r0, &dk_acc, &dv_acc);
}

// dq, dk and dv in one pass: a workgroup per head walks its key blocks in order, each over
// the query tiles that see it, so each score tile is computed once (five products, where
// the dQ and dK/dV kernels take seven) and the dQ rows, which only this workgroup writes,
// are summed in place tile by tile. Few workgroups: for many heads, or few cores.

@compute @workgroup_size(WG)
fn attention_backward_head_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let c0 = lid % CG; // dQ tile: query rows r0 .. r0 + 4, columns c0, c0 + CG, ...
    let r0 = (lid / CG) * 4u;
    let kc0 = lid % CG_KV; // dK and dV block: key rows kr0 .. kr0 + 4, columns kc0, ...
    let kr0 = (lid / CG_KV) * 4u;
    for (var k0 = 0u; k0 < p.t; k0 += BC) {
        var dk_acc: array<vec4<f32>, MAX_OC>;
        var dv_acc: array<vec4<f32>, MAX_OC>;
        workgroupBarrier();
        load_pair(bh, k0, BC, lid, 1u, false); // K row by row: add_ds_k reads it so
        for (var i0 = (k0 / BR) * BR; i0 < p.t; i0 += BR) {
            query_tile_for_keys(bh, i0, k0, lid, false, kc0, kr0, &dk_acc, &dv_acc);
            var dq_acc: array<vec4<f32>, MAX_OC>;
            add_ds_k(&dq_acc, c0, r0);
            // The first key block sees every query tile: it writes (or adds to) dq, the
            // later blocks add to what it wrote.
            store_dq(bh, i0, c0, r0, &dq_acc, k0 > 0u || adds(1u));
        }
        store_kv_gradients(bh, k0, kc0, kr0, &dk_acc, &dv_acc);
    }
}
