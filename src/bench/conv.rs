//! Convolution cases (forward both ways, backward to the input and to the weights), each
//! with the matmul of its equivalent GEMM shape as the same-run reference; batchnorm and
//! pooling cases, measured against the plain copy.

use super::{Case, Work};
use crate::cpu;
use crate::gpu::{Gpu, Result};
use crate::kernels::batchnorm::{self as bn, BatchNormConfig, BatchNormShape};
use crate::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use crate::kernels::matmul::MatmulVariant;
use crate::kernels::pool;

/// A conv case and the GEMM-shaped matmul it stands beside.
pub struct ConvCase {
    pub case: Case,
    /// (m, n, k) of the equivalent GEMM.
    pub gemm: (u32, u32, u32),
}

/// "BATCHxC_INxSIZExC_OUTxKxSTRIDE", padding k/2 (a ResNet layer).
pub fn conv_shape_name(s: &Conv2d) -> String {
    format!(
        "{}x{}x{}x{}x{}x{}",
        s.batch, s.c_in, s.h, s.c_out, s.kh, s.stride
    )
}

/// The four conv cases at `s`: forward (gemm), forward (direct), backward to the input and
/// backward to the weights.
pub fn conv_cases(gpu: &Gpu, s: Conv2d) -> Result<Vec<ConvCase>> {
    s.validate("bench conv2d")?;
    let x = gpu.upload("x", &cpu::seeded(31, s.input_len(), -1.0, 1.0));
    let w = gpu.upload("w", &cpu::seeded(32, s.weight_len(), -1.0, 1.0));
    let dy = gpu.upload("dy", &cpu::seeded(33, s.output_len(), -1.0, 1.0));
    let y = gpu.zeroed_f32("y", s.output_len());
    let dx = gpu.zeroed_f32("dx", s.input_len());
    let dw = gpu.zeroed_f32("dw", s.weight_len());
    let scratch = gpu.zeroed_f32("scratch", conv::conv2d_weight_scratch_len(gpu, &s));
    let shape = conv_shape_name(&s);
    let work = Work::Flops(s.flops());
    let mut cases = Vec::new();
    for variant in [ConvVariant::Gemm, ConvVariant::Direct] {
        let (y, x, w) = (y.clone(), x.clone(), w.clone());
        cases.push(ConvCase {
            case: Case {
                kernel: "conv2d_fwd",
                shape: shape.clone(),
                variant: variant.name().into(),
                work,
                run: Box::new(move |gpu| {
                    gpu.run(|p| conv::conv2d_forward(gpu, p, &y, &x, &w, None, &s, variant, false))
                }),
            },
            gemm: s.forward_gemm(),
        });
    }
    let (dy2, w2) = (dy.clone(), w.clone());
    cases.push(ConvCase {
        case: Case {
            kernel: "conv2d_bwd_input",
            shape: shape.clone(),
            variant: "gemm".into(),
            work,
            run: Box::new(move |gpu| {
                gpu.run(|p| conv::conv2d_backward_input(gpu, p, &dx, &dy2, &w2, &s, false))
            }),
        },
        gemm: s.backward_input_gemm(),
    });
    cases.push(ConvCase {
        case: Case {
            kernel: "conv2d_bwd_weight",
            shape,
            variant: "gemm+splitk".into(),
            work,
            run: Box::new(move |gpu| {
                gpu.run(|p| conv::conv2d_backward_weight(gpu, p, &dw, &scratch, &dy, &x, &s, false))
            }),
        },
        gemm: s.backward_weight_gemm(),
    });
    Ok(cases)
}

/// The matmul of a GEMM shape (the conv cases' reference).
pub fn gemm_case(gpu: &Gpu, (m, n, k): (u32, u32, u32)) -> Result<Case> {
    super::matmul_case(gpu, m, n, k, MatmulVariant::Auto)
}

/// Batchnorm (training forward, eval forward, backward) and global average pooling over
/// activations [batch, channels, pixels]; bytes count each buffer once.
pub fn batchnorm_cases(gpu: &Gpu, s: BatchNormShape) -> Vec<Case> {
    let len = s.len() as usize;
    let c = s.channels as usize;
    let x = gpu.upload("x", &cpu::seeded(34, len, -1.0, 1.0));
    let dy = gpu.upload("dy", &cpu::seeded(35, len, -1.0, 1.0));
    let (y, dx) = (gpu.zeroed_f32("y", len), gpu.zeroed_f32("dx", len));
    let ones = gpu.upload("gamma", &vec![1.0f32; c]);
    let zeros = gpu.zeroed_f32("beta", c);
    let stats: Vec<_> = (0..6).map(|_| gpu.zeroed_f32("stat", c)).collect();
    let config = BatchNormConfig::default();
    let shape = format!("{}x{}x{}", s.batch, s.channels, s.pixels);
    let case = |kernel, buffers: f64, run: super::RunFn| Case {
        kernel,
        shape: shape.clone(),
        variant: "per-channel".into(),
        work: Work::Bytes(buffers * 4.0 * len as f64),
        run,
    };
    let (x1, y1, g1, b1, st1) = (
        x.clone(),
        y.clone(),
        ones.clone(),
        zeros.clone(),
        stats.clone(),
    );
    let (x2, y2, g2, b2, st2) = (
        x.clone(),
        y.clone(),
        ones.clone(),
        zeros.clone(),
        stats.clone(),
    );
    let (x3, y3) = (x.clone(), y.clone());
    let rows = s.batch * s.channels;
    vec![
        case(
            "batchnorm_train",
            2.0,
            Box::new(move |gpu| {
                let [m, r, rm, rv, ..] = [&st1[0], &st1[1], &st1[2], &st1[3], &st1[4]];
                gpu.run(|p| {
                    bn::batchnorm_train_forward(
                        gpu, p, &y1, m, r, rm, rv, &x1, &g1, &b1, &s, &config,
                    )
                })
            }),
        ),
        case(
            "batchnorm_eval",
            2.0,
            Box::new(move |gpu| {
                gpu.run(|p| {
                    bn::batchnorm_eval_forward(
                        gpu, p, &y2, &x2, &st2[2], &st2[3], &g2, &b2, &s, &config,
                    )
                })
            }),
        ),
        case(
            "batchnorm_bwd",
            3.0,
            Box::new(move |gpu| {
                let [dg, db, m, r] = [&stats[4], &stats[5], &stats[0], &stats[1]];
                gpu.run(|p| {
                    bn::batchnorm_backward(gpu, p, &dx, dg, db, &dy, &x, m, r, &ones, &s, false)
                })
            }),
        ),
        Case {
            kernel: "global_avg_pool",
            shape: shape.clone(),
            variant: "grid-stride".into(),
            work: Work::Bytes(4.0 * (len + rows as usize) as f64),
            run: Box::new(move |gpu| {
                gpu.run(|p| pool::global_avg_pool_forward(gpu, p, &y3, &x3, rows, s.pixels))
            }),
        },
    ]
}
