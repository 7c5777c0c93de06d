// Tile prelude: what the blocked GEMM kernels of matmul.wgsl and conv2d.wgsl share. Both
// compute a BM x BN tile of an output per workgroup from BK-deep slabs of the two
// operands staged in workgroup memory: sa holds the left operand transposed, [BK, BM],
// sb the right one, [BK, BN], twice each (double buffering). Each of the
// (BM/TM)·(BN/TN) invocations keeps a TM x TN block of the tile in registers (TM, TN in
// {4, 8}): rows lid.y*4 + i*(4*BM/TM) + r and columns lid.x*4 + j*(4*BN/TN) + e, so
// that neighbouring invocations read neighbouring vec4s of sa and sb.
// `accumulate_tile` walks the slabs: while one is multiplied, the next is read from memory
// into registers, then stored into the other buffer, so one barrier a slab suffices. The
// including shader says how its operands are read and laid out by defining four hooks:
//   fn fetch_a(q: u32, k0: u32) -> vec4<f32>  quad q of the left operand's slab at depth k0
//   fn fetch_b(q: u32, k0: u32) -> vec4<f32>  quad q of the right operand's slab
//   fn stage_a(buf: u32, q: u32, v: vec4<f32>) stores that quad into sa[buf] (transposed)
//   fn stage_b(buf: u32, q: u32, v: vec4<f32>) stores that quad into sb[buf]
// (a quad: 4 elements consecutive in the operand's memory; zeros outside the operand).
// The launchers check BM, BN against TM, TN and the workgroup memory, 2*BK*(BM + BN)*4
// bytes, and that each invocation stages at most 8 quads of each operand per slab.

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
override VEC4: bool = false;    // read (matmul: and write) whole vec4s where the includer can
override VEC4_OUT: bool = false; // conv2d: write whole vec4s
override WG: u32 = 256u;        // conv2d: invocations of the bias-gradient reduction
// (matmul's ACTIVATION is declared before this prelude, in matmul_io.wgsl.)

// sa: [2, BK, BM/4] vec4 (left operand transposed), sb: [2, BK, BN/4] vec4
var<workgroup> sa: array<vec4<f32>, 2u * BK * BM / 4u>;
var<workgroup> sb: array<vec4<f32>, 2u * BK * BN / 4u>;

// Invocations of a blocked workgroup.
fn blocked_threads() -> u32 {
    return (BM / TM) * (BN / TN);
}

// Quads of each operand's slab that each invocation stages (the last ones may be past
// the slab when it has fewer quads than the workgroup has invocations; `stage_*` skip them).
fn quads_a() -> u32 {
    return (BM * BK / 4u + blocked_threads() - 1u) / blocked_threads();
}

fn quads_b() -> u32 {
    return (BN * BK / 4u + blocked_threads() - 1u) / blocked_threads();
}

// acc += the tile's products over the reduction [k_begin, k_end), slab by slab.
fn accumulate_tile(
    lid: vec3<u32>,
    k_begin: u32,
    k_end: u32,
    acc: ptr<function, array<vec4<f32>, 16>>,
) {
    let threads = blocked_threads();
    let tid = lid.y * (BN / TN) + lid.x;
    var ra: array<vec4<f32>, 8>;
    var rb: array<vec4<f32>, 8>;
    for (var l = 0u; l < quads_a(); l++) {
        stage_a(0u, tid + l * threads, fetch_a(tid + l * threads, k_begin));
    }
    for (var l = 0u; l < quads_b(); l++) {
        stage_b(0u, tid + l * threads, fetch_b(tid + l * threads, k_begin));
    }
    workgroupBarrier();
    let slabs = (k_end - k_begin + BK - 1u) / BK;
    for (var s = 0u; s < slabs; s++) {
        let next = s + 1u < slabs;
        let k_next = k_begin + (s + 1u) * BK;
        if (next) {
            for (var l = 0u; l < quads_a(); l++) {
                ra[l] = fetch_a(tid + l * threads, k_next);
            }
            for (var l = 0u; l < quads_b(); l++) {
                rb[l] = fetch_b(tid + l * threads, k_next);
            }
        }
        multiply_slab(s % 2u, lid, acc);
        if (next) {
            for (var l = 0u; l < quads_a(); l++) {
                stage_a((s + 1u) % 2u, tid + l * threads, ra[l]);
            }
            for (var l = 0u; l < quads_b(); l++) {
                stage_b((s + 1u) % 2u, tid + l * threads, rb[l]);
            }
        }
        workgroupBarrier();
    }
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
