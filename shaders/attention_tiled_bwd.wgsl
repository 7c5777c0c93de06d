// Causal attention backward in the FlashAttention-2 layout, no atomics: the probabilities
// are recomputed from the saved log-sum-exp, tile by tile, and each gradient is summed by
// the one workgroup that owns its rows.
//   dQ: a workgroup per block of BR query rows, over the key tiles up to the diagonal;
//   dK and dV: a workgroup per block of BC key rows, over the query tiles from the diagonal.
// Score tiles are computed register-blocked (4×4 a block) and the gradient blocks are
// accumulated in registers (4 rows × OC columns an invocation). delta = rowsum(dO ∘ O)
// comes from attention.wgsl's attention_backward_delta.
// Layout and uniform: attention_layout.wgsl, included before this file. lse is of the
// scaled scores, as the forward saves it.

override D: u32 = 64u;   // head dimension
override BR: u32 = 16u;  // query rows a tile: 16 or 32
override BC: u32 = 32u;  // key rows a tile: 16 or 32
const WG: u32 = 64u;     // invocations a workgroup
const MAX_OC: u32 = 16u; // the most gradient columns an invocation holds
const NEG_BIG: f32 = -3.4028235e38;
// Gradient columns an invocation holds: D over the column groups of WG / (rows / 4)
// invocations each (dQ: rows BR; dK and dV: rows BC), constants once the pipeline is made.
// Every override is declared here, before the functions: naga 30 panics on an override
// declared after a function that comes before the entry point using it.
override CG_Q: u32 = WG / (BR / 4u);
override OC_Q: u32 = (D + CG_Q - 1u) / CG_Q;
override CG_KV: u32 = WG / (BC / 4u);
override OC_KV: u32 = (D + CG_KV - 1u) / CG_KV;

@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@group(0) @binding(6) var<storage, read> d_o: array<f32>;
@group(0) @binding(7) var<storage, read> lse: array<f32>;
@group(0) @binding(8) var<storage, read> delta: array<f32>;

// Rows are D + 1 floats apart, so invocations reading one column of different rows do
// not meet in one memory bank.
override ROW: u32 = D + 1u;
var<workgroup> q_tile: array<f32, BR * ROW>;   // scaled queries [BR, D]
var<workgroup> do_tile: array<f32, BR * ROW>;  // output gradients [BR, D]
var<workgroup> k_tile: array<f32, BC * ROW>;   // keys [BC, D]
var<workgroup> v_tile: array<f32, BC * ROW>;   // values [BC, D]
var<workgroup> p_tile: array<f32, BR * BC>;    // probabilities (dK and dV only)
var<workgroup> ds_tile: array<f32, BR * BC>;   // dS = P ∘ (dP − delta)
var<workgroup> lse_rows: array<f32, BR>;
var<workgroup> delta_rows: array<f32, BR>;

// Rows row0 .. row0 + rows of q and d_o (which 0) or k and v (which 1) into their tiles,
// zeros past t; queries scaled. Row statistics too, for query rows.
fn load_pair(bh: u32, row0: u32, rows: u32, lid: u32, which: u32) {
    let base = head_at(bh, p.in_stride);
    let o_base = head_at(bh, p.out_stride);
    for (var e = lid; e < rows * D; e += WG) {
        let row = row0 + e / D;
        let slot = (e / D) * ROW + e % D;
        var a = 0.0;
        var b = 0.0;
        if (row < p.t) {
            let at = base + row * p.in_stride + e % D;
            if (which == 0u) {
                a = q[at] * p.scale;
                b = d_o[o_base + row * p.out_stride + e % D];
            } else {
                a = k[at + p.k_offset];
                b = v[at + p.v_offset];
            }
        }
        if (which == 0u) {
            q_tile[slot] = a;
            do_tile[slot] = b;
        } else {
            k_tile[slot] = a;
            v_tile[slot] = b;
        }
    }
    if (which == 0u && lid < rows) {
        let row = row0 + lid;
        var l = 0.0;
        var dl = 0.0;
        if (row < p.t) {
            l = lse[bh * p.t + row];
            dl = delta[bh * p.t + row];
        }
        lse_rows[lid] = l;
        delta_rows[lid] = dl;
    }
}

// The probabilities and dS of the tile of queries i0 and keys k0, 4×4 blocks: P into
// p_tile when `keep_p`, dS into ds_tile. Zero above the diagonal and past t.
fn tile_gradients(i0: u32, k0: u32, lid: u32, keep_p: bool) {
    let masked = k0 + BC > i0 + 1u || k0 + BC > p.t || i0 + BR > p.t;
    let col_blocks = BC / 4u;
    for (var b = lid; b < (BR / 4u) * col_blocks; b += WG) {
        let r = (b / col_blocks) * 4u;
        let c = (b % col_blocks) * 4u;
        var s = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        var dp = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        for (var d = 0u; d < D; d++) {
            let kd = vec4(k_tile[c * ROW + d], k_tile[(c + 1u) * ROW + d],
                          k_tile[(c + 2u) * ROW + d], k_tile[(c + 3u) * ROW + d]);
            let vd = vec4(v_tile[c * ROW + d], v_tile[(c + 1u) * ROW + d],
                          v_tile[(c + 2u) * ROW + d], v_tile[(c + 3u) * ROW + d]);
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
                let key = k0 + c + j;
                let off = masked && (key > query || key >= p.t || query >= p.t);
                if (keep_p) {
                    p_tile[(r + i) * BC + c + j] = select(prob[j], 0.0, off);
                }
                ds_tile[(r + i) * BC + c + j] = select(ds[j], 0.0, off);
            }
        }
    }
}

// dq (laid out as q)
@group(0) @binding(1) var<storage, read_write> dq: array<f32>;

@compute @workgroup_size(WG)
fn attention_backward_dq_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let i0 = wg.x * BR;
    let row_groups = BR / 4u;
    let r0 = (lid % row_groups) * 4u;
    let c0 = lid / row_groups;
    var acc: array<vec4<f32>, MAX_OC>;
    load_pair(bh, i0, BR, lid, 0u);
    let keys = min(i0 + BR, p.t);
    for (var k0 = 0u; k0 < keys; k0 += BC) {
        workgroupBarrier();
        load_pair(bh, k0, BC, lid, 1u);
        workgroupBarrier();
        tile_gradients(i0, k0, lid, false);
        workgroupBarrier();
        for (var j = 0u; j < BC; j++) {
            let ds = vec4(ds_tile[r0 * BC + j], ds_tile[(r0 + 1u) * BC + j],
                          ds_tile[(r0 + 2u) * BC + j], ds_tile[(r0 + 3u) * BC + j]);
            for (var cc = 0u; cc < OC_Q; cc++) {
                // Columns past D read padding or the next row: never stored.
                acc[cc] += ds * k_tile[min(j * ROW + c0 + cc * CG_Q, BC * ROW - 1u)];
            }
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let row = i0 + r0 + i;
        for (var cc = 0u; cc < OC_Q; cc++) {
            let col = c0 + cc * CG_Q;
            if (row < p.t && col < D) {
                let at = q_at(bh, row) + col;
                var g = acc[cc][i] * p.scale;
                if (adds(1u)) {
                    g += dq[at];
                }
                dq[at] = g;
            }
        }
    }
}

// dk, dv (laid out as k and v)
@group(0) @binding(1) var<storage, read_write> dk: array<f32>;
@group(0) @binding(2) var<storage, read_write> dv: array<f32>;

@compute @workgroup_size(WG)
fn attention_backward_dkv_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let k0 = wg.x * BC;
    let row_groups = BC / 4u;
    let r0 = (lid % row_groups) * 4u; // this invocation's key rows, within the block
    let c0 = lid / row_groups;
    var dk_acc: array<vec4<f32>, MAX_OC>;
    var dv_acc: array<vec4<f32>, MAX_OC>;
    load_pair(bh, k0, BC, lid, 1u);
    // causal: the query tiles from the one holding this block's first key
    for (var i0 = (k0 / BR) * BR; i0 < p.t; i0 += BR) {
        workgroupBarrier();
        load_pair(bh, i0, BR, lid, 0u);
        workgroupBarrier();
        tile_gradients(i0, k0, lid, true);
        workgroupBarrier();
        for (var i = 0u; i < BR; i++) {
            let pr = vec4(p_tile[i * BC + r0], p_tile[i * BC + r0 + 1u],
                          p_tile[i * BC + r0 + 2u], p_tile[i * BC + r0 + 3u]);
            let ds = vec4(ds_tile[i * BC + r0], ds_tile[i * BC + r0 + 1u],
                          ds_tile[i * BC + r0 + 2u], ds_tile[i * BC + r0 + 3u]);
            for (var cc = 0u; cc < OC_KV; cc++) {
                let at = min(i * ROW + c0 + cc * CG_KV, BR * ROW - 1u);
                dv_acc[cc] += pr * do_tile[at];
                dk_acc[cc] += ds * q_tile[at]; // q_tile holds q·scale: dK's scale is in
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        let row = k0 + r0 + j;
        for (var cc = 0u; cc < OC_KV; cc++) {
            let col = c0 + cc * CG_KV;
            if (row < p.t && col < D) {
                let at = q_at(bh, row) + col;
                var gk = dk_acc[cc][j];
                var gv = dv_acc[cc][j];
                if (adds(2u)) {
                    gk += dk[at + p.k_offset];
                }
                if (adds(4u)) {
                    gv += dv[at + p.v_offset];
                }
                dk[at + p.k_offset] = gk;
                dv[at + p.v_offset] = gv;
            }
        }
    }
}
