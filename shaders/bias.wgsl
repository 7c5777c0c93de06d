// The bias gradient of a linear layer, dbias = Σ_rows dx, and, with the ACTIVATION override
// constant, the gradient through the activation that followed the bias on the way:
// dx = dy · act'(pre), written, and its column sums. The forward (bias and activation in
// the product's store) is matmul.wgsl's. Compiled with shaders/activation.wgsl appended
// (after the override below: naga wants overrides declared before any function).
//
// bias_backward: a workgroup per 64 columns and chunk of `chunk_rows` rows; 4 invocations
// down each column walk the chunk's rows, and their sums meet in workgroup memory. With one
// chunk it writes dbias itself; otherwise each chunk's sums go to `partial` and
// bias_backward_finish adds them up per column, chunk by chunk in order (deterministic).
//
// Built after an element prelude: dy, pre and dx are `Operand`s and `Out`s (f32, or f16
// activations); dbias, the partial sums and the arithmetic are f32.

override ACTIVATION: u32 = 0u; // the ACT_* whose slope dy goes through

struct Params {
    rows: u32,
    cols: u32,
    chunk_rows: u32,  // rows a workgroup of bias_backward covers
    chunks: u32,      // rows / chunk_rows rounded up; 1: no finishing pass
    accumulate: u32,  // bit 0: dbias += , bit 1: dx +=
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// dbias: [cols]
@group(0) @binding(1) var<storage, read_write> dbias: array<f32>;
// partial: [chunks, cols] (scratch; untouched with one chunk)
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
// dx: [rows, cols] (untouched when ACTIVATION is ACT_NONE)
@group(0) @binding(3) var<storage, read_write> dx: array<Out>;
// dy: [rows, cols]
@group(0) @binding(4) var<storage, read> dy: array<Operand>;
// pre: [rows, cols], the activation's input (unread when ACTIVATION is ACT_NONE)
@group(0) @binding(5) var<storage, read> pre: array<Operand>;

var<workgroup> column_sums: array<f32, 256>;

fn put_dbias(col: u32, v: f32) {
    if ((p.accumulate & 1u) != 0u) {
        dbias[col] += v;
    } else {
        dbias[col] = v;
    }
}

@compute @workgroup_size(64, 4)
fn bias_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let col = wg.x * 64u + lid.x;
    let first = wg.y * p.chunk_rows;
    let end = min(first + p.chunk_rows, p.rows);
    var sum = 0.0;
    if (col < p.cols) {
        for (var r = first + lid.y; r < end; r += 4u) {
            let i = r * p.cols + col;
            var g = f32(dy[i]);
            if (ACTIVATION != ACT_NONE) {
                g *= activation_slope(ACTIVATION, f32(pre[i]));
                if ((p.accumulate & 2u) != 0u) {
                    dx[i] = Out(f32(dx[i]) + g);
                } else {
                    dx[i] = Out(g);
                }
            }
            sum += g;
        }
    }
    column_sums[lid.y * 64u + lid.x] = sum;
    workgroupBarrier();
    if (lid.y == 0u && col < p.cols) {
        let s = column_sums[lid.x] + column_sums[64u + lid.x] + column_sums[128u + lid.x]
            + column_sums[192u + lid.x];
        if (p.chunks == 1u) {
            put_dbias(col, s);
        } else {
            partial[wg.y * p.cols + col] = s;
        }
    }
}

@compute @workgroup_size(64)
fn bias_backward_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.cols) {
        return;
    }
    var s = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
        s += partial[c * p.cols + col];
    }
    put_dbias(col, s);
}
