//! CPU reference of `kernels::bias` and of the activation in `kernels::matmul`'s store.

use crate::kernels::bias::{Activation, BiasShape};

use super::elementwise::{gelu_derivative, gelu_value};

/// act(x), in f64.
pub fn activate(activation: Activation, x: f64) -> f64 {
    match activation {
        Activation::Relu => x.max(0.0),
        Activation::Gelu => gelu_value(x),
    }
}

/// act'(x), in f64 (ReLU's is 0 at 0).
pub fn activation_slope(activation: Activation, x: f64) -> f64 {
    match activation {
        Activation::Relu => (x > 0.0) as u8 as f64,
        Activation::Gelu => gelu_derivative(x),
    }
}

/// dbias (+)= Σ_rows g, where g = dy, or dy·act'(pre) when `through` is given: then
/// dx (+)= g too. dy, pre, dx: [rows, cols]; dbias: [cols].
pub fn bias_backward(
    dbias: &mut [f32],
    accumulate_dbias: bool,
    mut through: Option<(&mut [f32], bool, &[f32], Activation)>,
    dy: &[f32],
    shape: BiasShape,
) {
    let (rows, cols) = (shape.rows as usize, shape.cols as usize);
    let mut sums = vec![0.0f64; cols];
    for r in 0..rows {
        for (c, sum) in sums.iter_mut().enumerate() {
            let i = r * cols + c;
            let mut g = dy[i] as f64;
            if let Some((dx, accumulate, pre, activation)) = through.as_mut() {
                g *= activation_slope(*activation, pre[i] as f64);
                super::put(&mut dx[i], g as f32, *accumulate);
            }
            *sum += g;
        }
    }
    for (out, sum) in dbias.iter_mut().zip(sums) {
        super::put(out, sum as f32, accumulate_dbias);
    }
}
