//! CPU reference of `kernels::heads`.

use crate::kernels::heads::HeadLayout;

/// The row-layout index of head-layout element i.
fn row_index(l: &HeadLayout, i: usize) -> usize {
    let (t, heads, d) = (l.t as usize, l.heads as usize, l.d as usize);
    let (dd, tt, bh) = (i % d, (i / d) % t, i / (d * t));
    let (h, b) = (bh % heads, bh / heads);
    (b * t + tt) * l.stride as usize + l.offset as usize + h * d + dd
}

/// Head layout [batch·heads, t, d] of the heads of x (row layout).
pub fn rows_to_heads(x: &[f32], l: &HeadLayout) -> Vec<f32> {
    let n = (l.batch * l.heads * l.t * l.d) as usize;
    (0..n).map(|i| x[row_index(l, i)]).collect()
}

/// out (row layout) (+)= x (head layout) in the heads' columns.
pub fn heads_to_rows(out: &mut [f32], x: &[f32], l: &HeadLayout, accumulate: bool) {
    for (i, &v) in x.iter().enumerate() {
        let r = row_index(l, i);
        out[r] = if accumulate { out[r] + v } else { v };
    }
}
