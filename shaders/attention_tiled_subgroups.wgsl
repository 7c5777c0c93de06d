// The tiled attention forward with the online softmax taken by subgroup shuffles, compiled
// after attention_tiled.wgsl into its own module, built only on devices with subgroups. The
// BC / 4 invocations that hold the score blocks of the same 4 query rows are neighbours in
// local index, so they lie in one subgroup where subgroups are cut from consecutive local
// invocations: no API promises that, so the launcher runs this only where the device's
// probe (probe_subgroups.wgsl) found it, with subgroups of at least BC / 4, and with
// BR·BC / 16 ≤ WG, one block an invocation. They take each row's tile max and sum with
// shuffles and keep its running max and sum in registers: no invocation walks a row alone,
// and a key tile takes two barriers, where the plain forward takes three.

// The max and the sum of x over the BC / 4 invocations of this row group.
fn row_group_max(x: vec4<f32>) -> vec4<f32> {
    var m = x;
    for (var lane = 1u; lane < BC / 4u; lane *= 2u) {
        m = max(m, subgroupShuffleXor(m, lane));
    }
    return m;
}

fn row_group_sum(x: vec4<f32>) -> vec4<f32> {
    var sum = x;
    for (var lane = 1u; lane < BC / 4u; lane *= 2u) {
        sum += subgroupShuffleXor(sum, lane);
    }
    return sum;
}

// The online softmax of this invocation's score block (rows r .. r + 4, keys c, c + KS,
// ... of the tile at k0): probabilities into s_tile, the rows' running max m and sum l
// updated, and each row's rescale factor published in row_scale by the group's first.
fn softmax_block(q0: u32, k0: u32, r: u32, c: u32, m: ptr<function, vec4<f32>>,
                 l: ptr<function, vec4<f32>>) {
    let s = score_block(q0, k0, r, c);
    var tile_max: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
        tile_max[i] = max(max(s[i].x, s[i].y), max(s[i].z, s[i].w));
    }
    let m_new = max(*m, row_group_max(tile_max));
    let scale = exp(*m - m_new);
    var sum: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
        let e = exp(s[i] - m_new[i]);
        sum[i] = dot(e, vec4(1.0));
        for (var j = 0u; j < 4u; j++) {
            let col = c + j * (BC / 4u);
            s_tile[(r + i) * SROW4 + col / 4u][col % 4u] = e[j];
        }
    }
    *l = *l * scale + row_group_sum(sum);
    *m = m_new;
    if (c == 0u) {
        for (var i = 0u; i < 4u; i++) {
            row_scale[r + i] = scale[i];
        }
    }
}

@compute @workgroup_size(WG)
fn attention_forward_tiled_subgroups(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    let bh = wg.y;
    let q0 = wg.x * BR;
    let base = head_at(bh, IN_STRIDE);
    let c0 = lid % CG; // the O block, as in attention_forward_tiled
    let r0 = (lid / CG) * 4u;
    var acc: Block;
    // The score block: rows r .. r + 4, keys c, c + KS, ... (invocations past the blocks
    // have none), and the running max and sum of its rows.
    let scores = lid < (BR / 4u) * (BC / 4u);
    let r = (lid / (BC / 4u)) * 4u;
    let c = lid % (BC / 4u);
    var m = vec4(NEG_BIG);
    var l = vec4(0.0);
    load_rows(base, q0, BR, lid, 0u, p.scale);
    let keys = min(q0 + BR, p.t);
    for (var k0 = 0u; k0 < keys; k0 += BC) {
        workgroupBarrier();
        load_rows(base, k0, BC, lid, 1u, 1.0);
        load_rows(base, k0, BC, lid, 2u, 1.0);
        workgroupBarrier();
        if (scores) {
            softmax_block(q0, k0, r, c, &m, &l);
        }
        workgroupBarrier();
        rescale_o(&acc, r0);
        add_p_v(&acc, c0, r0);
    }
    if (scores && c == 0u) {
        for (var i = 0u; i < 4u; i++) {
            row_sum[r + i] = l[i];
            if (q0 + r + i < p.t) {
                lse[bh * p.t + q0 + r + i] = m[i] + log(l[i]);
            }
        }
    }
    workgroupBarrier();
    store_o(bh, q0, c0, r0, &acc);
}
