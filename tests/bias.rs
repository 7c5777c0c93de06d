//! The linear layer's bias and activation: the activation in the matmul's store (every
//! variant) and the bias gradient, alone or through the activation (`kernels::bias`), on
//! awkward shapes against the CPU reference; the tape's fused linear layer against the
//! unfused ops, values and gradients; bad input refused.

mod common;

use common::precision::{dtypes, exact, read_as_f32, upload_as, widen};
use common::{assert_close, atol_for};
use rezero::cpu;
use rezero::kernels::Dtype;
use rezero::kernels::Grad;
use rezero::kernels::bias::{Activation, BiasShape, bias_activation_backward, bias_backward};
use rezero::kernels::matmul::{Block, Matmul, MatmulVariant, matmul_activation};
use rezero::tape::{Param, Tape};

const ACTIVATIONS: [Activation; 2] = [Activation::Relu, Activation::Gelu];

/// (rows, cols): one row, one column, the most rows of one pass, the first two-pass size,
/// and several chunks with a ragged last one.
const SHAPES: [(u32, u32); 7] = [
    (1, 1),
    (3, 5),
    (17, 65),
    (1024, 3),
    (1025, 130),
    (2000, 67),
    (130, 1),
];

/// Runs the bias backward (through `activation` when given) on seeded inputs of the shape's
/// type with each gradient written (poisoned first with NaN) or added to, and compares with
/// the CPU on the same (f16-rounded) inputs.
fn check_bias_backward(shape: BiasShape, activation: Option<Activation>, accumulate: bool) {
    let gpu = require_gpu!();
    let (rows, cols) = (shape.rows as usize, shape.cols as usize);
    let (len, dtype) = (rows * cols, shape.dtype);
    let dy = exact(&cpu::seeded(1, len, -1.0, 1.0), dtype);
    let pre = exact(&cpu::seeded(2, len, -2.0, 2.0), dtype);
    let start = |seed, n| match accumulate {
        true => cpu::seeded(seed, n, -1.0, 1.0),
        false => vec![f32::NAN; n],
    };
    let (dx0, dbias0) = (exact(&start(3, len), dtype), start(4, cols));
    let (mut want_dx, mut want_dbias) = (dx0.clone(), dbias0.clone());
    let through = activation.map(|a| (&mut want_dx[..], accumulate, &pre[..], a));
    cpu::bias::bias_backward(&mut want_dbias, accumulate, through, &dy, shape);
    let (gdx, gdbias) = (
        upload_as(gpu, "dx", &dx0, dtype),
        gpu.upload("dbias", &dbias0),
    );
    let (gdy, gpre) = (
        upload_as(gpu, "dy", &dy, dtype),
        upload_as(gpu, "pre", &pre, dtype),
    );
    let scratch = (shape.scratch_len() > 0).then(|| gpu.zeroed_f32("scratch", shape.scratch_len()));
    let scratch = scratch.as_ref();
    let (dx, dbias) = (Grad::new(&gdx, accumulate), Grad::new(&gdbias, accumulate));
    pollster::block_on(gpu.run(|pass| match activation {
        Some(a) => bias_activation_backward(gpu, pass, dx, dbias, scratch, &gdy, &gpre, a, shape),
        None => bias_backward(gpu, pass, dbias, scratch, &gdy, shape),
    }))
    .unwrap();
    let what = format!("{dtype} {rows}x{cols} {activation:?} accumulate {accumulate}");
    let got = pollster::block_on(gpu.read_f32(&gdbias, cols)).unwrap();
    assert_close(
        &format!("{what} dbias"),
        &got,
        &want_dbias,
        atol_for(rows),
        1e-4,
    );
    let got = read_as_f32(gpu, &gdx, len, dtype);
    if activation.is_some() {
        let (atol, rtol) = widen((1e-5, 1e-4), dtype);
        assert_close(&format!("{what} dx"), &got, &want_dx, atol, rtol);
    } else {
        // With no activation dx is not touched: every bit as it was (NaN included).
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&dx0), "{what}: dx was written");
    }
}

#[test]
fn bias_gradient_alone_and_through_each_activation_matches_the_cpu() {
    let gpu = require_gpu!();
    for ((rows, cols), dtype) in SHAPES
        .into_iter()
        .flat_map(|s| dtypes(gpu).into_iter().map(move |d| (s, d)))
    {
        for activation in [None, Some(Activation::Relu), Some(Activation::Gelu)] {
            for accumulate in [false, true] {
                let shape = BiasShape { rows, cols, dtype };
                check_bias_backward(shape, activation, accumulate);
            }
        }
    }
}

/// out = act(op(A)·op(B) + bias) and pre through `matmul_activation` with `variant`,
/// against the CPU (out and pre poisoned with NaN first).
fn check_matmul_activation(desc: Matmul, activation: Activation) {
    let gpu = require_gpu!();
    let (m, n, k) = (desc.m as usize, desc.n as usize, desc.k as usize);
    let a = cpu::seeded(5, m * k, -1.0, 1.0);
    let b = cpu::seeded(6, k * n, -1.0, 1.0);
    let bias = cpu::seeded(7, n, -1.0, 1.0);
    let mut want_pre = vec![0.0; m * n];
    cpu::matmul::matmul(&mut want_pre, &a, &b, Some(&bias), &desc);
    let want_out: Vec<f32> = want_pre
        .iter()
        .map(|&v| cpu::bias::activate(activation, v as f64) as f32)
        .collect();
    let (ga, gb, gbias) = (
        gpu.upload("a", &a),
        gpu.upload("b", &b),
        gpu.upload("bias", &bias),
    );
    let (gout, gpre) = (
        gpu.upload("out", &vec![f32::NAN; m * n]),
        gpu.upload("pre", &vec![f32::NAN; m * n]),
    );
    pollster::block_on(gpu.run(|pass| {
        matmul_activation(
            gpu,
            pass,
            &gout,
            &gpre,
            &ga,
            &gb,
            Some(&gbias),
            activation,
            &desc,
        )
        .map(drop)
    }))
    .unwrap();
    let what = format!(
        "{:?} {m}x{n}x{k} tb {} {activation:?}",
        desc.variant, desc.trans_b
    );
    let atol = atol_for(k);
    assert_close(
        &format!("{what} pre"),
        &pollster::block_on(gpu.read_f32(&gpre, m * n)).unwrap(),
        &want_pre,
        atol,
        1e-4,
    );
    assert_close(
        &format!("{what} out"),
        &pollster::block_on(gpu.read_f32(&gout, m * n)).unwrap(),
        &want_out,
        atol,
        1e-4,
    );
}

#[test]
fn the_activation_in_the_products_store_matches_the_cpu_in_every_variant() {
    let variants = [
        MatmulVariant::Naive,
        MatmulVariant::Tiled,
        MatmulVariant::Reg8x4,
        MatmulVariant::Blocked(Block::LARGE),
        MatmulVariant::Blocked(Block::new(32, 32, 8, 4, 4)),
        MatmulVariant::Auto,
    ];
    // The last shape has every dimension a multiple of 4 (vec4 loads and stores).
    for (m, n, k) in [(1, 1, 1), (17, 33, 5), (70, 66, 130), (36, 72, 20)] {
        for variant in variants {
            for trans_b in [false, true] {
                let desc = Matmul::new(m, n, k).trans_b(trans_b).variant(variant);
                if variant == MatmulVariant::Reg8x4 && desc.vec4_obstacle().is_some() {
                    continue;
                }
                for activation in ACTIVATIONS {
                    check_matmul_activation(desc, activation);
                }
            }
        }
    }
}

#[test]
fn the_fused_linear_layer_matches_linear_then_activation_forward_and_backward() {
    let gpu = require_gpu!();
    let (rows, inputs, outputs) = (1100, 12, 9); // 1,100 rows: the two-pass bias gradient
    let x0 = cpu::seeded(8, rows * inputs, -1.0, 1.0);
    let w0 = cpu::seeded(9, outputs * inputs, -0.5, 0.5);
    let b0 = cpu::seeded(10, outputs, -0.5, 0.5);
    let seed = cpu::seeded(11, rows * outputs, -1.0, 1.0);
    for activation in ACTIVATIONS {
        let run = |fused: bool| -> Vec<Vec<f32>> {
            let px = Param::new(gpu, "x", &[rows, inputs], &x0, true).unwrap();
            let pw = Param::new(gpu, "w", &[outputs, inputs], &w0, true).unwrap();
            let pb = Param::new(gpu, "b", &[outputs], &b0, true).unwrap();
            let mut tape = Tape::new(gpu);
            let (x, w, b) = (tape.param(&px), tape.param(&pw), tape.param(&pb));
            let y = if fused {
                tape.linear_activation(&x, &w, &b, activation).unwrap()
            } else {
                let h = tape.linear(&x, &w, Some(&b)).unwrap();
                match activation {
                    Activation::Relu => tape.relu(&h).unwrap(),
                    Activation::Gelu => tape.gelu(&h).unwrap(),
                }
            };
            tape.backward_with(&y, &seed).unwrap();
            tape.flush();
            let out = pollster::block_on(gpu.read_f32(y.buffer(), rows * outputs)).unwrap();
            let grads = [&px, &pw, &pb]
                .map(|p| pollster::block_on(gpu.read_f32(&p.grad, p.len())).unwrap());
            std::iter::once(out).chain(grads).collect()
        };
        let (fused, unfused) = (run(true), run(false));
        for (name, (got, want)) in ["y", "dx", "dW", "db"]
            .iter()
            .zip(fused.iter().zip(&unfused))
        {
            assert_close(&format!("{activation:?} {name}"), got, want, 1e-5, 1e-4);
        }
    }
}

/// What records one launch into a pass.
type Record<'a> = dyn Fn(&mut wgpu::ComputePass<'_>) -> rezero::Result<()> + 'a;

/// Asserts `result` is an error whose message names `needle`.
fn refused(what: &str, needle: &str, result: rezero::Result<()>) {
    let err = result.expect_err(what).to_string();
    assert!(
        err.contains(needle),
        "{what}: '{err}' should name '{needle}'"
    );
}

#[test]
fn bad_bias_gradient_input_is_refused() {
    let gpu = require_gpu!();
    let small = gpu.zeroed_f32("small", 4);
    let big = gpu.zeroed_f32("big", 4096);
    let shape = |rows, cols| BiasShape {
        rows,
        cols,
        dtype: Dtype::F32,
    };
    let (g, relu) = (Grad::write(&big), Activation::Relu);
    // Each is refused before anything is recorded.
    let cases: [(&str, &str, &Record); 9] = [
        ("no rows", "rows", &|p| {
            bias_backward(gpu, p, g, None, &big, shape(0, 4))
        }),
        ("no columns", "cols", &|p| {
            bias_backward(gpu, p, g, None, &big, shape(4, 0))
        }),
        ("dy too small", "dy", &|p| {
            bias_backward(gpu, p, g, None, &small, shape(3, 2))
        }),
        ("dbias too small", "dbias", &|p| {
            bias_backward(gpu, p, Grad::write(&small), None, &big, shape(2, 8))
        }),
        ("scratch too small", "scratch", &|p| {
            bias_backward(gpu, p, g, Some(&small), &big, shape(2000, 2))
        }),
        ("two passes, no scratch", "scratch", &|p| {
            bias_backward(gpu, p, g, None, &big, shape(2000, 2))
        }),
        ("rows × cols past u32", "u32", &|p| {
            bias_backward(gpu, p, g, Some(&big), &big, shape(1 << 16, 1 << 16))
        }),
        ("pre too small", "pre", &|p| {
            bias_activation_backward(gpu, p, g, g, None, &big, &small, relu, shape(8, 8))
        }),
        ("dx too small", "dx", &|p| {
            let dx = Grad::write(&small);
            bias_activation_backward(gpu, p, dx, g, None, &big, &big, relu, shape(8, 8))
        }),
    ];
    for (what, needle, case) in cases {
        refused(what, needle, pollster::block_on(gpu.run(case)));
    }
}

#[test]
fn bad_activation_input_is_refused() {
    let gpu = require_gpu!();
    let small = gpu.zeroed_f32("small", 4);
    let big = gpu.zeroed_f32("big", 4096);
    let (desc, relu) = (Matmul::new(8, 8, 8), Activation::Relu);
    let accumulating = desc.accumulate(true);
    refused(
        "an accumulating activation",
        "cannot be added",
        pollster::block_on(gpu.run(|p| {
            matmul_activation(gpu, p, &big, &small, &big, &big, None, relu, &accumulating).map(drop)
        })),
    );
    // Through the tape: a bias of the wrong length, and inner dimensions that disagree.
    let mut tape = Tape::new(gpu);
    let x = tape.input(&[0.5; 12], &[3, 4]).unwrap();
    let (w, w_bad) = (
        tape.input(&[0.5; 20], &[5, 4]).unwrap(),
        tape.input(&[0.5; 15], &[5, 3]).unwrap(),
    );
    let (b, b_bad) = (
        tape.input(&[0.0; 5], &[5]).unwrap(),
        tape.input(&[0.0; 4], &[4]).unwrap(),
    );
    let gelu = Activation::Gelu;
    let bias_err = tape.linear_activation(&x, &w, &b_bad, gelu).map(drop);
    refused("a bias of 4 for 5 outputs", "bias of 5", bias_err);
    let inner_err = tape.linear_activation(&x, &w_bad, &b, gelu).map(drop);
    refused("W of the wrong width", "inner dimensions", inner_err);
    refused(
        "pre too small for C",
        "pre",
        pollster::block_on(gpu.run(|p| {
            matmul_activation(gpu, p, &big, &small, &big, &big, None, relu, &desc).map(drop)
        })),
    );
}
