// Embedding lookup, out[t, :] = table[ids[t], :], and its backward as a deterministic
// scatter-add without float atomics: the ids are grouped by value on the host (`order`
// lists token positions sorted by id, `offsets[v]..offsets[v+1]` are the positions of id
// v), so each (id, column) invocation sums its tokens' gradients in a fixed order. Built
// after an element prelude: out and dout are `Out`s and `Operand`s (f32, or f16
// activations); the table and its gradient are f32 parameters, the sums f32.

struct Params {
    tokens: u32,      // number of ids
    dim: u32,         // embedding width
    vocab: u32,       // rows of the table
    accumulate: u32,  // 1: out += (forward: e.g. adding positions; backward: dtable), 0: =
}

@group(0) @binding(0) var<uniform> p: Params;

// ---- forward ----
// out: [tokens, dim]; table: [vocab, dim]; ids: [tokens] (an id >= vocab gives zeros)
@group(0) @binding(1) var<storage, read_write> out: array<Out>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;

@compute @workgroup_size(256)
fn embedding_forward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    // Grid-stride over the flat [tokens, dim] output.
    for (var i = grid_first(wg, lid); i < p.tokens * p.dim; i += grid_step(nwg)) {
        let t = i / p.dim;
        let c = i - t * p.dim;
        let id = ids[t];
        var v = 0.0;
        if (id < p.vocab) {
            v = table[id * p.dim + c];
        }
        if (p.accumulate == 1u) {
            v += f32(out[i]);
        }
        out[i] = Out(v);
    }
}

// ---- backward: dtable[v, :] (+)= Σ_{t: ids[t] = v} dout[t, :] ----
// dtable: [vocab, dim]; dout: [tokens, dim]; order: [tokens]; offsets: [vocab + 1]
@group(0) @binding(1) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<Operand>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read> offsets: array<u32>;

@compute @workgroup_size(256)
fn embedding_backward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    // Grid-stride over the flat [vocab, dim] gradient; each element sums its tokens in order.
    for (var i = grid_first(wg, lid); i < p.vocab * p.dim; i += grid_step(nwg)) {
        let v = i / p.dim;
        let c = i - v * p.dim;
        var acc = 0.0;
        // order and offsets are the caller's buffers: whatever they hold, a row reads at
        // most `tokens` entries and skips any token id past the end.
        let end = min(offsets[v + 1u], p.tokens);
        for (var j = min(offsets[v], end); j < end; j++) {
            let t = order[j];
            if (t < p.tokens) {
                acc += f32(dout[t * p.dim + c]);
            }
        }
        if (p.accumulate == 1u) {
            dtable[i] += acc;
        } else {
            dtable[i] = acc;
        }
    }
}
