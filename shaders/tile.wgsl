// Tile prelude: what the blocked GEMM kernels of matmul.wgsl and conv2d.wgsl share. Both
// compute a BM x BN tile of an output per workgroup from BK-deep slabs of the two
// operands staged in workgroup memory: sa holds the left operand transposed, [BK, BM],
// sb the right one, [BK, BN], twice each (double buffering). Each of the
// (BM/TM)·(BN/TN) invocations keeps a TM x TN block of the tile in registers (TM, TN in
// {4, 8}): rows lid.y*4 + i*(4*BM/TM) + r and columns lid.x*4 + j*(4*BN/TN) + e, so
// that neighbouring invocations read neighbouring vec4s of sa and sb.
// The including shader must keep the slab index in range: BM, BN multiples of TM, TN;
// the launchers check this and the workgroup memory, 2*BK*(BM + BN)*4 bytes.

// Every override constant of the shaders that include this prelude is declared here,
// before the first override-sized array: naga 30 drops an override declared after one
// that an entry point also uses (its pipeline then fails to build).
override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;
override TM: u32 = 8u;
override TN: u32 = 8u;
override TRANS_A: bool = false; // matmul: A is stored [k, m]
override TRANS_B: bool = false; // matmul: B is stored [n, k]
override MODE: u32 = 0u;        // conv2d: which pass (see conv2d.wgsl)

// sa: [2, BK, BM/4] vec4 (left operand transposed), sb: [2, BK, BN/4] vec4
var<workgroup> sa: array<vec4<f32>, 2u * BK * BM / 4u>;
var<workgroup> sb: array<vec4<f32>, 2u * BK * BN / 4u>;

// Invocations of a blocked workgroup.
fn blocked_threads() -> u32 {
    return (BM / TM) * (BN / TN);
}

// acc[(i*4 + r)*(TN/4) + j] += the contribution of slab buffer `buf` to row group i,
// row r, column group j of this invocation's block.
fn multiply_slab(buf: u32, lid: vec3<u32>, acc: ptr<function, array<vec4<f32>, 16>>) {
    for (var kk = 0u; kk < BK; kk++) {
        let a_row = (buf * BK + kk) * (BM / 4u) + lid.y;
        let b_row = (buf * BK + kk) * (BN / 4u) + lid.x;
        var av: array<vec4<f32>, 2>;
        var bv: array<vec4<f32>, 2>;
        for (var i = 0u; i < TM / 4u; i++) {
            av[i] = sa[a_row + i * (BM / TM)];
        }
        for (var j = 0u; j < TN / 4u; j++) {
            bv[j] = sb[b_row + j * (BN / TN)];
        }
        for (var i = 0u; i < TM / 4u; i++) {
            for (var r = 0u; r < 4u; r++) {
                for (var j = 0u; j < TN / 4u; j++) {
                    (*acc)[(i * 4u + r) * (TN / 4u) + j] += av[i][r] * bv[j];
                }
            }
        }
    }
}

// Row and first column, within the tile, of accumulator vec4 `v` of invocation `lid`.
fn acc_position(v: u32, lid: vec3<u32>) -> vec2<u32> {
    let i = v / (TN / 4u) / 4u;
    let r = v / (TN / 4u) % 4u;
    let j = v % (TN / 4u);
    return vec2<u32>(i * (4u * BM / TM) + lid.y * 4u + r, j * (4u * BN / TN) + lid.x * 4u);
}
