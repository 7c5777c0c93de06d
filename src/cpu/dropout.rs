//! CPU reference of `kernels::dropout`: the same counter-based draw.

use crate::kernels::dropout::Mask;

/// The PCG hash of `shaders/dropout.wgsl`.
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// 1/(1 − p) where element i is kept, 0 where it is dropped, at the step whose key is
/// `step`.
pub fn factor(mask: Mask, step: u32, i: u32) -> f32 {
    if pcg(pcg(i) ^ pcg(mask.site ^ step)) >= mask.threshold() {
        1.0 / (1.0 - mask.p)
    } else {
        0.0
    }
}

/// y = x · keep / (1 − p)
pub fn dropout_forward(y: &mut [f32], x: &[f32], mask: Mask, step: u32) {
    for (i, (y, x)) in y.iter_mut().zip(x).enumerate() {
        *y = x * factor(mask, step, i as u32);
    }
}

/// dx (+)= dy · keep / (1 − p)
pub fn dropout_backward(dx: &mut [f32], dy: &[f32], mask: Mask, step: u32, accumulate: bool) {
    for (i, (dx, dy)) in dx.iter_mut().zip(dy).enumerate() {
        super::put(dx, dy * factor(mask, step, i as u32), accumulate);
    }
}
