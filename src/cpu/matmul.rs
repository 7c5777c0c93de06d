//! CPU reference of `kernels::matmul`.

use crate::kernels::matmul::Matmul;

/// C = op(A)·op(B) (+ bias) (+ C) with the layouts and strides of `desc`.
pub fn matmul(c: &mut [f32], a: &[f32], b: &[f32], bias: Option<&[f32]>, desc: &Matmul) {
    let (m, n, k) = (desc.m as usize, desc.n as usize, desc.k as usize);
    for bat in 0..desc.batch as usize {
        let (ba, bb, bc) = (
            bat * desc.stride_a as usize,
            bat * desc.stride_b as usize,
            bat * desc.stride_c as usize,
        );
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for kk in 0..k {
                    let av = if desc.trans_a {
                        a[ba + kk * m + i]
                    } else {
                        a[ba + i * k + kk]
                    };
                    let bv = if desc.trans_b {
                        b[bb + j * k + kk]
                    } else {
                        b[bb + kk * n + j]
                    };
                    acc += av as f64 * bv as f64;
                }
                if let Some(bias) = bias {
                    acc += bias[j] as f64;
                }
                let out = &mut c[bc + i * n + j];
                *out = if desc.accumulate {
                    *out + acc as f32
                } else {
                    acc as f32
                };
            }
        }
    }
}
