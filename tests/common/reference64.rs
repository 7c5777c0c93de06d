//! f64 forward functions for finite-difference gradient checks: the math of each op
//! written plainly, independent of the f32 kernels and their CPU references.
#![allow(dead_code)]

/// ∂loss/∂x[i] by central differences, in f64.
pub fn numeric_grad(loss: impl Fn(&[f64]) -> f64, x: &[f32]) -> Vec<f32> {
    let h = 1e-6;
    let mut x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    (0..x.len())
        .map(|i| {
            let keep = x[i];
            x[i] = keep + h;
            let up = loss(&x);
            x[i] = keep - h;
            let down = loss(&x);
            x[i] = keep;
            ((up - down) / (2.0 * h)) as f32
        })
        .collect()
}

pub fn to64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Σ w ⊙ y
pub fn dot(w: &[f32], y: &[f64]) -> f64 {
    w.iter().zip(y).map(|(&p, &q)| p as f64 * q).sum()
}

/// C[m, n] = op(A)·op(B) (+ bias), A [m, k] or [k, m], B [k, n] or [n, k].
#[allow(clippy::too_many_arguments)]
pub fn matmul64(
    a: &[f64],
    b: &[f64],
    bias: Option<&[f64]>,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias.map_or(0.0, |b| b[j]);
            for kk in 0..k {
                let av = if ta { a[kk * m + i] } else { a[i * k + kk] };
                let bv = if tb { b[j * k + kk] } else { b[kk * n + j] };
                acc += av * bv;
            }
            c[i * n + j] = acc;
        }
    }
    c
}

/// y[rows, out] = x[rows, in]·Wᵀ + b, W [out, in]
pub fn linear64(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    rows: usize,
    inputs: usize,
    outputs: usize,
) -> Vec<f64> {
    matmul64(x, w, Some(b), rows, outputs, inputs, false, true)
}

pub fn relu64(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.max(0.0)).collect()
}

pub fn softmax64(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
            r.iter().map(move |v| (v - m).exp() / s).collect::<Vec<_>>()
        })
        .collect()
}

pub fn layernorm64(x: &[f64], g: &[f64], b: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|r| {
            let mean = r.iter().sum::<f64>() / cols as f64;
            let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
            let rstd = 1.0 / (var + 1e-5).sqrt();
            (0..cols)
                .map(move |c| (r[c] - mean) * rstd * g[c] + b[c])
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Mean cross-entropy of logits [rows, cols] against targets.
pub fn cross_entropy64(logits: &[f64], targets: &[u32], cols: usize) -> f64 {
    let sm = softmax64(logits, cols);
    let rows = targets.len();
    (0..rows)
        .map(|r| -sm[r * cols + targets[r] as usize].ln())
        .sum::<f64>()
        / rows as f64
}
