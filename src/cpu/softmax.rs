//! CPU reference of `kernels::softmax`.

/// y = softmax(x) per row; x, y: [rows, cols]
pub fn softmax_forward(y: &mut [f32], x: &[f32], cols: usize) {
    for (yr, xr) in y.chunks_mut(cols).zip(x.chunks(cols)) {
        let m = xr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let s: f64 = xr.iter().map(|&v| (v as f64 - m).exp()).sum();
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = ((v as f64 - m).exp() / s) as f32;
        }
    }
}

/// dx (+)= y ⊙ (dy − Σ dy·y) per row
pub fn softmax_backward(dx: &mut [f32], y: &[f32], dy: &[f32], cols: usize, accumulate: bool) {
    for r in 0..y.len() / cols {
        let row = r * cols..(r + 1) * cols;
        let d: f64 = y[row.clone()]
            .iter()
            .zip(&dy[row.clone()])
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        for i in row {
            let v = (y[i] as f64 * (dy[i] as f64 - d)) as f32;
            dx[i] = if accumulate { dx[i] + v } else { v };
        }
    }
}

/// y = softmax(scale·x) per row of stacked [t, t] matrices, row r keeping columns 0 ..= r % t.
pub fn softmax_causal_forward(y: &mut [f32], x: &[f32], t: usize, scale: f32) {
    for (r, (yr, xr)) in y.chunks_mut(t).zip(x.chunks(t)).enumerate() {
        let w = r % t + 1;
        let m = xr[..w]
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b * scale)) as f64;
        let s: f64 = xr[..w]
            .iter()
            .map(|&v| ((v * scale) as f64 - m).exp())
            .sum();
        for (c, o) in yr.iter_mut().enumerate() {
            *o = if c < w {
                (((xr[c] * scale) as f64 - m).exp() / s) as f32
            } else {
                0.0
            };
        }
    }
}
