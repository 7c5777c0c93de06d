//! CPU reference of `kernels::conv2d`: direct loops over every window tap.

use crate::kernels::conv2d::Conv2d;

/// Calls `tap(y_index, x_index, w_index)` for every (output pixel, filter tap) pair whose
/// input pixel lies inside the image (padding contributes nothing).
fn for_each_tap(s: &Conv2d, mut tap: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = (s.out_h() as usize, s.out_w() as usize);
    let (h, w, c_in, c_out) = (
        s.h as usize,
        s.w as usize,
        s.c_in as usize,
        s.c_out as usize,
    );
    let (kh, kw) = (s.kh as usize, s.kw as usize);
    let (stride, pad) = (s.stride as usize, s.pad as usize);
    for n in 0..s.batch as usize {
        for co in 0..c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((n * c_out + co) * oh + oy) * ow + ox;
                    for ci in 0..c_in {
                        for ky in 0..kh {
                            let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&v| v < h)
                            else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) =
                                    (ox * stride + kx).checked_sub(pad).filter(|&v| v < w)
                                else {
                                    continue;
                                };
                                let xi = ((n * c_in + ci) * h + iy) * w + ix;
                                let wi = ((co * c_in + ci) * kh + ky) * kw + kx;
                                tap(yi, xi, wi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// y (+)= conv(x, w) + bias. y: [batch, c_out, oh, ow]; x: [batch, c_in, h, w];
/// w: [c_out, c_in, kh, kw]; bias: [c_out].
pub fn conv2d_forward(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: &Conv2d,
    accumulate: bool,
) {
    let mut acc = vec![0f64; s.output_len()];
    for_each_tap(s, |yi, xi, wi| acc[yi] += w[wi] as f64 * x[xi] as f64);
    let pixels = (s.out_h() * s.out_w()) as usize;
    for (i, v) in acc.iter().enumerate() {
        let co = (i / pixels) % s.c_out as usize;
        let b = bias.map_or(0.0, |b| b[co] as f64);
        let old = if accumulate { y[i] as f64 } else { 0.0 };
        y[i] = (v + b + old) as f32;
    }
}

/// dx (+)= ∂L/∂x given dy.
pub fn conv2d_backward_input(dx: &mut [f32], dy: &[f32], w: &[f32], s: &Conv2d, accumulate: bool) {
    let mut acc = vec![0f64; s.input_len()];
    for_each_tap(s, |yi, xi, wi| acc[xi] += w[wi] as f64 * dy[yi] as f64);
    store(dx, &acc, accumulate);
}

/// dw (+)= ∂L/∂w given dy.
pub fn conv2d_backward_weight(dw: &mut [f32], dy: &[f32], x: &[f32], s: &Conv2d, accumulate: bool) {
    let mut acc = vec![0f64; s.weight_len()];
    for_each_tap(s, |yi, xi, wi| acc[wi] += dy[yi] as f64 * x[xi] as f64);
    store(dw, &acc, accumulate);
}

/// db (+)= Σ over images and pixels of dy.
pub fn conv2d_backward_bias(db: &mut [f32], dy: &[f32], s: &Conv2d, accumulate: bool) {
    let pixels = (s.out_h() * s.out_w()) as usize;
    let mut acc = vec![0f64; s.c_out as usize];
    for (i, v) in dy[..s.output_len()].iter().enumerate() {
        acc[(i / pixels) % s.c_out as usize] += *v as f64;
    }
    store(db, &acc, accumulate);
}

fn store(out: &mut [f32], acc: &[f64], accumulate: bool) {
    for (o, v) in out.iter_mut().zip(acc) {
        *o = if accumulate {
            *o + *v as f32
        } else {
            *v as f32
        };
    }
}
