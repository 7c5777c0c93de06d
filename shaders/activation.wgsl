// Activation prelude: the activations a linear layer applies after its bias, and their
// slopes for the backward. Included by elementwise.wgsl (relu, gelu as kernels of their
// own), matmul.wgsl (the activation in the product's store) and bias.wgsl (the bias
// gradient through the activation's slope). The ACT_* values are `kernels::Activation`'s.

const ACT_NONE: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_GELU: u32 = 2u;

const GELU_C: f32 = 0.7978845608028654; // sqrt(2 / pi)
const GELU_K: f32 = 0.044715;

// tanh written through exp so large |u| saturates instead of overflowing.
fn tanh_stable(u: f32) -> f32 {
    let e = exp(-2.0 * abs(u));
    return sign(u) * (1.0 - e) / (1.0 + e);
}

// gelu(x) = 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³)))
fn gelu_value(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tanh_stable(GELU_C * (x + GELU_K * x * x * x)));
}

// d gelu / dx
fn gelu_slope(x: f32) -> f32 {
    let t = tanh_stable(GELU_C * (x + GELU_K * x * x * x));
    let du = GELU_C * (1.0 + 3.0 * GELU_K * x * x);
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
}

// act(x) for one of the ACT_* kinds.
fn activate(kind: u32, x: f32) -> f32 {
    switch kind {
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_GELU: { return gelu_value(x); }
        default: { return x; }
    }
}

// act'(x); ReLU's is 0 at 0.
fn activation_slope(kind: u32, x: f32) -> f32 {
    switch kind {
        case ACT_RELU: { return select(0.0, 1.0, x > 0.0); }
        case ACT_GELU: { return gelu_slope(x); }
        default: { return 1.0; }
    }
}
