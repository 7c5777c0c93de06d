//! CPU reference of `kernels::rezero`.

/// y = x + α·f
pub fn rezero_forward(y: &mut [f32], x: &[f32], f: &[f32], alpha: f32) {
    for i in 0..y.len() {
        y[i] = x[i] + alpha * f[i];
    }
}

/// dx (+)= dy, df (+)= α·dy, dα (+)= Σ dy·f; `accumulate` says, for (dx, df, dα), which
/// are added to.
pub fn rezero_backward(
    dx: &mut [f32],
    df: &mut [f32],
    dalpha: &mut f32,
    dy: &[f32],
    f: &[f32],
    alpha: f32,
    accumulate: [bool; 3],
) {
    let mut acc = 0.0f64;
    for i in 0..dy.len() {
        super::put(&mut dx[i], dy[i], accumulate[0]);
        super::put(&mut df[i], alpha * dy[i], accumulate[1]);
        acc += dy[i] as f64 * f[i] as f64;
    }
    super::put(dalpha, acc as f32, accumulate[2]);
}
