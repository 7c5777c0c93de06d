//! Convolution cases (forward both ways, backward to the input and to the weights), each
//! with the matmul of its equivalent GEMM shape as the same-run reference; batchnorm and
//! pooling cases, measured against the plain copy.

use super::{Case, Work, wait};
use crate::cpu;
use crate::gpu::{Gpu, Result};
use crate::kernels::batchnorm::{self as bn, BatchNormConfig, BatchNormShape};
use crate::kernels::conv2d::{self as conv, Conv2d, ConvPass, ConvVariant};
use crate::kernels::matmul::MatmulVariant;
use crate::kernels::{Grad, NormSaved, pool};

/// The CIFAR ResNet's convolutions at batch 128 (BATCHxC_INxSIZExC_OUTxKxSTRIDE, padding
/// K/2): what `rezero bench conv2d` and `rezero tune` measure by default.
pub const RESNET_CONV_SHAPES: [&str; 6] = [
    "128x16x32x16x3x1",
    "128x16x32x32x3x2",
    "128x32x16x32x3x1",
    "128x32x16x64x3x2",
    "128x64x8x64x3x1",
    "128x16x32x32x1x2",
];

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

/// The variants timed for `pass`: the register-blocked kernel, the simple blocked tile
/// (the earlier tiled kernel's shape), `Auto`'s choice (tuned now if the table has none)
/// and, for the forward pass, the direct loop. Returns (label, concrete variant).
fn bench_variants(gpu: &Gpu, pass: ConvPass, s: &Conv2d) -> Result<Vec<(String, ConvVariant)>> {
    let mut list = vec![
        ConvVariant::Reg,
        ConvVariant::Blocked(ConvVariant::SIMPLE_BLOCK),
    ];
    if pass == ConvPass::Forward {
        list.insert(0, ConvVariant::Direct);
    }
    let mut labelled: Vec<_> = list.into_iter().map(|v| (v.name(), v)).collect();
    let auto = ConvVariant::Auto.resolve(gpu, pass, s)?;
    labelled.push((format!("auto:{}", auto.name()), auto));
    Ok(labelled)
}

/// The conv cases at `s`: every pass with the variants of `bench_variants`.
pub fn conv_cases(gpu: &Gpu, s: Conv2d) -> Result<Vec<ConvCase>> {
    s.validate("bench conv2d")?;
    let buffers = [
        ("the input", s.input_len() as u64),
        ("the weight", s.weight_len() as u64),
        ("the output", s.output_len() as u64),
        (
            "the scratch",
            conv::conv2d_weight_scratch_len(gpu, &s) as u64,
        ),
    ];
    let case = format!("bench conv2d {}", conv_shape_name(&s));
    super::cases::check_buffers(gpu, &case, &buffers)?;
    let x = gpu.upload("x", &cpu::seeded(31, s.input_len(), -1.0, 1.0));
    let w = gpu.upload("w", &cpu::seeded(32, s.weight_len(), -1.0, 1.0));
    let dy = gpu.upload("dy", &cpu::seeded(33, s.output_len(), -1.0, 1.0));
    let dx = gpu.zeroed_f32("dx", s.input_len());
    let dw = gpu.zeroed_f32("dw", s.weight_len());
    let scratch = gpu.zeroed_f32("scratch", conv::conv2d_weight_scratch_len(gpu, &s));
    let shape = conv_shape_name(&s);
    let work = Work::Flops(s.flops());
    let mut cases = Vec::new();
    for (label, variant) in bench_variants(gpu, ConvPass::Forward, &s)? {
        let mut case = conv_forward_case(gpu, s, variant, &x, &w);
        case.variant = label;
        cases.push(ConvCase {
            case,
            gemm: s.forward_gemm(),
        });
    }
    for (label, variant) in bench_variants(gpu, ConvPass::BackwardInput, &s)? {
        let (dx, dy, w) = (dx.clone(), dy.clone(), w.clone());
        cases.push(ConvCase {
            case: Case {
                kernel: "conv2d_bwd_input",
                shape: shape.clone(),
                variant: label,
                work,
                run: Box::new(move |gpu| {
                    wait(gpu.run(|p| {
                        conv::conv2d_backward_input(gpu, p, &dx, &dy, &w, &s, variant, false)
                    }))
                }),
            },
            gemm: s.backward_input_gemm(),
        });
    }
    for (label, variant) in bench_variants(gpu, ConvPass::BackwardWeight, &s)? {
        let (dw, scratch, dy, x) = (dw.clone(), scratch.clone(), dy.clone(), x.clone());
        cases.push(ConvCase {
            case: Case {
                kernel: "conv2d_bwd_weight",
                shape: shape.clone(),
                variant: format!("{label}+splitk"),
                work,
                run: Box::new(move |gpu| {
                    wait(gpu.run(|p| {
                        conv::conv2d_backward_weight(
                            gpu, p, &dw, &scratch, &dy, &x, &s, variant, false,
                        )
                    }))
                }),
            },
            gemm: s.backward_weight_gemm(),
        });
    }
    Ok(cases)
}

/// The forward pass of `s` with `variant` on the given input and weights.
pub fn conv_forward_case(
    gpu: &Gpu,
    s: Conv2d,
    variant: ConvVariant,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
) -> Case {
    let (y, x, w) = (gpu.zeroed_f32("y", s.output_len()), x.clone(), w.clone());
    Case {
        kernel: "conv2d_fwd",
        shape: conv_shape_name(&s),
        variant: variant.name(),
        work: Work::Flops(s.flops()),
        run: Box::new(move |gpu| {
            wait(gpu.run(|p| conv::conv2d_forward(gpu, p, &y, &x, &w, None, &s, variant, false)))
        }),
    }
}

/// The matmul of a GEMM shape (the conv cases' reference).
pub fn gemm_case(gpu: &Gpu, (m, n, k): (u32, u32, u32)) -> Result<Case> {
    super::matmul_case(gpu, m, n, k, MatmulVariant::Auto)
}

/// Batchnorm (training forward both ways, eval forward, backward both ways) and global
/// average pooling over activations [batch, channels, pixels]; bytes count each buffer once.
pub fn batchnorm_cases(gpu: &Gpu, s: BatchNormShape) -> Vec<Case> {
    let len = s.len() as usize;
    let c = s.channels as usize;
    let x = gpu.upload("x", &cpu::seeded(34, len, -1.0, 1.0));
    let dy = gpu.upload("dy", &cpu::seeded(35, len, -1.0, 1.0));
    let (y, dx) = (gpu.zeroed_f32("y", len), gpu.zeroed_f32("dx", len));
    let gamma = gpu.upload("gamma", &vec![1.0f32; c]);
    let beta = gpu.zeroed_f32("beta", c);
    // mean, rstd, running mean, running var, dgamma, dbeta
    let stats: Vec<_> = (0..6).map(|_| gpu.zeroed_f32("stat", c)).collect();
    let shape = format!("{}x{}x{}", s.batch, s.channels, s.pixels);
    let mut cases = Vec::new();
    for (variant, block) in [("per-channel", u32::MAX), ("split", bn::SPLIT_BLOCK)] {
        let config = BatchNormConfig {
            block: Some(block),
            ..Default::default()
        };
        let scratch = gpu.zeroed_f32("scratch", bn::batchnorm_scratch_len(gpu, &s, &config));
        let (x1, y1, g, b, st, sc) = (
            x.clone(),
            y.clone(),
            gamma.clone(),
            beta.clone(),
            stats.clone(),
            scratch.clone(),
        );
        cases.push(Case {
            kernel: "batchnorm_train",
            shape: shape.clone(),
            variant: variant.into(),
            work: Work::Bytes(2.0 * 4.0 * len as f64),
            run: Box::new(move |gpu| {
                let [m, r, rm, rv] = [&st[0], &st[1], &st[2], &st[3]];
                wait(gpu.run(|p| {
                    bn::batchnorm_train_forward(
                        gpu, p, &y1, m, r, rm, rv, &sc, &x1, &g, &b, &s, &config,
                    )
                }))
            }),
        });
        let (x2, dx2, dy2, g, st) = (
            x.clone(),
            dx.clone(),
            dy.clone(),
            gamma.clone(),
            stats.clone(),
        );
        cases.push(Case {
            kernel: "batchnorm_bwd",
            shape: shape.clone(),
            variant: variant.into(),
            work: Work::Bytes(3.0 * 4.0 * len as f64),
            run: Box::new(move |gpu| {
                let [m, r, dg, db] = [&st[0], &st[1], &st[4], &st[5]];
                let saved = NormSaved {
                    x: &x2,
                    mean: m,
                    rstd: r,
                    gain: &g,
                };
                let (gx, gg, gb) = (Grad::write(&dx2), Grad::add(dg), Grad::add(db));
                wait(gpu.run(|p| {
                    bn::batchnorm_backward(gpu, p, gx, gg, gb, &scratch, &dy2, saved, &s, &config)
                }))
            }),
        });
    }
    let (x2, y2) = (x.clone(), y.clone());
    cases.push(eval_case(s, shape.clone(), [y2, x2, gamma, beta], stats));
    cases.push(pool_case(s, shape, y, x));
    cases
}

/// Batchnorm's eval forward, y from x with the running statistics (stats[2], stats[3]):
/// reads x, writes y.
fn eval_case(
    s: BatchNormShape,
    shape: String,
    [y, x, gamma, beta]: [wgpu::Buffer; 4],
    stats: Vec<wgpu::Buffer>,
) -> Case {
    let config = BatchNormConfig::default();
    Case {
        kernel: "batchnorm_eval",
        shape,
        variant: "elementwise".into(),
        work: Work::Bytes(2.0 * 4.0 * s.len() as f64),
        run: Box::new(move |gpu| {
            wait(gpu.run(|p| {
                bn::batchnorm_eval_forward(
                    gpu, p, &y, &x, &stats[2], &stats[3], &gamma, &beta, &s, &config,
                )
            }))
        }),
    }
}

/// Global average pooling of x [batch·channels, pixels] into y: reads x, writes y.
fn pool_case(s: BatchNormShape, shape: String, y: wgpu::Buffer, x: wgpu::Buffer) -> Case {
    let rows = s.batch * s.channels;
    Case {
        kernel: "global_avg_pool",
        shape,
        variant: "grid-stride".into(),
        work: Work::Bytes(4.0 * (s.len() as usize + rows as usize) as f64),
        run: Box::new(move |gpu| {
            let (pixels, dtype) = (s.pixels, s.dtype);
            wait(gpu.run(|p| pool::global_avg_pool_forward(gpu, p, &y, &x, rows, pixels, dtype)))
        }),
    }
}
