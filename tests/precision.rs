//! f16 buffers: the f32 ↔ f16 casts bit for bit against the host's conversion, and the
//! matmul variants on f16 operands (f32 or f16 output) and the convolutions on f16 against
//! the f32 reference on the same f16-rounded inputs (tolerances: `common::precision::tolerance`). A device without
//! `SHADER_F16` is refused before anything is recorded, with the feature named, and so is a
//! buffer wgpu could not bind (not a whole number of 4-byte words).

mod common;

use common::launches::{launches, takes_dtype};
use common::precision::{check_matmul_f16, read_as_f32, tolerance, upload_as};
use rezero::cpu;
use rezero::kernels::bias::Activation;
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use rezero::kernels::matmul::{Block, Matmul, MatmulVariant, matmul};
use rezero::kernels::{Dtype, cast};

#[test]
fn casts_round_to_nearest_even_and_overflow_to_infinity() {
    let Some(gpu) = common::f16_gpu() else { return };
    // Ties, subnormals, the largest finite f16 and the first values that round past it.
    let mut x = vec![
        0.0,
        -0.0,
        1.0,
        -2.5,
        1.000_488_3,
        1.001_464_8,
        6.0e-8,
        -3.0e-6,
        65504.0,
        65519.0,
        65520.0,
        -65520.0,
        1.0e9,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    x.extend(cpu::seeded(5, 1001, -70000.0, 70000.0));
    let n = x.len();
    for scale in [1.0f32, 0.5, 1024.0] {
        let scaled: Vec<f32> = x.iter().map(|v| v * scale).collect();
        let want = cpu::to_f16(&scaled);
        let gx = gpu.upload("x", &x);
        let half = gpu.zeroed("half", n as u64 * 2);
        let back = gpu.zeroed_f32("back", n);
        pollster::block_on(gpu.run(|pass| {
            cast::to_f16(gpu, pass, &half, &gx, n as u32, scale)?;
            cast::to_f32(gpu, pass, &back, &half, n as u32, 2.0)
        }))
        .unwrap();
        let got = pollster::block_on(gpu.read::<half::f16>(&half, n)).unwrap();
        let back = pollster::block_on(gpu.read_f32(&back, n)).unwrap();
        for (i, ((g, w), b)) in got.iter().zip(&want).zip(&back).enumerate() {
            // WGSL lets a device flush f16 subnormals to zero (keeping the sign or not).
            let subnormal = w.to_f32() != 0.0 && w.to_f32().abs() < 2f32.powi(-14);
            let flushed = subnormal && g.to_f32() == 0.0;
            assert!(
                g.to_bits() == w.to_bits() || flushed,
                "to_f16 of {} (scale {scale}) at {i}: got {g}, expected {w}",
                x[i]
            );
            assert_eq!(b.to_bits(), (2.0 * g.to_f32()).to_bits(), "to_f32 at {i}");
        }
    }
}

/// Edges in every dimension, whole vec4s everywhere (the vec4 loads and stores), and
/// operands of exactly one vec4 of f16 (8 bytes: bound, not replaced by a placeholder).
const AWKWARD: [(u32, u32, u32); 4] = [(1, 1, 1), (1, 4, 4), (33, 17, 7), (68, 36, 20)];

/// The variants on f16: the simple ones and one blocked tile. The f16 code of the blocked
/// kernel (its loads, stores and epilogue) is the same for every tile; tests/matmul.rs
/// covers the tiles, and tests/translate.rs every tile on f16.
fn variants() -> Vec<MatmulVariant> {
    let mut all = MatmulVariant::SIMPLE.to_vec();
    all.push(MatmulVariant::Blocked(Block::new(32, 32, 4, 4, 4)));
    all
}

#[test]
fn every_variant_on_f16_operands_awkward_shapes_all_layouts() {
    let Some(gpu) = common::f16_gpu() else { return };
    for variant in variants() {
        for output in [Dtype::F32, Dtype::F16] {
            for (m, n, k) in AWKWARD {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let desc = Matmul::new(m, n, k)
                        .trans_a(ta)
                        .trans_b(tb)
                        .dtypes(Dtype::F16, output)
                        .variant(variant);
                    if variant == MatmulVariant::Reg8x4 && desc.vec4_obstacle().is_some() {
                        continue;
                    }
                    check_matmul_f16(gpu, desc, false, None);
                }
            }
        }
    }
}

#[test]
fn f16_epilogues_bias_accumulate_activation_and_batches() {
    let Some(gpu) = common::f16_gpu() else { return };
    for variant in variants() {
        for output in [Dtype::F32, Dtype::F16] {
            let desc = Matmul::new(17, 12, 24)
                .dtypes(Dtype::F16, output)
                .variant(variant);
            check_matmul_f16(gpu, desc.batch(3).accumulate(true), true, None);
            // B shared by the batches (a weight), vec4-aligned for reg8x4 and VEC4.
            let shared = Matmul::new(9, 16, 12)
                .batch(3)
                .strides(9 * 12, 0, 9 * 16)
                .dtypes(Dtype::F16, output)
                .variant(variant);
            check_matmul_f16(gpu, shared, true, None);
            for act in [Activation::Relu, Activation::Gelu] {
                check_matmul_f16(gpu, desc.trans_b(true), true, Some(act));
            }
        }
    }
}

#[test]
fn f16_requests_are_refused_clearly() {
    let Some(gpu) = common::f16_gpu() else { return };
    let a = gpu.zeroed("a", 64);
    let c = gpu.zeroed("c", 64);
    // f32 operands cannot write an f16 C.
    let desc = Matmul::new(4, 4, 4).dtypes(Dtype::F32, Dtype::F16);
    let err =
        pollster::block_on(gpu.run(|pass| matmul(gpu, pass, &c, &a, &a, None, &desc).map(drop)))
            .unwrap_err()
            .to_string();
    assert!(err.contains("f16 output needs f16 operands"), "{err}");
    // An f16 buffer one element short names its type and size.
    let desc = Matmul::new(4, 4, 4).dtypes(Dtype::F16, Dtype::F16);
    let short = gpu.zeroed("short", 28);
    let err = pollster::block_on(
        gpu.run(|pass| matmul(gpu, pass, &c, &short, &a, None, &desc).map(drop)),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("16 f16 elements (32 bytes)"), "{err}");
    // wgpu binds whole 4-byte words: 17 halves in a 34-byte buffer are refused, not bound.
    let odd = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("34 bytes"),
        size: 34,
        usage: rezero::gpu::STORAGE_USAGE,
        mapped_at_creation: false,
    });
    let (wide_a, wide_c) = (gpu.zeroed("a", 4 * 17 * 2), gpu.zeroed("c", 4 * 17 * 2));
    let desc17 = Matmul::new(4, 17, 4).dtypes(Dtype::F16, Dtype::F16);
    let err =
        pollster::block_on(gpu.run(|pass| {
            matmul(gpu, pass, &wide_c, &wide_a, &wide_a, Some(&odd), &desc17).map(drop)
        }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("multiple of 4 bytes"), "{err}");
    // Casts: no elements, a scale that is not a number, a count past the buffers.
    let refused = |n: u32, scale: f32| {
        pollster::block_on(gpu.run(|p| cast::to_f16(gpu, p, &c, &a, n, scale)))
            .unwrap_err()
            .to_string()
    };
    assert!(
        refused(0, 1.0).contains("dimension n"),
        "{}",
        refused(0, 1.0)
    );
    for scale in [f32::NAN, f32::INFINITY] {
        assert!(refused(4, scale).contains("not a finite number"));
    }
    assert!(refused(u32::MAX, 1.0).contains("elements"));
    // A precision that is not f32 or f16, as `--precision` would parse it.
    let err = "f64".parse::<Dtype>().unwrap_err().to_string();
    assert!(err.contains("not f32 or f16"), "{err}");
}

/// A device without `SHADER_F16` is told which feature, before anything is recorded, by
/// every launcher that takes f16: the shared device where it lacks f16 (wgpu's GL
/// fallback), else a device opened without it (an embedder's default).
#[test]
fn a_device_without_f16_is_told_which_feature() {
    let Some(shared) = common::gpu() else { return };
    let plain;
    let gpu = if shared.features().contains(wgpu::Features::SHADER_F16) {
        let Some(opened) = common::gpu_with_default_limits() else {
            return;
        };
        plain = opened;
        &plain
    } else {
        shared
    };
    assert!(!gpu.features().contains(wgpu::Features::SHADER_F16));
    let (a, c) = (gpu.zeroed("a", 4096), gpu.zeroed("c", 4096));
    let desc = Matmul::new(4, 4, 4).dtypes(Dtype::F16, Dtype::F16);
    let conv_shape = Conv2d::new(1, 2, 4, 4, 2, 3).dtype(Dtype::F16);
    let attempts: [(&str, rezero::Result<()>); 4] = [
        (
            "matmul",
            pollster::block_on(gpu.run(|p| matmul(gpu, p, &c, &a, &a, None, &desc).map(drop))),
        ),
        (
            "to_f16",
            pollster::block_on(gpu.run(|p| cast::to_f16(gpu, p, &c, &a, 4, 1.0))),
        ),
        (
            "to_f32",
            pollster::block_on(gpu.run(|p| cast::to_f32(gpu, p, &c, &a, 4, 1.0))),
        ),
        (
            "conv2d",
            pollster::block_on(gpu.run(|p| {
                conv::conv2d_forward(
                    gpu,
                    p,
                    &c,
                    &a,
                    &a,
                    None,
                    &conv_shape,
                    ConvVariant::Auto,
                    false,
                )
            })),
        ),
    ];
    for (what, result) in attempts {
        let err = result.expect_err(what).to_string();
        assert!(err.contains("SHADER_F16"), "{what}: {err}");
    }
    // The row, elementwise, ReZero and bias families, as the contract table launches them.
    let buffers = common::launches::Buffers::new(gpu, None);
    let typed = launches()
        .into_iter()
        .filter(|(family, _)| takes_dtype(family));
    for (family, launch) in typed {
        let result = pollster::block_on(gpu.run(|p| launch(gpu, p, &buffers, Dtype::F16)));
        let err = result.expect_err(family).to_string();
        assert!(err.contains("SHADER_F16"), "{family}: {err}");
    }
}

/// Convolutions on f16: the forward (with bias and accumulation), the backward to the
/// input (f16) and to the weights and bias (f32), every variant, against the f32
/// reference on the same f16 inputs. Edges, strides, padding and the vec4 paths.
#[test]
fn convolutions_on_f16_every_pass_and_variant() {
    let Some(gpu) = common::f16_gpu() else { return };
    let shapes = [
        Conv2d::new(1, 3, 7, 5, 5, 3).pad(1),
        Conv2d::new(3, 5, 9, 11, 6, 3).stride(2).pad(1),
        Conv2d::new(2, 16, 8, 8, 16, 3).pad(1),
    ];
    // One blocked tile: the f16 loads and stores are the same code for every tile
    // (tests/conv.rs covers the tiles, tests/translate.rs every tile on f16).
    let variants = [
        ConvVariant::Direct,
        ConvVariant::Reg,
        ConvVariant::Blocked(ConvVariant::SIMPLE_BLOCK),
    ];
    for s in shapes.map(|s| s.dtype(Dtype::F16)) {
        let round = |seed, len| cpu::round_f16(&cpu::seeded(seed, len, -1.0, 1.0));
        let (x, w, b, dy) = (
            round(1, s.input_len()),
            round(2, s.weight_len()),
            round(3, s.c_out as usize),
            round(4, s.output_len()),
        );
        let up = |label, values: &[f32]| upload_as(gpu, label, values, Dtype::F16);
        let (gx, gw, gb, gdy) = (up("x", &x), up("w", &w), up("b", &b), up("dy", &dy));
        for variant in variants {
            for accumulate in [false, true] {
                let old_y = round(5, s.output_len());
                let old_dx = round(6, s.input_len());
                let (old_dw, old_db) = (
                    cpu::seeded(7, s.weight_len(), -1.0, 1.0),
                    vec![0.5; s.c_out as usize],
                );
                let (gy, gdx) = (up("y", &old_y), up("dx", &old_dx));
                let (gdw, gdb) = (gpu.upload("dw", &old_dw), gpu.upload("db", &old_db));
                let scratch = gpu.zeroed_f32("scratch", conv::conv2d_weight_scratch_len(gpu, &s));
                pollster::block_on(gpu.run(|p| {
                    conv::conv2d_forward(
                        gpu,
                        p,
                        &gy,
                        &gx,
                        &gw,
                        Some(&gb),
                        &s,
                        variant,
                        accumulate,
                    )?;
                    conv::conv2d_backward_input(gpu, p, &gdx, &gdy, &gw, &s, variant, accumulate)?;
                    conv::conv2d_backward_weight(
                        gpu, p, &gdw, &scratch, &gdy, &gx, &s, variant, accumulate,
                    )?;
                    conv::conv2d_backward_bias(gpu, p, &gdb, &gdy, &s, accumulate)
                }))
                .unwrap();
                let (mut y, mut dx, mut dw, mut db) = (old_y, old_dx, old_dw, old_db);
                cpu::conv2d::conv2d_forward(&mut y, &x, &w, Some(&b), &s, accumulate);
                cpu::conv2d::conv2d_backward_input(&mut dx, &dy, &w, &s, accumulate);
                cpu::conv2d::conv2d_backward_weight(&mut dw, &dy, &x, &s, accumulate);
                cpu::conv2d::conv2d_backward_bias(&mut db, &dy, &s, accumulate);
                let what = |t: &str| format!("f16 {t} {} {s:?} acc={accumulate}", variant.name());
                let window = s.c_in * s.kh * s.kw;
                let taps = s.c_out * s.kh * s.kw;
                let pixels = s.batch * s.out_h() * s.out_w();
                let checks = [
                    ("y", &gy, &y, window, Dtype::F16),
                    ("dx", &gdx, &dx, taps, Dtype::F16),
                    ("dw", &gdw, &dw, pixels, Dtype::F32),
                    ("db", &gdb, &db, pixels, Dtype::F32),
                ];
                for (name, buffer, want, k, dtype) in checks {
                    let got = read_as_f32(gpu, buffer, want.len(), dtype);
                    let (atol, rtol) = tolerance(k, dtype);
                    common::assert_close(&what(name), &got, want, atol, rtol);
                }
            }
        }
    }
}
