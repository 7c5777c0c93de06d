//! CPU reference of `kernels::cross_entropy`.

/// Mean cross-entropy over rows and its gradient; targets ≥ cols are ignored rows.
pub fn cross_entropy(dlogits: &mut [f32], logits: &[f32], targets: &[u32], cols: usize) -> f32 {
    let rows = targets.len();
    let mut total = 0.0f64;
    for r in 0..rows {
        let x = &logits[r * cols..(r + 1) * cols];
        let t = targets[r] as usize;
        let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let s: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
        for c in 0..cols {
            let g = (x[c] as f64 - m).exp() / s - if c == t { 1.0 } else { 0.0 };
            dlogits[r * cols + c] = if t < cols {
                (g / rows as f64) as f32
            } else {
                0.0
            };
        }
        if t < cols {
            total += m + s.ln() - x[t] as f64;
        }
    }
    (total / rows as f64) as f32
}
