// What every matmul kernel shares (matmul.wgsl's four variants, matmul_coop.wgsl): the
// parameters, the bindings of C, A, B, bias and pre, and the loads and the store with its
// epilogue. Compiled after an element prelude (elem_*.wgsl: the `Operand` type of A, B and
// bias, the `Out` type of C and pre) and the activation prelude. Arithmetic is f32 whatever
// the element types: loads convert to f32, the store converts the f32 result to `Out`.

override ACTIVATION: u32 = 0u;  // the ACT_* applied in the store (activation.wgsl)

struct Params {
    m: u32,            // rows of C
    n: u32,            // columns of C
    k: u32,            // reduction length
    batch: u32,        // number of independent products
    trans_a: u32,      // 1: A is stored [k, m]
    trans_b: u32,      // 1: B is stored [n, k]
    accumulate: u32,   // 1: C += product
    has_bias: u32,     // 1: add bias[col] to every row
    stride_a: u32,     // elements between batches of A (0 broadcasts one A)
    stride_b: u32,     // elements between batches of B
    stride_c: u32,     // elements between batches of C
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// c: [batch, m, n] row-major
@group(0) @binding(1) var<storage, read_write> c: array<Out>;
// a: [batch, m, k] row-major, or [batch, k, m] when trans_a
@group(0) @binding(2) var<storage, read> a: array<Operand>;
// b: [batch, k, n] row-major, or [batch, n, k] when trans_b
@group(0) @binding(3) var<storage, read> b: array<Operand>;
// bias: [n] (bound to A's buffer and unused when has_bias is 0)
@group(0) @binding(4) var<storage, read> bias: array<Operand>;
// pre: [batch, m, n], the product plus bias before the activation (bound to C's buffer and
// untouched when ACTIVATION is ACT_NONE)
@group(0) @binding(8) var<storage, read_write> pre: array<Out>;

// Element offsets of A's (row, kk) and B's (kk, col) in the batch starting at `base`.
fn a_index(base: u32, row: u32, kk: u32) -> u32 {
    return select(base + row * p.k + kk, base + kk * p.m + row, p.trans_a == 1u);
}

fn b_index(base: u32, kk: u32, col: u32) -> u32 {
    return select(base + kk * p.n + col, base + col * p.k + kk, p.trans_b == 1u);
}

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    return f32(a[a_index(base, row, kk)]);
}

fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    return f32(b[b_index(base, kk, col)]);
}

// Adds bias and the old C as asked, then stores one element; with an activation, stores
// the sum as pre and its activation as C (accumulate is refused in Rust then).
fn store_c(bat: u32, row: u32, col: u32, value: f32) {
    let idx = bat * p.stride_c + row * p.n + col;
    var v = value;
    if (p.has_bias == 1u) {
        v += f32(bias[col]);
    }
    if (ACTIVATION != ACT_NONE) {
        pre[idx] = Out(v);
        c[idx] = Out(activate(ACTIVATION, v));
        return;
    }
    if (p.accumulate == 1u) {
        v += f32(c[idx]);
    }
    c[idx] = Out(v);
}

