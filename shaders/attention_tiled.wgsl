// Causal attention in the FlashAttention-2 layout: the forward, and what the backward
// (attention_tiled_backward.wgsl, compiled after this file into one module) shares with it.
// Forward: one workgroup per (head, block of BR query rows). The scaled Q block stays in
// workgroup memory across the loop over key tiles of BC rows; each tile's BR×BC scores are
// computed register-blocked (4×4 a block), an online softmax keeps every row's running
// max and sum, and each invocation accumulates a 4-row block of O. Key tiles wholly above
// the diagonal are never visited and only the tiles that cross it (or the end of the
// sequence) are masked. The log-sum-exp of each row is saved for the backward pass.
// Here one invocation a row takes the softmax; attention_tiled_subgroups.wgsl has the
// forward that takes it with subgroup shuffles, where the device has them.
// Every tile in workgroup memory holds its rows as vec4s (zeros past D), so each read
// brings four floats: on software Vulkan every such read is a gather, and the reads, not
// the multiplies, set the speed. Layout and uniform: attention_layout.wgsl, included first,
// after an element prelude: q, k, v, o, dO and the gradients are `Operand`s and `Out`s
// (f32, or f16 activations), converted to f32 as they are loaded (so the tiles, the
// products and the softmax are f32 whatever the buffers hold); lse and delta are f32.

override D: u32 = 64u;   // head dimension
override BR: u32 = 32u;  // query rows a block: 16 or 32
override BC: u32 = 32u;  // key rows a tile: a multiple of 4 (the backward: 16 or 32)
const WG: u32 = 64u;     // invocations a workgroup
const MAX_OC4: u32 = 4u; // the most vec4 columns of O (or a gradient) an invocation holds
const NEG_BIG: f32 = -0x1.fffffep+127f;
// An invocation's block of O or of a gradient: row i's vec4 column cc at [i * MAX_OC4 + cc].
alias Block = array<vec4<f32>, 16>;
// Every override comes before the functions: naga 30 panics on one declared after a
// function that comes before the entry point using it.
override D4: u32 = (D + 3u) / 4u; // vec4s a row of a head
// Vec4 columns an invocation holds: D4 over the column groups of WG / (rows / 4)
// invocations each (forward and dQ: rows BR; dK and dV: rows BC), constants once the
// pipeline is made, so the loops over them unroll into registers.
override CG: u32 = WG / (BR / 4u);
override OC4: u32 = (D4 + CG - 1u) / CG;
override CG_KV: u32 = WG / (BC / 4u);
override OC4_KV: u32 = (D4 + CG_KV - 1u) / CG_KV;
// Rows lie an odd number of vec4s apart in workgroup memory (ROW4 for rows of a head,
// SROW4 for rows of scores), so invocations reading one column of neighbouring rows do
// not meet in one memory bank.
override ROW4: u32 = D4 | 1u;
override SROW4: u32 = (BC / 4u) | 1u;

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

// The dot products of a with each of b's four vectors.
fn dots(a: vec4<f32>, b: array<vec4<f32>, 4>) -> vec4<f32> {
    return vec4(dot(a, b[0]), dot(a, b[1]), dot(a, b[2]), dot(a, b[3]));
}

// Inputs of every entry point
@group(0) @binding(3) var<storage, read> q: array<Operand>;
@group(0) @binding(4) var<storage, read> k: array<Operand>;
@group(0) @binding(5) var<storage, read> v: array<Operand>;
var<workgroup> q_tile: array<vec4<f32>, BR * ROW4>; // scaled queries [BR, ROW4]
var<workgroup> k_tile: array<vec4<f32>, BC * ROW4>; // keys [BC, ROW4]
var<workgroup> v_tile: array<vec4<f32>, BC * ROW4>; // values [BC, ROW4]

// Floats col .. col + 4 of q (which 0), k (1) or v (2) in the row starting at `at` (as
// q_at gives it), zeros past D.
fn read4(which: u32, at: u32, col: u32) -> vec4<f32> {
    var x = vec4(0.0);
    for (var m = 0u; m < 4u; m++) {
        if (col + m < D) {
            switch which {
                case 0u: { x[m] = f32(q[at + col + m]); }
                case 1u: { x[m] = f32(k[at + col + m + K_OFFSET]); }
                default: { x[m] = f32(v[at + col + m + V_OFFSET]); }
            }
        }
    }
    return x;
}

// ---- forward ----
@group(0) @binding(1) var<storage, read_write> o: array<Out>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
var<workgroup> s_tile: array<vec4<f32>, BR * SROW4>; // scores, then probabilities [BR, SROW4]
var<workgroup> row_max: array<f32, BR>;
var<workgroup> row_sum: array<f32, BR>;
var<workgroup> row_scale: array<f32, BR>;        // exp(old max − new max) of this tile

// Rows row0 .. row0 + rows of q (which 0, scaled by `by`), k (1) or v (2) of the head at
// `base` into q_tile, k_tile or v_tile; zeros past t.
fn load_rows(base: u32, row0: u32, rows: u32, lid: u32, which: u32, by: f32) {
    for (var e = lid; e < rows * D4; e += WG) {
        let row = row0 + e / D4;
        var x = vec4(0.0);
        if (row < p.t) {
            x = read4(which, base + row * IN_STRIDE, (e % D4) * 4u);
        }
        let slot = (e / D4) * ROW4 + e % D4;
        switch which {
            case 0u: { q_tile[slot] = x * by; }
            case 1u: { k_tile[slot] = x; }
            default: { v_tile[slot] = x; }
        }
    }
}

// The scores of queries r .. r + 4 of the block at q0 with the 4 keys c, c + KS, c + 2·KS,
// c + 3·KS (KS = BC / 4 key sets) of the tile at k0 (in k_tile): [query][key], masked
// above the diagonal and past t. Invocations with neighbouring c read neighbouring key
// rows (in different banks) and one query (a broadcast).
fn score_block(q0: u32, k0: u32, r: u32, c: u32) -> array<vec4<f32>, 4> {
    let sets = BC / 4u;
    var acc = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    for (var d4 = 0u; d4 < D4; d4++) {
        var kd: array<vec4<f32>, 4>;
        for (var j = 0u; j < 4u; j++) {
            kd[j] = k_tile[(c + j * sets) * ROW4 + d4];
        }
        for (var i = 0u; i < 4u; i++) {
            acc[i] += dots(q_tile[(r + i) * ROW4 + d4], kd);
        }
    }
    if (k0 + BC > q0 + 1u || k0 + BC > p.t) {
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                let key = k0 + c + j * sets;
                if (key > q0 + r + i || key >= p.t) {
                    acc[i][j] = NEG_BIG;
                }
            }
        }
    }
    return acc;
}

// The scores of the tile at key row k0 into s_tile, a 4×4 block an invocation.
fn tile_scores(q0: u32, k0: u32, lid: u32) {
    let sets = BC / 4u;
    for (var b = lid; b < (BR / 4u) * sets; b += WG) {
        let r = (b / sets) * 4u;
        let c = b % sets;
        let s = score_block(q0, k0, r, c);
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                let col = c + j * sets;
                s_tile[(r + i) * SROW4 + col / 4u][col % 4u] = s[i][j];
            }
        }
    }
}

// Online softmax of one row of the tile: probabilities in place, running max and sum.
fn softmax_row(row: u32) {
    var max4 = vec4(NEG_BIG);
    for (var j4 = 0u; j4 < BC / 4u; j4++) {
        max4 = max(max4, s_tile[row * SROW4 + j4]);
    }
    let m_old = row_max[row];
    let m_new = max(m_old, max(max(max4.x, max4.y), max(max4.z, max4.w)));
    var sum4 = vec4(0.0);
    for (var j4 = 0u; j4 < BC / 4u; j4++) {
        let e = exp(s_tile[row * SROW4 + j4] - m_new);
        s_tile[row * SROW4 + j4] = e;
        sum4 += e;
    }
    let scale = exp(m_old - m_new);
    row_scale[row] = scale;
    row_sum[row] = row_sum[row] * scale + dot(sum4, vec4(1.0));
    row_max[row] = m_new;
}

// acc += P·V for this invocation's rows r0 .. r0 + 4 and vec4 columns c0, c0 + CG, ...
// (P in s_tile, V in v_tile).
fn add_p_v(acc: ptr<function, Block>, c0: u32, r0: u32) {
    for (var j4 = 0u; j4 < BC / 4u; j4++) {
        var pr: array<vec4<f32>, 4>; // rows r0 + i, keys 4·j4 .. 4·j4 + 4
        for (var i = 0u; i < 4u; i++) {
            pr[i] = s_tile[(r0 + i) * SROW4 + j4];
        }
        for (var jj = 0u; jj < 4u; jj++) {
            let key = (j4 * 4u + jj) * ROW4;
            for (var cc = 0u; cc < OC4; cc++) {
                // Columns past D4 read padding or the next row: never stored.
                let vv = v_tile[min(key + c0 + cc * CG, BC * ROW4 - 1u)];
                for (var i = 0u; i < 4u; i++) {
                    (*acc)[i * MAX_OC4 + cc] += pr[i][jj] * vv;
                }
            }
        }
    }
}

// O's rows r0 .. r0 + 4 of this invocation's block scaled by the tile's row_scale.
fn rescale_o(acc: ptr<function, Block>, r0: u32) {
    for (var i = 0u; i < 4u; i++) {
        let scale = row_scale[r0 + i];
        for (var cc = 0u; cc < OC4; cc++) {
            (*acc)[i * MAX_OC4 + cc] *= scale;
        }
    }
}

// Writes this invocation's block of O (rows q0 + r0 .. + 4, vec4 columns c0, c0 + CG, ...)
// divided by the rows' sums in row_sum.
fn store_o(bh: u32, q0: u32, c0: u32, r0: u32, acc: ptr<function, Block>) {
    for (var i = 0u; i < 4u; i++) {
        let row = q0 + r0 + i;
        let l = row_sum[r0 + i];
        for (var cc = 0u; cc < OC4; cc++) {
            let col = (c0 + cc * CG) * 4u;
            for (var m = 0u; m < 4u; m++) {
                if (row < p.t && col + m < D) {
                    o[o_at(bh, row) + col + m] = Out((*acc)[i * MAX_OC4 + cc][m] / l);
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn attention_forward_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let q0 = wg.x * BR;
    let base = head_at(bh, IN_STRIDE);
    // This invocation's O block: rows r0 .. r0 + 4, vec4 columns c0, c0 + CG, ...
    // Neighbouring invocations take neighbouring columns of the same rows: their reads of
    // a V row are one contiguous run, their reads of P one broadcast.
    let c0 = lid % CG;
    let r0 = (lid / CG) * 4u;
    var acc: Block;
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
        rescale_o(&acc, r0);
        add_p_v(&acc, c0, r0);
    }
    workgroupBarrier();
    store_o(bh, q0, c0, r0, &acc);
    if (lid < BR && q0 + lid < p.t) {
        lse[bh * p.t + q0 + lid] = row_max[lid] + log(row_sum[lid]);
    }
}
