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

/// Causal attention of the packed rows qkv [batch·t, 3·dm] (q, k, v side by side, each
/// heads × d): [batch·t, dm].
pub fn attention64(qkv: &[f64], batch: usize, t: usize, heads: usize, dm: usize) -> Vec<f64> {
    let d = dm / heads;
    let at = |b: usize, i: usize, part: usize, h: usize, c: usize| {
        qkv[(b * t + i) * 3 * dm + part * dm + h * d + c]
    };
    let mut y = vec![0.0; batch * t * dm];
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..t {
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        let dot: f64 = (0..d).map(|c| at(b, i, 0, h, c) * at(b, j, 1, h, c)).sum();
                        dot / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                for c in 0..d {
                    y[(b * t + i) * dm + h * d + c] = (0..=i)
                        .map(|j| (s[j] - m).exp() / z * at(b, j, 2, h, c))
                        .sum();
                }
            }
        }
    }
    y
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

/// conv2d in f64, written as the textbook sum over the window.
pub fn conv64(x: &[f64], w: &[f64], b: &[f64], s: &rezero::kernels::conv2d::Conv2d) -> Vec<f64> {
    let (oh, ow) = (s.out_h() as i64, s.out_w() as i64);
    let (h, wd) = (s.h as i64, s.w as i64);
    let mut y = Vec::with_capacity(s.output_len());
    for n in 0..s.batch as i64 {
        for co in 0..s.c_out as i64 {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[co as usize];
                    for ci in 0..s.c_in as i64 {
                        for ky in 0..s.kh as i64 {
                            for kx in 0..s.kw as i64 {
                                let iy = oy * s.stride as i64 + ky - s.pad as i64;
                                let ix = ox * s.stride as i64 + kx - s.pad as i64;
                                if iy < 0 || ix < 0 || iy >= h || ix >= wd {
                                    continue;
                                }
                                let xi = ((n * s.c_in as i64 + ci) * h + iy) * wd + ix;
                                let wi = ((co * s.c_in as i64 + ci) * s.kh as i64 + ky)
                                    * s.kw as i64
                                    + kx;
                                acc += x[xi as usize] * w[wi as usize];
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
    }
    y
}

/// Training-mode batchnorm in f64: biased batch variance per channel.
pub fn batchnorm64(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    s: &rezero::kernels::batchnorm::BatchNormShape,
    eps: f64,
) -> Vec<f64> {
    let (batch, c, pixels) = (s.batch as usize, s.channels as usize, s.pixels as usize);
    let idx = |n: usize, ch: usize, i: usize| (n * c + ch) * pixels + i;
    let count = (batch * pixels) as f64;
    let mut y = vec![0.0; x.len()];
    for ch in 0..c {
        let all = || (0..batch).flat_map(move |n| (0..pixels).map(move |i| idx(n, ch, i)));
        let mean = all().map(|j| x[j]).sum::<f64>() / count;
        let var = all().map(|j| (x[j] - mean).powi(2)).sum::<f64>() / count;
        for j in all() {
            y[j] = (x[j] - mean) / (var + eps).sqrt() * gamma[ch] + beta[ch];
        }
    }
    y
}
