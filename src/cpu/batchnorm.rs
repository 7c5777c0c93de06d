//! CPU reference of `kernels::batchnorm`, `kernels::pool` and `kernels::shortcut`.

use crate::kernels::batchnorm::{BatchNormConfig, BatchNormShape};

fn dims(s: &BatchNormShape) -> (usize, usize, usize) {
    (s.batch as usize, s.channels as usize, s.pixels as usize)
}

/// Indices of channel `c`'s elements in [batch, channels, pixels].
fn channel(s: &BatchNormShape, c: usize) -> impl Iterator<Item = usize> {
    let (batch, channels, pixels) = dims(s);
    (0..batch).flat_map(move |n| {
        let base = (n * channels + c) * pixels;
        base..base + pixels
    })
}

/// Training forward; returns (mean, rstd) per channel and updates the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_forward(
    y: &mut [f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    s: &BatchNormShape,
    config: &BatchNormConfig,
) -> (Vec<f32>, Vec<f32>) {
    let count = (s.batch * s.pixels) as f64;
    let (mut means, mut rstds) = (Vec::new(), Vec::new());
    for c in 0..s.channels as usize {
        let mean = channel(s, c).map(|i| x[i] as f64).sum::<f64>() / count;
        let var_sum = channel(s, c)
            .map(|i| (x[i] as f64 - mean).powi(2))
            .sum::<f64>();
        let rstd = 1.0 / (var_sum / count + config.eps as f64).sqrt();
        for i in channel(s, c) {
            y[i] = ((x[i] as f64 - mean) * rstd * gamma[c] as f64 + beta[c] as f64) as f32;
        }
        let m = config.momentum as f64;
        let unbiased = var_sum / (count.max(2.0) - 1.0);
        running_mean[c] = ((1.0 - m) * running_mean[c] as f64 + m * mean) as f32;
        running_var[c] = ((1.0 - m) * running_var[c] as f64 + m * unbiased) as f32;
        means.push(mean as f32);
        rstds.push(rstd as f32);
    }
    (means, rstds)
}

/// Eval forward with the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_eval_forward(
    y: &mut [f32],
    x: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    gamma: &[f32],
    beta: &[f32],
    s: &BatchNormShape,
    eps: f32,
) {
    for c in 0..s.channels as usize {
        let g = gamma[c] as f64 / (running_var[c] as f64 + eps as f64).sqrt();
        for i in channel(s, c) {
            y[i] = ((x[i] as f64 - running_mean[c] as f64) * g + beta[c] as f64) as f32;
        }
    }
}

/// Training backward: dx (+)=, dgamma +=, dbeta +=.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dy: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    s: &BatchNormShape,
    accumulate: [bool; 3],
) {
    let count = (s.batch * s.pixels) as f64;
    for c in 0..s.channels as usize {
        let (mu, r) = (mean[c] as f64, rstd[c] as f64);
        let xhat = |i: usize| (x[i] as f64 - mu) * r;
        let sum_dy = channel(s, c).map(|i| dy[i] as f64).sum::<f64>();
        let sum_dyx = channel(s, c).map(|i| dy[i] as f64 * xhat(i)).sum::<f64>();
        let g = gamma[c] as f64 * r;
        for i in channel(s, c) {
            let v = g * (dy[i] as f64 - sum_dy / count - xhat(i) * sum_dyx / count);
            super::put(&mut dx[i], v as f32, accumulate[0]);
        }
        super::put(&mut dgamma[c], sum_dyx as f32, accumulate[1]);
        super::put(&mut dbeta[c], sum_dy as f32, accumulate[2]);
    }
}

/// Global average pooling: y[r] = mean of x[r, ..], x: [rows, pixels].
pub fn global_avg_pool_forward(y: &mut [f32], x: &[f32], pixels: usize) {
    for (o, row) in y.iter_mut().zip(x.chunks(pixels)) {
        *o = (row.iter().map(|&v| v as f64).sum::<f64>() / pixels as f64) as f32;
    }
}

/// dx[r, i] (+)= dy[r] / pixels.
pub fn global_avg_pool_backward(dx: &mut [f32], dy: &[f32], pixels: usize, accumulate: bool) {
    for (row, g) in dx.chunks_mut(pixels).zip(dy) {
        for v in row {
            let share = g / pixels as f32;
            *v = if accumulate { *v + share } else { share };
        }
    }
}

/// The zero-padded identity shortcut: y: [batch, c_out, ⌈h/s⌉, ⌈w/s⌉] from x: [batch, c_in, h, w].
pub fn shortcut_forward(y: &mut [f32], x: &[f32], s: &crate::kernels::shortcut::ShortcutShape) {
    let (oh, ow) = (s.out_h() as usize, s.out_w() as usize);
    let (h, w, stride) = (s.h as usize, s.w as usize, s.stride as usize);
    for (i, v) in y[..s.output_len()].iter_mut().enumerate() {
        let (ox, oy) = (i % ow, (i / ow) % oh);
        let c = (i / (ow * oh)) % s.c_out as usize;
        let n = i / (ow * oh * s.c_out as usize);
        *v = if c < s.c_in as usize {
            x[((n * s.c_in as usize + c) * h + oy * stride) * w + ox * stride]
        } else {
            0.0
        };
    }
}

/// dx (+)= the shortcut's gradient: dy at the sampled pixels of the first c_in channels.
pub fn shortcut_backward(
    dx: &mut [f32],
    dy: &[f32],
    s: &crate::kernels::shortcut::ShortcutShape,
    accumulate: bool,
) {
    let (oh, ow) = (s.out_h() as usize, s.out_w() as usize);
    let (h, w, stride) = (s.h as usize, s.w as usize, s.stride as usize);
    for (i, v) in dx[..s.input_len()].iter_mut().enumerate() {
        let (ix, iy) = (i % w, (i / w) % h);
        let c = (i / (w * h)) % s.c_in as usize;
        let n = i / (w * h * s.c_in as usize);
        let g = if ix % stride == 0 && iy % stride == 0 {
            dy[((n * s.c_out as usize + c) * oh + iy / stride) * ow + ix / stride]
        } else {
            0.0
        };
        *v = if accumulate { *v + g } else { g };
    }
}
