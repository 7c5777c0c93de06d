//! CPU reference of `kernels::reduce`.

fn term(v: f32, square: bool) -> f64 {
    let v = v as f64;
    if square { v * v } else { v }
}

/// Σ over each row of x: [rows, cols]
pub fn sum_rows(x: &[f32], cols: usize, square: bool) -> Vec<f32> {
    x.chunks(cols)
        .map(|row| row.iter().map(|&v| term(v, square)).sum::<f64>() as f32)
        .collect()
}

/// Σ over all of x
pub fn sum_all(x: &[f32], square: bool) -> f32 {
    x.iter().map(|&v| term(v, square)).sum::<f64>() as f32
}
