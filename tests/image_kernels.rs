//! The batch norm, global average pooling and the zero-padded shortcut against their CPU
//! references on awkward shapes, on f32 and f16 activations (inputs rounded to f16, the
//! reference computed from the same values, tolerances widened by one f16 rounding).

mod common;

use common::precision::{dtypes, exact, read_as_f32, upload_as, widen};
use common::{assert_close, atol_for};
use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::batchnorm::{self as bn, BatchNormConfig, BatchNormShape};
use rezero::kernels::shortcut::{self, ShortcutShape};
use rezero::kernels::{Dtype, Grad, NormSaved, pool};

fn bn_shapes() -> [BatchNormShape; 4] {
    let s = |batch, channels, pixels| BatchNormShape::new(batch, channels, pixels);
    [s(1, 1, 2), s(3, 5, 7), s(2, 17, 64), s(5, 3, 1000)]
}

/// Reads `len` f32 statistics or parameter gradients.
fn read(gpu: &Gpu, buffer: &wgpu::Buffer, len: usize) -> Vec<f32> {
    pollster::block_on(gpu.read_f32(buffer, len)).unwrap()
}

/// `values`, or NaN where the kernel must overwrite them (`add` false).
fn start(values: Vec<f32>, add: bool) -> Vec<f32> {
    if add {
        values
    } else {
        vec![f32::NAN; values.len()]
    }
}

/// The batch norm's inputs: x with an offset and a spread per channel (so that the
/// statistics matter), gamma, beta and the running statistics.
struct BnInputs {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running: (Vec<f32>, Vec<f32>),
}

fn bn_inputs(s: &BatchNormShape) -> BnInputs {
    let (len, c) = (s.len() as usize, s.channels as usize);
    let x: Vec<f32> = cpu::seeded(11, len, -1.0, 1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| v * 3.0 + ((i / s.pixels as usize) % c) as f32)
        .collect();
    BnInputs {
        x: exact(&x, s.dtype),
        gamma: cpu::seeded(12, c, 0.5, 1.5),
        beta: cpu::seeded(13, c, -1.0, 1.0),
        running: (cpu::seeded(14, c, -1.0, 1.0), cpu::seeded(15, c, 0.5, 2.0)),
    }
}

fn bn_case(gpu: &Gpu, s: &BatchNormShape, block: Option<u32>) {
    let (len, c, dtype) = (s.len() as usize, s.channels as usize, s.dtype);
    let config = BatchNormConfig {
        block,
        ..Default::default()
    };
    let scratch = gpu.zeroed_f32("scratch", bn::batchnorm_scratch_len(gpu, s, &config));
    let BnInputs {
        x,
        gamma,
        beta,
        running: (mut rm, mut rv),
    } = bn_inputs(s);
    let (gx, gg, gb) = (
        upload_as(gpu, "x", &x, dtype),
        gpu.upload("g", &gamma),
        gpu.upload("b", &beta),
    );
    let (grm, grv) = (gpu.upload("rm", &rm), gpu.upload("rv", &rv));
    let (gy, gmean, grstd) = (
        gpu.zeroed_f32("y", len),
        gpu.zeroed_f32("mean", c),
        gpu.zeroed_f32("rstd", c),
    );
    pollster::block_on(gpu.run(|p| {
        bn::batchnorm_train_forward(
            gpu, p, &gy, &gmean, &grstd, &grm, &grv, &scratch, &gx, &gg, &gb, s, &config,
        )
    }))
    .unwrap();
    let mut y = vec![0.0; len];
    let (mean, rstd) = cpu::batchnorm::batchnorm_train_forward(
        &mut y, &mut rm, &mut rv, &x, &gamma, &beta, s, &config,
    );
    let what = |t: &str| format!("batchnorm {t} {s:?} block {block:?}");
    let n = (s.batch * s.pixels) as usize;
    let (atol, rtol) = widen((1e-4, 1e-4), dtype);
    assert_close(
        &what("train y"),
        &read_as_f32(gpu, &gy, len, dtype),
        &y,
        atol,
        rtol,
    );
    assert_close(
        &what("mean"),
        &read(gpu, &gmean, c),
        &mean,
        atol_for(n),
        1e-5,
    );
    assert_close(&what("rstd"), &read(gpu, &grstd, c), &rstd, 1e-5, 1e-4);
    assert_close(&what("running mean"), &read(gpu, &grm, c), &rm, 1e-5, 1e-5);
    assert_close(&what("running var"), &read(gpu, &grv, c), &rv, 1e-5, 1e-4);

    pollster::block_on(
        gpu.run(|p| bn::batchnorm_eval_forward(gpu, p, &gy, &gx, &grm, &grv, &gg, &gb, s, &config)),
    )
    .unwrap();
    cpu::batchnorm::batchnorm_eval_forward(&mut y, &x, &rm, &rv, &gamma, &beta, s, config.eps);
    assert_close(
        &what("eval y"),
        &read_as_f32(gpu, &gy, len, dtype),
        &y,
        atol,
        rtol,
    );

    let saved = NormSaved {
        x: &gx,
        mean: &gmean,
        rstd: &grstd,
        gain: &gg,
    };
    bn_backward_case(
        gpu,
        s,
        &config,
        saved,
        (&x, &gamma),
        (&mean, &rstd),
        &scratch,
    );
}

/// The backward of `bn_case`'s forward: each gradient written (its buffer NaN-poisoned
/// first) or added to.
fn bn_backward_case(
    gpu: &Gpu,
    s: &BatchNormShape,
    config: &BatchNormConfig,
    saved: NormSaved,
    (x, gamma): (&[f32], &[f32]),
    (mean, rstd): (&[f32], &[f32]),
    scratch: &wgpu::Buffer,
) {
    let (len, c, dtype) = (s.len() as usize, s.channels as usize, s.dtype);
    let n = (s.batch * s.pixels) as usize;
    let dy = exact(&cpu::seeded(16, len, -1.0, 1.0), dtype);
    let gdy = upload_as(gpu, "dy", &dy, dtype);
    for accumulate in [[false, true, true], [true, false, false]] {
        let old = start(
            exact(&cpu::seeded(17, len, -1.0, 1.0), dtype),
            accumulate[0],
        );
        let (mut dx, mut dg, mut db) = (
            old.clone(),
            start(vec![0.5; c], accumulate[1]),
            start(vec![-0.5; c], accumulate[2]),
        );
        let (gdx, gdg, gdb) = (
            upload_as(gpu, "dx", &old, dtype),
            gpu.upload("dg", &dg),
            gpu.upload("db", &db),
        );
        pollster::block_on(gpu.run(|p| {
            let [adx, adg, adb] = accumulate;
            let (dx, dg, db) = (
                Grad::new(&gdx, adx),
                Grad::new(&gdg, adg),
                Grad::new(&gdb, adb),
            );
            bn::batchnorm_backward(gpu, p, dx, dg, db, scratch, &gdy, saved, s, config)
        }))
        .unwrap();
        cpu::batchnorm::batchnorm_backward(
            &mut dx, &mut dg, &mut db, &dy, x, mean, rstd, gamma, s, accumulate,
        );
        let what = |t: &str| format!("batchnorm {t} {s:?} {config:?} acc {accumulate:?}");
        let (atol, rtol) = widen((1e-4, 1e-3), dtype);
        assert_close(
            &what("dx"),
            &read_as_f32(gpu, &gdx, len, dtype),
            &dx,
            atol,
            rtol,
        );
        assert_close(&what("dgamma"), &read(gpu, &gdg, c), &dg, atol_for(n), 1e-4);
        assert_close(&what("dbeta"), &read(gpu, &gdb, c), &db, atol_for(n), 1e-4);
    }
}

#[test]
fn batchnorm_train_eval_and_backward() {
    let gpu = require_gpu!();
    // One workgroup a channel, and split into blocks of 7, 64 and 1000 elements (the GPU
    // path), whatever this adapter would pick.
    for dtype in dtypes(gpu) {
        for s in bn_shapes() {
            for block in [None, Some(7), Some(64), Some(1000)] {
                bn_case(gpu, &BatchNormShape { dtype, ..s }, block);
            }
        }
    }
}

#[test]
fn batchnorm_rejects_bad_config() {
    let gpu = require_gpu!();
    let b = gpu.zeroed_f32("b", 8);
    let s = BatchNormShape::new(2, 2, 2);
    let config = BatchNormConfig {
        eps: 0.0,
        ..Default::default()
    };
    let err = pollster::block_on(
        gpu.run(|p| bn::batchnorm_eval_forward(gpu, p, &b, &b, &b, &b, &b, &b, &s, &config)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("eps"), "{err}");
}

#[test]
fn global_average_pooling() {
    let gpu = require_gpu!();
    for dtype in dtypes(gpu) {
        for (rows, pixels) in [(1u32, 1u32), (3, 7), (34, 64), (5, 1025)] {
            pool_case(gpu, rows, pixels, dtype);
        }
    }
}

fn pool_case(gpu: &Gpu, rows: u32, pixels: u32, dtype: Dtype) {
    let len = (rows * pixels) as usize;
    let x = exact(&cpu::seeded(18, len, -1.0, 1.0), dtype);
    let (gx, gy) = (
        upload_as(gpu, "x", &x, dtype),
        gpu.zeroed_f32("y", rows as usize),
    );
    pollster::block_on(
        gpu.run(|p| pool::global_avg_pool_forward(gpu, p, &gy, &gx, rows, pixels, dtype)),
    )
    .unwrap();
    let mut y = vec![0.0; rows as usize];
    cpu::batchnorm::global_avg_pool_forward(&mut y, &x, pixels as usize);
    let what = format!("pool {dtype} {rows}x{pixels}");
    let (atol, rtol) = widen((1e-5, 1e-5), dtype);
    let got = read_as_f32(gpu, &gy, rows as usize, dtype);
    assert_close(&what, &got, &y, atol, rtol);
    for accumulate in [false, true] {
        let dy = exact(&cpu::seeded(19, rows as usize, -1.0, 1.0), dtype);
        let old = exact(&cpu::seeded(20, len, -1.0, 1.0), dtype);
        let (gdy, gdx) = (
            upload_as(gpu, "dy", &dy, dtype),
            upload_as(gpu, "dx", &old, dtype),
        );
        pollster::block_on(gpu.run(|p| {
            pool::global_avg_pool_backward(gpu, p, &gdx, &gdy, rows, pixels, accumulate, dtype)
        }))
        .unwrap();
        let mut dx = old.clone();
        cpu::batchnorm::global_avg_pool_backward(&mut dx, &dy, pixels as usize, accumulate);
        let (atol, rtol) = widen((1e-6, 1e-5), dtype);
        let got = read_as_f32(gpu, &gdx, len, dtype);
        assert_close(&format!("{what} backward"), &got, &dx, atol, rtol);
    }
}

#[test]
fn zero_padded_identity_shortcut() {
    let gpu = require_gpu!();
    for dtype in dtypes(gpu) {
        for (batch, c_in, c_out, h, w, stride) in [
            (1, 1, 1, 1, 1, 1),
            (3, 5, 8, 7, 9, 2),
            (2, 16, 32, 8, 8, 2),
            (1, 3, 3, 5, 4, 3),
        ] {
            let s = ShortcutShape {
                batch,
                c_in,
                c_out,
                h,
                w,
                stride,
                dtype,
            };
            shortcut_case(gpu, &s);
        }
    }
    let bad = ShortcutShape {
        batch: 1,
        c_in: 4,
        c_out: 2,
        h: 2,
        w: 2,
        stride: 2,
        dtype: Dtype::F32,
    };
    let b = gpu.zeroed_f32("b", 64);
    let err = pollster::block_on(gpu.run(|p| shortcut::shortcut_forward(gpu, p, &b, &b, &bad)))
        .unwrap_err();
    assert!(err.to_string().contains("input channels"), "{err}");
}

/// The shortcut moves values without arithmetic: exact at either type (a backward that
/// adds rounds once, to the nearest f16).
fn shortcut_case(gpu: &Gpu, s: &ShortcutShape) {
    let dtype = s.dtype;
    let x = exact(&cpu::seeded(21, s.input_len(), -1.0, 1.0), dtype);
    let gx = upload_as(gpu, "x", &x, dtype);
    let gy = upload_as(gpu, "y", &vec![7.0f32; s.output_len()], dtype);
    pollster::block_on(gpu.run(|p| shortcut::shortcut_forward(gpu, p, &gy, &gx, s))).unwrap();
    let mut y = vec![0.0; s.output_len()];
    cpu::batchnorm::shortcut_forward(&mut y, &x, s);
    let got = read_as_f32(gpu, &gy, s.output_len(), dtype);
    assert_close(&format!("shortcut {s:?}"), &got, &y, 0.0, 0.0);
    for accumulate in [false, true] {
        let dy = exact(&cpu::seeded(22, s.output_len(), -1.0, 1.0), dtype);
        let old = exact(&cpu::seeded(23, s.input_len(), -1.0, 1.0), dtype);
        let (gdy, gdx) = (
            upload_as(gpu, "dy", &dy, dtype),
            upload_as(gpu, "dx", &old, dtype),
        );
        pollster::block_on(
            gpu.run(|p| shortcut::shortcut_backward(gpu, p, &gdx, &gdy, s, accumulate)),
        )
        .unwrap();
        let mut dx = old.clone();
        cpu::batchnorm::shortcut_backward(&mut dx, &dy, s, accumulate);
        let what = format!("shortcut backward {s:?} acc={accumulate}");
        let (atol, rtol) = widen((1e-6, 0.0), dtype);
        let got = read_as_f32(gpu, &gdx, s.input_len(), dtype);
        assert_close(&what, &got, &dx, atol, rtol);
    }
}
