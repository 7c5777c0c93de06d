// Tensor-core matmul: C[b] = op(A[b]) · op(B[b]) (+ bias) (+ C) with f16 A and B,
// f32 accumulation in cooperative matrices, C f32 or f16. Compiled after coop_enable.wgsl,
// an f16 element prelude (elem_f16*.wgsl), a tile prelude (coop8.wgsl or coop16.wgsl: the
// S x S x S matrices), activation.wgsl and matmul_io.wgsl.
//
// A workgroup computes a BM x BN = 4S x 4S tile of C from BK-deep slabs of A and B staged
// in workgroup memory (rows padded by 8 halves, 16 bytes). Each subgroup owns one 2S x 2S
// block of the tile: four S x S accumulators that stay in its registers over the whole K
// loop. The four blocks go to the workgroup's subgroups in rounds, as many as it takes
// however the device cut the workgroup into subgroups (one round on a GPU whose subgroup
// size the launcher sized WG for); the rounds' count is read through workgroupUniformLoad,
// so every subgroup runs the same loops and barriers. A subgroup with no block of its own
// in a round repeats block 3 (cooperative-matrix operations must stay in uniform control
// flow, so it cannot skip them) and stores into a spare slot. Edges: the staged slabs are
// padded with zeros, never read past A or B; the epilogue (bias, activation, accumulate:
// matmul_io's store_c) writes only the elements inside C.

override WG: u32 = 64u; // invocations a workgroup (the launcher: 4 subgroups' worth)

const BM: u32 = 4u * S;
const BN: u32 = 4u * S;
const BK: u32 = 32u;
const LDA: u32 = BK + 8u; // sa's row stride: a multiple of 8 halves
const LDB: u32 = BN + 8u; // sb's row stride
const TILE: u32 = S * S;

// sa: [BM, LDA] f16, A's slab (row, k); sb: [BK, LDB] f16, B's slab (k, column)
var<workgroup> sa: array<f16, BM * LDA>;
var<workgroup> sb: array<f16, BK * LDB>;
// sc: [5, S, S] f32, one accumulator tile per block on its way to the epilogue (slot 4:
// the spare of subgroups with no block this round)
var<workgroup> sc: array<f32, 5u * TILE>;
var<workgroup> subgroups: u32;

// Stages the slabs of A and B at depth k0 of the tile at (row0, col0), zeros outside.
// Each operand is walked along its stored contiguous dimension.
fn stage(tid: u32, row0: u32, col0: u32, k0: u32, base_a: u32, base_b: u32) {
    for (var i = tid; i < BM * BK; i += WG) {
        var r = i / BK;
        var kk = i % BK;
        if (p.trans_a == 1u) {
            r = i % BM;
            kk = i / BM;
        }
        var v = f16(0.0);
        if (row0 + r < p.m && k0 + kk < p.k) {
            v = a[a_index(base_a, row0 + r, k0 + kk)];
        }
        sa[r * LDA + kk] = v;
    }
    for (var i = tid; i < BK * BN; i += WG) {
        var kk = i / BN;
        var col = i % BN;
        if (p.trans_b == 1u) {
            kk = i % BK;
            col = i / BK;
        }
        var v = f16(0.0);
        if (k0 + kk < p.k && col0 + col < p.n) {
            v = b[b_index(base_b, k0 + kk, col0 + col)];
        }
        sb[kk * LDB + col] = v;
    }
}

@compute @workgroup_size(WG)
fn matmul_coop(
    @builtin(local_invocation_index) tid: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(num_subgroups) sg_count: u32,
) {
    if (tid == 0u) {
        subgroups = sg_count;
    }
    let n_sg = workgroupUniformLoad(&subgroups);
    let rounds = (4u + n_sg - 1u) / n_sg;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let base_a = wg.z * p.stride_a;
    let base_b = wg.z * p.stride_b;
    let slot = min(sg, 4u);
    let lda = LDA;
    let ldb = LDB;
    let lds = S;
    for (var round = 0u; round < rounds; round++) {
        // This subgroup's block (2 x 2 accumulators) within the tile.
        let block = min(round * n_sg + sg, 3u);
        let br = (block / 2u) * 2u * S;
        let bc = (block % 2u) * 2u * S;
        var acc00 = TileC();
        var acc01 = TileC();
        var acc10 = TileC();
        var acc11 = TileC();
        for (var k0 = 0u; k0 < p.k; k0 += BK) {
            stage(tid, row0, col0, k0, base_a, base_b);
            workgroupBarrier();
            for (var kk = 0u; kk < BK; kk += S) {
                let a0_at = br * LDA + kk;
                let a1_at = (br + S) * LDA + kk;
                let b0_at = kk * LDB + bc;
                let b1_at = kk * LDB + bc + S;
                let a0 = coopLoadT<TileA>(&sa[a0_at], lda);
                let a1 = coopLoadT<TileA>(&sa[a1_at], lda);
                let b0 = coopLoadT<TileB>(&sb[b0_at], ldb);
                let b1 = coopLoadT<TileB>(&sb[b1_at], ldb);
                acc00 = coopMultiplyAdd(a0, b0, acc00);
                acc01 = coopMultiplyAdd(a0, b1, acc01);
                acc10 = coopMultiplyAdd(a1, b0, acc10);
                acc11 = coopMultiplyAdd(a1, b1, acc11);
            }
            workgroupBarrier();
        }
        // The four accumulators one after another through this subgroup's slot of sc.
        let at = slot * TILE;
        coopStoreT(acc00, &sc[at], lds);
        finish(tid, round, n_sg, 0u, row0, col0, wg.z);
        coopStoreT(acc01, &sc[at], lds);
        finish(tid, round, n_sg, 1u, row0, col0, wg.z);
        coopStoreT(acc10, &sc[at], lds);
        finish(tid, round, n_sg, 2u, row0, col0, wg.z);
        coopStoreT(acc11, &sc[at], lds);
        finish(tid, round, n_sg, 3u, row0, col0, wg.z);
    }
}

// Stores accumulator `which` (0-3: row-major in the block) of every block this round, from
// the slots of sc, through the epilogue; then frees sc for the next accumulator.
fn finish(tid: u32, round: u32, n_sg: u32, which: u32, row0: u32, col0: u32, bat: u32) {
    workgroupBarrier();
    for (var i = tid; i < 4u * TILE; i += WG) {
        let slot = i / TILE;
        let block = round * n_sg + slot;
        if (slot < n_sg && block < 4u) {
            let e = i % TILE;
            let row = row0 + (block / 2u) * 2u * S + (which / 2u) * S + e / S;
            let col = col0 + (block % 2u) * 2u * S + (which % 2u) * S + e % S;
            if (row < p.m && col < p.n) {
                store_c(bat, row, col, sc[i]);
            }
        }
    }
    workgroupBarrier();
}
