//! CPU reference of `kernels::embedding`.

/// out[t, :] (+)= table[ids[t], :] (zeros for ids ≥ vocab)
pub fn embedding_forward(
    out: &mut [f32],
    table: &[f32],
    ids: &[u32],
    dim: usize,
    accumulate: bool,
) {
    let vocab = table.len() / dim;
    for (t, &id) in ids.iter().enumerate() {
        for c in 0..dim {
            let v = if (id as usize) < vocab {
                table[id as usize * dim + c]
            } else {
                0.0
            };
            let o = &mut out[t * dim + c];
            *o = if accumulate { *o + v } else { v };
        }
    }
}

/// dtable[v, :] (+)= Σ_{t: ids[t] = v} dout[t, :] (`accumulate` adds to dtable)
pub fn embedding_backward(
    dtable: &mut [f32],
    dout: &[f32],
    ids: &[u32],
    dim: usize,
    accumulate: bool,
) {
    let mut sums = vec![0.0f32; dtable.len()];
    for (t, &id) in ids.iter().enumerate() {
        for c in 0..dim {
            sums[id as usize * dim + c] += dout[t * dim + c];
        }
    }
    for (d, s) in dtable.iter_mut().zip(sums) {
        super::put(d, s, accumulate);
    }
}
