//! CPU reference of `kernels::layernorm`.

/// y = (x − mean)·rstd·gain + bias per row; returns (mean, rstd) per row.
pub fn layernorm_forward(
    y: &mut [f32],
    x: &[f32],
    gain: &[f32],
    bias: &[f32],
    cols: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (mut means, mut rstds) = (Vec::new(), Vec::new());
    for (yr, xr) in y.chunks_mut(cols).zip(x.chunks(cols)) {
        let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for c in 0..cols {
            yr[c] = ((xr[c] as f64 - mean) * rstd * gain[c] as f64 + bias[c] as f64) as f32;
        }
        means.push(mean as f32);
        rstds.push(rstd as f32);
    }
    (means, rstds)
}

/// dx (+)=, dgain (+)=, dbias (+)= the gradients of the forward above, given dy;
/// `accumulate` says, for (dx, dgain, dbias), which are added to.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    dx: &mut [f32],
    dgain: &mut [f32],
    dbias: &mut [f32],
    dy: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    gain: &[f32],
    cols: usize,
    accumulate: [bool; 3],
) {
    let (mut sum_gain, mut sum_bias) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    for r in 0..x.len() / cols {
        let (mu, rs) = (mean[r] as f64, rstd[r] as f64);
        let row = r * cols..(r + 1) * cols;
        let xhat: Vec<f64> = x[row.clone()]
            .iter()
            .map(|&v| (v as f64 - mu) * rs)
            .collect();
        let g: Vec<f64> = (0..cols)
            .map(|c| dy[r * cols + c] as f64 * gain[c] as f64)
            .collect();
        let mean_g = g.iter().sum::<f64>() / cols as f64;
        let mean_gx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
        for c in 0..cols {
            let i = r * cols + c;
            let v = (rs * (g[c] - mean_g - xhat[c] * mean_gx)) as f32;
            super::put(&mut dx[i], v, accumulate[0]);
            sum_gain[c] += dy[i] as f64 * xhat[c];
            sum_bias[c] += dy[i] as f64;
        }
    }
    for c in 0..cols {
        super::put(&mut dgain[c], sum_gain[c] as f32, accumulate[1]);
        super::put(&mut dbias[c], sum_bias[c] as f32, accumulate[2]);
    }
}
