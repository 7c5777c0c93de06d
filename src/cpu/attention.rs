//! CPU reference of `kernels::attention`: causal attention with the scores materialised, in f64.
//! q, k, v, o and gradients [bh, t, d]; lse [bh, t].

/// The causal probabilities P [t, t] of one head and the log-sum-exp of each row.
fn probabilities(q: &[f32], k: &[f32], t: usize, d: usize, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let mut p = vec![0.0; t * t];
    let mut lse = vec![0.0; t];
    for i in 0..t {
        let s: Vec<f64> = (0..=i)
            .map(|j| {
                (0..d)
                    .map(|c| q[i * d + c] as f64 * k[j * d + c] as f64)
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = s.iter().map(|v| (v - m).exp()).sum();
        for (j, sj) in s.iter().enumerate() {
            p[i * t + j] = (sj - m).exp() / sum;
        }
        lse[i] = m + sum.ln();
    }
    (p, lse)
}

/// (o, lse) of softmax(q·kᵀ·scale, causal)·v for every head.
pub fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    bh: usize,
    t: usize,
    d: usize,
) -> (Vec<f32>, Vec<f32>) {
    let scale = 1.0 / (d as f64).sqrt();
    let (mut o, mut lse) = (vec![0.0f32; bh * t * d], vec![0.0f32; bh * t]);
    for h in 0..bh {
        let r = h * t * d..(h + 1) * t * d;
        let (p, l) = probabilities(&q[r.clone()], &k[r.clone()], t, d, scale);
        for i in 0..t {
            lse[h * t + i] = l[i] as f32;
            for c in 0..d {
                o[h * t * d + i * d + c] = (0..t)
                    .map(|j| p[i * t + j] * v[h * t * d + j * d + c] as f64)
                    .sum::<f64>() as f32;
            }
        }
    }
    (o, lse)
}

/// (dq, dk, dv) of the forward above given dO.
pub fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_o: &[f32],
    bh: usize,
    t: usize,
    d: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    backward([q, k, v, d_o], None, [bh, t, d])
}

/// (dq, dk, dv) as the kernels form them, from the output `o` the forward stored: each
/// row's Σ_j P·dP taken as dO·o (FlashAttention-2's D), so an o rounded to f16 enters the
/// reference as it enters the kernels.
pub fn attention_backward_from_output(
    [q, k, v, o, d_o]: [&[f32]; 5],
    [bh, t, d]: [usize; 3],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    backward([q, k, v, d_o], Some(o), [bh, t, d])
}

fn backward(
    [q, k, v, d_o]: [&[f32]; 4],
    o: Option<&[f32]>,
    [bh, t, d]: [usize; 3],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let scale = 1.0 / (d as f64).sqrt();
    let n = bh * t * d;
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    for h in 0..bh {
        let off = h * t * d;
        let (p, _) = probabilities(&q[off..off + t * d], &k[off..off + t * d], t, d, scale);
        let at = |x: &[f32], row: usize, c: usize| x[off + row * d + c] as f64;
        for i in 0..t {
            // dP[i, j] = dO_i · v_j; dS = P ⊙ (dP − Σ_j P dP)
            let dp: Vec<f64> = (0..t)
                .map(|j| (0..d).map(|c| at(d_o, i, c) * at(v, j, c)).sum())
                .collect();
            let rowdot: f64 = match o {
                Some(o) => (0..d).map(|c| at(d_o, i, c) * at(o, i, c)).sum(),
                None => (0..t).map(|j| p[i * t + j] * dp[j]).sum(),
            };
            for j in 0..=i {
                let ds = p[i * t + j] * (dp[j] - rowdot) * scale;
                for c in 0..d {
                    dq[off + i * d + c] += (ds * at(k, j, c)) as f32;
                    dk[off + j * d + c] += (ds * at(q, i, c)) as f32;
                    dv[off + j * d + c] += (p[i * t + j] * at(d_o, i, c)) as f32;
                }
            }
        }
    }
    (dq, dk, dv)
}
