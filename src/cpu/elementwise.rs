//! CPU reference of `kernels::elementwise`.

const GELU_C: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)
const GELU_K: f64 = 0.044715;

fn put(out: &mut f32, v: f64, accumulate: bool) {
    *out = if accumulate {
        *out + v as f32
    } else {
        v as f32
    };
}

pub fn add(out: &mut [f32], a: &[f32], b: &[f32], accumulate: bool) {
    for i in 0..out.len() {
        put(&mut out[i], a[i] as f64 + b[i] as f64, accumulate);
    }
}

pub fn scale(out: &mut [f32], a: &[f32], s: f32, accumulate: bool) {
    for i in 0..out.len() {
        put(&mut out[i], s as f64 * a[i] as f64, accumulate);
    }
}

pub fn relu(out: &mut [f32], x: &[f32]) {
    for i in 0..out.len() {
        out[i] = x[i].max(0.0);
    }
}

pub fn relu_backward(dx: &mut [f32], dy: &[f32], x: &[f32], accumulate: bool) {
    for i in 0..dx.len() {
        put(
            &mut dx[i],
            if x[i] > 0.0 { dy[i] as f64 } else { 0.0 },
            accumulate,
        );
    }
}

/// gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in f64.
pub fn gelu_value(x: f64) -> f64 {
    0.5 * x * (1.0 + (GELU_C * (x + GELU_K * x * x * x)).tanh())
}

/// d gelu / dx, in f64.
pub fn gelu_derivative(x: f64) -> f64 {
    let t = (GELU_C * (x + GELU_K * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_K * x * x)
}

pub fn gelu(out: &mut [f32], x: &[f32]) {
    for i in 0..out.len() {
        out[i] = gelu_value(x[i] as f64) as f32;
    }
}

pub fn gelu_backward(dx: &mut [f32], dy: &[f32], x: &[f32], accumulate: bool) {
    for i in 0..dx.len() {
        put(
            &mut dx[i],
            dy[i] as f64 * gelu_derivative(x[i] as f64),
            accumulate,
        );
    }
}
