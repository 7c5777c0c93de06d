// Causal attention forward in the FlashAttention-2 layout: one workgroup per (head, block
// of BR query rows). The scaled Q block stays in workgroup memory across the loop over key
// tiles of BC rows; each tile's BR×BC scores are computed register-blocked (4×4 a block),
// an online softmax keeps every row's running max and sum, and each invocation accumulates
// a 4-row block of O. Key tiles wholly above the diagonal are never visited and only the
// tiles that cross it (or the end of the sequence) are masked. The log-sum-exp of each row
// is saved for the backward pass.
// Layout and uniform: attention_layout.wgsl, included before this file.

override D: u32 = 64u;   // head dimension
override BR: u32 = 32u;  // query rows a workgroup: 16 or 32
override BC: u32 = 32u;  // key rows a tile, a multiple of 4
const WG: u32 = 64u;     // invocations a workgroup
const MAX_OC: u32 = 16u; // the most O columns an invocation holds
// O columns an invocation holds: D over the column groups, WG / (BR / 4) of them (a
// constant once the pipeline is made, so the loops over it unroll into registers).
override CG: u32 = WG / (BR / 4u);
override OC: u32 = (D + CG - 1u) / CG;
const NEG_BIG: f32 = -3.4028235e38;

@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;

// Rows are D + 1 floats apart, so invocations reading one column of different rows do
// not meet in one memory bank.
override ROW: u32 = D + 1u;
var<workgroup> q_tile: array<f32, BR * ROW>;     // scaled queries [BR, D]
var<workgroup> kv_tile: array<f32, BC * ROW>;    // keys, then values [BC, D]
var<workgroup> s_tile: array<f32, BR * BC>;      // scores, then probabilities [BR, BC]
var<workgroup> row_max: array<f32, BR>;
var<workgroup> row_sum: array<f32, BR>;
var<workgroup> row_scale: array<f32, BR>;        // exp(old max − new max) of this tile

// Rows row0 .. row0 + rows of q (which 0), k (1) or v (2) of the head at `base` into
// their tile scaled by `by`, zeros past t.
fn load_rows(base: u32, row0: u32, rows: u32, lid: u32, which: u32, by: f32) {
    for (var e = lid; e < rows * D; e += WG) {
        let row = row0 + e / D;
        var x = 0.0;
        if (row < p.t) {
            let at = base + row * p.in_stride + e % D;
            switch which {
                case 0u: { x = q[at]; }
                case 1u: { x = k[at + p.k_offset]; }
                default: { x = v[at + p.v_offset]; }
            }
        }
        let slot = (e / D) * ROW + e % D;
        if (which == 0u) {
            q_tile[slot] = x * by;
        } else {
            kv_tile[slot] = x;
        }
    }
}

// The scores of the tile at key row k0: 4×4 blocks, masked above the diagonal and past t.
fn tile_scores(q0: u32, k0: u32, lid: u32) {
    let masked = k0 + BC > q0 + 1u || k0 + BC > p.t;
    let col_blocks = BC / 4u;
    for (var b = lid; b < (BR / 4u) * col_blocks; b += WG) {
        let r = (b / col_blocks) * 4u;
        let c = (b % col_blocks) * 4u;
        var acc = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        for (var d = 0u; d < D; d++) {
            let kd = vec4(kv_tile[c * ROW + d], kv_tile[(c + 1u) * ROW + d],
                          kv_tile[(c + 2u) * ROW + d], kv_tile[(c + 3u) * ROW + d]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] += q_tile[(r + i) * ROW + d] * kd;
            }
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                let key = k0 + c + j;
                var s = acc[i][j];
                if (masked && (key > q0 + r + i || key >= p.t)) {
                    s = NEG_BIG;
                }
                s_tile[(r + i) * BC + c + j] = s;
            }
        }
    }
}

// Online softmax of one row of the tile: probabilities in place, running max and sum.
fn softmax_row(row: u32) {
    var tile_max = NEG_BIG;
    for (var j = 0u; j < BC; j++) {
        tile_max = max(tile_max, s_tile[row * BC + j]);
    }
    let m_old = row_max[row];
    let m_new = max(m_old, tile_max);
    var sum = 0.0;
    for (var j = 0u; j < BC; j++) {
        let e = exp(s_tile[row * BC + j] - m_new);
        s_tile[row * BC + j] = e;
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
    let base = head_at(bh, p.in_stride);
    // This invocation's O block: rows r0 .. r0 + 4, columns c0, c0 + CG, c0 + 2·CG, ...
    let row_groups = BR / 4u;
    let r0 = (lid % row_groups) * 4u;
    let c0 = lid / row_groups;
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
            let pr = vec4(s_tile[r0 * BC + j], s_tile[(r0 + 1u) * BC + j],
                          s_tile[(r0 + 2u) * BC + j], s_tile[(r0 + 3u) * BC + j]);
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
