// The backward of the tiled causal attention, compiled after attention_tiled.wgsl into one
// module (its overrides, layout helpers, inputs and Q, K and V tiles). No atomics: the
// probabilities are recomputed from the saved log-sum-exp, tile by tile, and each gradient
// is summed by the one workgroup that owns its rows.
//   dQ: a workgroup per block of BR query rows, over the key tiles up to the diagonal;
//   dK and dV: a workgroup per block of BC key rows, over the query tiles from the diagonal;
//   or all three in one pass (attention_backward_head_tiled): a workgroup per head over
//   its key blocks, each score tile computed once and dQ summed in place.
// Score tiles are register-blocked as in the forward, and the gradient blocks accumulated
// in registers (4 rows × OC4 vec4 columns an invocation). delta = rowsum(dO ∘ O) comes
// from attention.wgsl's attention_backward_delta.

@group(0) @binding(6) var<storage, read> d_o: array<Operand>;
@group(0) @binding(7) var<storage, read> lse_in: array<f32>; // of the scaled scores
@group(0) @binding(8) var<storage, read> delta: array<f32>;
var<workgroup> do_tile: array<vec4<f32>, BR * ROW4>;  // output gradients [BR, ROW4]
var<workgroup> p_tile: array<vec4<f32>, BR * SROW4>;  // probabilities (dK and dV only) [BR, SROW4]
var<workgroup> ds_tile: array<vec4<f32>, BR * SROW4>; // dS = P ∘ (dP − delta) [BR, SROW4]
var<workgroup> lse_rows: array<f32, BR>;
var<workgroup> delta_rows: array<f32, BR>;

// Rows row0 .. row0 + rows of q and d_o (which 0) or k and v (which 1) into their tiles,
// zeros past t; queries scaled. Row statistics too, for query rows.
fn load_pair(bh: u32, row0: u32, rows: u32, lid: u32, which: u32) {
    for (var e = lid; e < rows * D4; e += WG) {
        let row = row0 + e / D4;
        let col = (e % D4) * 4u;
        let slot = (e / D4) * ROW4 + e % D4;
        var a = vec4(0.0);
        var b = vec4(0.0);
        if (row < p.t && which == 0u) {
            a = read4(0u, q_at(bh, row), col) * p.scale;
            for (var m = 0u; m < 4u && col + m < D; m++) {
                b[m] = f32(d_o[o_at(bh, row) + col + m]);
            }
        } else if (row < p.t) {
            a = read4(1u, q_at(bh, row), col);
            b = read4(2u, q_at(bh, row), col);
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
        let inside = row0 + lid < p.t;
        let at = bh * p.t + min(row0 + lid, p.t - 1u);
        lse_rows[lid] = select(0.0, lse_in[at], inside);
        delta_rows[lid] = select(0.0, delta[at], inside);
    }
}

// The probabilities and dS of the tile of queries i0 and keys k0: P into p_tile when
// `keep_p`, dS into ds_tile, zero above the diagonal and past t. Each invocation takes 4
// query rows and the 4 keys c, c + KS, c + 2·KS, c + 3·KS (KS = BC / 4), as tile_scores
// does.
fn tile_gradients(i0: u32, k0: u32, lid: u32, keep_p: bool) {
    let masked = k0 + BC > i0 + 1u || k0 + BC > p.t || i0 + BR > p.t;
    let sets = BC / 4u;
    for (var b = lid; b < (BR / 4u) * sets; b += WG) {
        let r = (b / sets) * 4u;
        let c = b % sets;
        var s = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        var dp = array<vec4<f32>, 4>(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        for (var d4 = 0u; d4 < D4; d4++) {
            var kd: array<vec4<f32>, 4>;
            var vd: array<vec4<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                let at = (c + j * sets) * ROW4 + d4;
                kd[j] = k_tile[at];
                vd[j] = v_tile[at];
            }
            for (var i = 0u; i < 4u; i++) {
                let at = (r + i) * ROW4 + d4;
                s[i] += dots(q_tile[at], kd);
                dp[i] += dots(do_tile[at], vd);
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
                let at = (r + i) * SROW4 + col / 4u;
                if (keep_p) {
                    p_tile[at][col % 4u] = select(prob[j], 0.0, off);
                }
                ds_tile[at][col % 4u] = select(ds[j], 0.0, off);
            }
        }
    }
}

// acc += dS·K for this invocation's query rows r0 .. r0 + 4 and vec4 columns c0,
// c0 + CG, ... of the tile.
fn add_ds_k(acc: ptr<function, Block>, c0: u32, r0: u32) {
    for (var j4 = 0u; j4 < BC / 4u; j4++) {
        var ds: array<vec4<f32>, 4>; // rows r0 + i, keys 4·j4 .. 4·j4 + 4
        for (var i = 0u; i < 4u; i++) {
            ds[i] = ds_tile[(r0 + i) * SROW4 + j4];
        }
        for (var jj = 0u; jj < 4u; jj++) {
            let key = (j4 * 4u + jj) * ROW4;
            for (var cc = 0u; cc < OC4; cc++) {
                // Columns past D4 read padding or the next row: never stored.
                let kv = k_tile[min(key + c0 + cc * CG, BC * ROW4 - 1u)];
                for (var i = 0u; i < 4u; i++) {
                    (*acc)[i * MAX_OC4 + cc] += ds[i][jj] * kv;
                }
            }
        }
    }
}

// dq (laid out as q), of the dQ kernel and the one-pass kernel
@group(0) @binding(9) var<storage, read_write> dq: array<Out>;

// Writes dq·scale of the query tile at i0 as acc holds it (this invocation's rows r0 ..
// r0 + 4, vec4 columns c0, c0 + CG, ...), added to what dq holds when `adding`.
fn store_dq(bh: u32, i0: u32, c0: u32, r0: u32, acc: ptr<function, Block>, adding: bool) {
    for (var i = 0u; i < 4u; i++) {
        let row = i0 + r0 + i;
        for (var cc = 0u; cc < OC4; cc++) {
            let col = (c0 + cc * CG) * 4u;
            for (var m = 0u; m < 4u; m++) {
                if (row < p.t && col + m < D) {
                    let at = q_at(bh, row) + col + m;
                    var g = (*acc)[i * MAX_OC4 + cc][m] * p.scale;
                    if (adding) {
                        g += dq_load(at);
                    }
                    dq_store(at, g);
                }
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
    var acc: Block;
    load_pair(bh, i0, BR, lid, 0u);
    let keys = min(i0 + BR, p.t);
    for (var k0 = 0u; k0 < keys; k0 += BC) {
        workgroupBarrier();
        load_pair(bh, k0, BC, lid, 1u);
        workgroupBarrier();
        tile_gradients(i0, k0, lid, false);
        workgroupBarrier();
        add_ds_k(&acc, c0, r0);
    }
    store_dq(bh, i0, c0, r0, &acc, adds(1u));
}

// dk, dv (laid out as k and v)
@group(0) @binding(1) var<storage, read_write> dk: array<Out>;
@group(0) @binding(2) var<storage, read_write> dv: array<Out>;

// dq's and dv's element i, read or written through dk's binding where they are one buffer
// with it (the packed layout: p.grads_shared says which).
fn through_dk(bit: u32) -> bool {
    return (p.grads_shared & bit) != 0u;
}

fn dq_load(i: u32) -> f32 {
    if (through_dk(2u)) {
        return f32(dk[i]);
    }
    return f32(dq[i]);
}

fn dq_store(i: u32, g: f32) {
    if (through_dk(2u)) {
        dk[i] = Out(g);
    } else {
        dq[i] = Out(g);
    }
}

fn dv_load(i: u32) -> f32 {
    if (through_dk(1u)) {
        return f32(dk[i]);
    }
    return f32(dv[i]);
}

fn dv_store(i: u32, g: f32) {
    if (through_dk(1u)) {
        dk[i] = Out(g);
    } else {
        dv[i] = Out(g);
    }
}

// dV += Pᵀ·dO and dK += dSᵀ·Q for this invocation's key rows r0 .. r0 + 4 (r0 a multiple
// of 4: one vec4 of a P row) and vec4 columns c0, c0 + CG_KV, ... of the block.
fn add_kv_gradients(dk_acc: ptr<function, Block>, dv_acc: ptr<function, Block>, c0: u32,
                    r0: u32) {
    for (var i = 0u; i < BR; i++) {
        let pr = p_tile[i * SROW4 + r0 / 4u];
        let ds = ds_tile[i * SROW4 + r0 / 4u];
        for (var cc = 0u; cc < OC4_KV; cc++) {
            let at = min(i * ROW4 + c0 + cc * CG_KV, BR * ROW4 - 1u);
            let dov = do_tile[at];
            let qv = q_tile[at]; // q·scale: dK's scale is in
            for (var j = 0u; j < 4u; j++) {
                (*dv_acc)[j * MAX_OC4 + cc] += pr[j] * dov;
                (*dk_acc)[j * MAX_OC4 + cc] += ds[j] * qv;
            }
        }
    }
}

// Writes (or adds) the block of key rows k0 .. k0 + BC's dK and dV, as add_kv_gradients
// left them in this invocation's registers.
fn store_kv_gradients(bh: u32, k0: u32, c0: u32, r0: u32, dk_acc: ptr<function, Block>,
                      dv_acc: ptr<function, Block>) {
    for (var j = 0u; j < 4u; j++) {
        let row = k0 + r0 + j;
        for (var cc = 0u; cc < OC4_KV; cc++) {
            let col = (c0 + cc * CG_KV) * 4u;
            for (var m = 0u; m < 4u; m++) {
                if (row < p.t && col + m < D) {
                    let at = q_at(bh, row) + col + m;
                    var gk = (*dk_acc)[j * MAX_OC4 + cc][m];
                    var gv = (*dv_acc)[j * MAX_OC4 + cc][m];
                    if (adds(2u)) {
                        gk += f32(dk[at + K_OFFSET]);
                    }
                    if (adds(4u)) {
                        gv += dv_load(at + V_OFFSET);
                    }
                    dk[at + K_OFFSET] = Out(gk);
                    dv_store(at + V_OFFSET, gv);
                }
            }
        }
    }
}

// One query tile's part in the gradients of the key block at k0 (the keys already in
// k_tile): loads the queries i0 .. i0 + BR and their dO, forms P and dS, and adds to this
// invocation's dK and dV rows r0 .. r0 + 4. P and dS stay in their tiles for the caller.
fn query_tile_for_keys(bh: u32, i0: u32, k0: u32, lid: u32, c0: u32, r0: u32,
                       dk_acc: ptr<function, Block>, dv_acc: ptr<function, Block>) {
    workgroupBarrier();
    load_pair(bh, i0, BR, lid, 0u);
    workgroupBarrier();
    tile_gradients(i0, k0, lid, true);
    workgroupBarrier();
    add_kv_gradients(dk_acc, dv_acc, c0, r0);
}

@compute @workgroup_size(WG)
fn attention_backward_dkv_tiled(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let k0 = wg.x * BC;
    let c0 = lid % CG_KV; // neighbouring columns, as in the forward
    let r0 = (lid / CG_KV) * 4u; // this invocation's key rows, within the block
    var dk_acc: Block;
    var dv_acc: Block;
    load_pair(bh, k0, BC, lid, 1u);
    // causal: the query tiles from the one holding this block's first key
    for (var i0 = (k0 / BR) * BR; i0 < p.t; i0 += BR) {
        query_tile_for_keys(bh, i0, k0, lid, c0, r0, &dk_acc, &dv_acc);
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
    let c0 = lid % CG; // dQ tile: query rows r0 .. r0 + 4, vec4 columns c0, c0 + CG, ...
    let r0 = (lid / CG) * 4u;
    let kc0 = lid % CG_KV; // dK and dV block: key rows kr0 .. kr0 + 4, columns kc0, ...
    let kr0 = (lid / CG_KV) * 4u;
    // The sums are zeroed by assignment at the top of each loop, not by declaring them
    // there: a declaration in a loop must zero its variable each time round, and Dawn on
    // SwiftShader did not (the browser self-test caught dq and dk summed twice).
    var dk_acc: Block;
    var dv_acc: Block;
    var dq_acc: Block;
    for (var k0 = 0u; k0 < p.t; k0 += BC) {
        dk_acc = Block();
        dv_acc = Block();
        workgroupBarrier();
        load_pair(bh, k0, BC, lid, 1u);
        for (var i0 = (k0 / BR) * BR; i0 < p.t; i0 += BR) {
            query_tile_for_keys(bh, i0, k0, lid, kc0, kr0, &dk_acc, &dv_acc);
            dq_acc = Block();
            add_ds_k(&dq_acc, c0, r0);
            // The first key block sees every query tile: it writes (or adds to) dq, the
            // later blocks add to what it wrote.
            store_dq(bh, i0, c0, r0, &dq_acc, k0 > 0u || adds(1u));
        }
        store_kv_gradients(bh, k0, kc0, kr0, &dk_acc, &dv_acc);
    }
}
