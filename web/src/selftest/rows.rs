//! Self-test cases of the row families: softmax (plain and causal), cross-entropy,
//! LayerNorm, and the bias gradient (alone and through an activation).

use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::bias::{self, Activation, BiasShape};
use rezero::kernels::layernorm::{self, LayerNormShape};
use rezero::kernels::{Dtype, Grad, NormSaved, cross_entropy, softmax};

use super::harness::{Outcome, Runner, Tol, Verdict, seeded, start};

pub async fn run(run: &mut Runner<'_>) {
    let gpu = run.gpu;
    for (rows, cols) in [(1u32, 1u32), (3, 7), (5, 33), (2, 300)] {
        for accumulate in [false, true] {
            let case = format!("forward+backward {rows}x{cols} acc={accumulate}");
            run.case("softmax", case, softmax_rows(gpu, rows, cols, accumulate))
                .await;
        }
    }
    for (heads, t) in [(1u32, 1u32), (3, 5), (2, 33)] {
        let case = format!("causal forward+backward heads={heads} t={t}");
        run.case("softmax", case, softmax_causal(gpu, heads, t))
            .await;
    }
    for (rows, cols) in [(1u32, 1u32), (3, 7), (9, 33), (4, 300)] {
        for loss_scale in [None, Some(8.0f32)] {
            let case = format!("loss+gradient {rows}x{cols} loss_scale={loss_scale:?}");
            let work = cross_entropy_case(gpu, rows, cols, loss_scale);
            run.case("cross_entropy", case, work).await;
        }
    }
    // 70 rows: more than one block of 64 for the gain and bias sums, the last partial.
    for (rows, cols) in [(1u32, 1u32), (3, 7), (70, 33)] {
        for accumulate in [[false, true, true], [true, false, false]] {
            let case = format!("forward+backward {rows}x{cols} acc={accumulate:?}");
            run.case(
                "layernorm",
                case,
                layernorm_case(gpu, rows, cols, accumulate),
            )
            .await;
        }
    }
    // Over 1,024 rows the column sums take two passes through scratch.
    for (rows, cols) in [(1u32, 1u32), (7, 13), (1100, 5)] {
        for activation in [None, Some(Activation::Relu), Some(Activation::Gelu)] {
            for accumulate in [false, true] {
                let shape = BiasShape {
                    rows,
                    cols,
                    dtype: Dtype::F32,
                };
                let case =
                    format!("backward {rows}x{cols} through {activation:?} acc={accumulate}");
                let work = bias_case(gpu, shape, activation, accumulate);
                run.case("bias", case, work).await;
            }
        }
    }
}

async fn softmax_rows(gpu: &Gpu, rows: u32, cols: u32, accumulate: bool) -> Outcome {
    let (c, len) = (cols as usize, (rows * cols) as usize);
    let (x, dy) = (seeded(1, len, -4.0, 4.0), seeded(2, len, -1.0, 1.0));
    let dx0 = start(seeded(3, len, -1.0, 1.0), accumulate);
    let (gx, gdy, gy, gdx) = (
        gpu.upload("x", &x),
        gpu.upload("dy", &dy),
        gpu.zeroed_f32("y", len),
        gpu.upload("dx", &dx0),
    );
    let f = Dtype::F32;
    gpu.run(|pass| {
        softmax::softmax_forward(gpu, pass, &gy, &gx, rows, cols, f)?;
        softmax::softmax_backward(gpu, pass, &gdx, &gy, &gdy, rows, cols, accumulate, f)
    })
    .await?;
    let mut want_y = vec![0.0; len];
    cpu::softmax::softmax_forward(&mut want_y, &x, c);
    let mut want_dx = dx0;
    cpu::softmax::softmax_backward(&mut want_dx, &want_y, &dy, c, accumulate);
    let mut v = Verdict::default();
    v.expect(gpu, "y", &gy, &want_y, Tol::new(1e-6, 1e-5))
        .await?;
    v.expect(gpu, "dx", &gdx, &want_dx, Tol::sum(c, 1e-4))
        .await?;
    Ok(v)
}

async fn softmax_causal(gpu: &Gpu, heads: u32, t: u32) -> Outcome {
    let (rows, len) = (heads * t, (heads * t * t) as usize);
    let scale = 0.37f32;
    let (x, dy) = (seeded(4, len, -4.0, 4.0), seeded(5, len, -1.0, 1.0));
    let (gx, gdy, gy, gdx) = (
        gpu.upload("x", &x),
        gpu.upload("dy", &dy),
        gpu.zeroed_f32("y", len),
        gpu.upload("dx", &vec![f32::NAN; len]),
    );
    let f = Dtype::F32;
    gpu.run(|pass| {
        softmax::softmax_causal_forward(gpu, pass, &gy, &gx, rows, t, scale, f)?;
        softmax::softmax_causal_backward(gpu, pass, &gdx, &gy, &gdy, rows, t, scale, false, f)
    })
    .await?;
    let mut want_y = vec![0.0; len];
    cpu::softmax::softmax_causal_forward(&mut want_y, &x, t as usize, scale);
    let mut want_dx = vec![0.0; len];
    cpu::softmax::softmax_backward(&mut want_dx, &want_y, &dy, t as usize, false);
    want_dx.iter_mut().for_each(|v| *v *= scale);
    let mut v = Verdict::default();
    v.expect(gpu, "y", &gy, &want_y, Tol::new(1e-6, 1e-5))
        .await?;
    v.expect(gpu, "dx", &gdx, &want_dx, Tol::sum(t as usize, 1e-4))
        .await?;
    Ok(v)
}

async fn cross_entropy_case(gpu: &Gpu, rows: u32, cols: u32, scale: Option<f32>) -> Outcome {
    let (r, c, len) = (rows as usize, cols as usize, (rows * cols) as usize);
    let logits = seeded(6, len, -6.0, 6.0);
    let mut targets = cpu::seeded_ids(7, r, cols);
    if r > 2 {
        targets[1] = cols + 7; // an ignored row
    }
    let (gl, gt) = (
        gpu.upload("logits", &logits),
        gpu.upload("targets", &targets),
    );
    let (gloss, gd, grow) = (
        gpu.upload("loss", &[f32::NAN]),
        gpu.upload("dlogits", &vec![f32::NAN; len]),
        gpu.zeroed_f32("row_loss", r),
    );
    // The loss scaler's state: its scale first.
    let state = gpu.upload("scaler", &[scale.unwrap_or(1.0), 0.0, 0.0, 0.0]);
    let scaler = scale.map(|_| &state);
    gpu.run(|pass| {
        cross_entropy::cross_entropy(
            gpu,
            pass,
            &gloss,
            &gd,
            &grow,
            &gl,
            &gt,
            rows,
            cols,
            Dtype::F32,
            scaler,
        )
    })
    .await?;
    let mut want_d = vec![0.0; len];
    let want_loss = cpu::cross_entropy::cross_entropy(&mut want_d, &logits, &targets, c);
    // The gradient is scaled, the loss never.
    want_d.iter_mut().for_each(|v| *v *= scale.unwrap_or(1.0));
    let mut v = Verdict::default();
    let loss_tol = Tol::new(1e-5 * (c as f32).ln().max(1.0), 1e-5);
    v.expect(gpu, "loss", &gloss, &[want_loss], loss_tol)
        .await?;
    v.expect(gpu, "dlogits", &gd, &want_d, Tol::new(1e-6, 1e-4))
        .await?;
    Ok(v)
}

async fn layernorm_case(gpu: &Gpu, rows: u32, cols: u32, accumulate: [bool; 3]) -> Outcome {
    let (r, c, len) = (rows as usize, cols as usize, (rows * cols) as usize);
    let (x, dy) = (seeded(8, len, -2.0, 3.0), seeded(9, len, -1.0, 1.0));
    let (gain, bias) = (seeded(10, c, 0.5, 1.5), seeded(11, c, -0.5, 0.5));
    let dx0 = start(vec![0.3; len], accumulate[0]);
    let (dg0, db0) = (
        start(vec![0.1; c], accumulate[1]),
        start(vec![0.2; c], accumulate[2]),
    );
    let eps = 1e-5;
    let (gx, gdy, gg, gb) = (
        gpu.upload("x", &x),
        gpu.upload("dy", &dy),
        gpu.upload("gain", &gain),
        gpu.upload("bias", &bias),
    );
    let (gy, gm, gr) = (
        gpu.zeroed_f32("y", len),
        gpu.zeroed_f32("mean", r),
        gpu.zeroed_f32("rstd", r),
    );
    let (gdx, gdg, gdb) = (
        gpu.upload("dx", &dx0),
        gpu.upload("dgain", &dg0),
        gpu.upload("dbias", &db0),
    );
    let scratch = gpu.zeroed_f32("scratch", layernorm::layernorm_scratch_len(rows, cols));
    let shape = LayerNormShape {
        rows,
        cols,
        dtype: Dtype::F32,
    };
    gpu.run(|pass| {
        layernorm::layernorm_forward(gpu, pass, &gy, &gm, &gr, &gx, &gg, &gb, shape, eps)?;
        let saved = NormSaved {
            x: &gx,
            mean: &gm,
            rstd: &gr,
            gain: &gg,
        };
        let [adx, adg, adb] = accumulate;
        let (dx, dg, db) = (
            Grad::new(&gdx, adx),
            Grad::new(&gdg, adg),
            Grad::new(&gdb, adb),
        );
        layernorm::layernorm_backward(gpu, pass, dx, dg, db, &scratch, &gdy, saved, shape)
    })
    .await?;
    let mut want_y = vec![0.0; len];
    let (mean, rstd) = cpu::layernorm::layernorm_forward(&mut want_y, &x, &gain, &bias, c, eps);
    let (mut want_dx, mut want_dg, mut want_db) = (dx0, dg0, db0);
    cpu::layernorm::layernorm_backward(
        &mut want_dx,
        &mut want_dg,
        &mut want_db,
        &dy,
        &x,
        &mean,
        &rstd,
        &gain,
        c,
        accumulate,
    );
    let mut v = Verdict::default();
    v.expect(gpu, "y", &gy, &want_y, Tol::new(1e-4, 1e-4))
        .await?;
    v.expect(gpu, "mean", &gm, &mean, Tol::new(1e-5, 1e-5))
        .await?;
    v.expect(gpu, "rstd", &gr, &rstd, Tol::new(1e-5, 1e-4))
        .await?;
    let dx_tol = Tol::sum(c, 1e-3).times(10.0);
    v.expect(gpu, "dx", &gdx, &want_dx, dx_tol).await?;
    v.expect(gpu, "dgain", &gdg, &want_dg, Tol::sum(r, 1e-4))
        .await?;
    v.expect(gpu, "dbias", &gdb, &want_db, Tol::sum(r, 1e-4))
        .await?;
    Ok(v)
}

async fn bias_case(
    gpu: &Gpu,
    shape: BiasShape,
    activation: Option<Activation>,
    accumulate: bool,
) -> Outcome {
    let (r, c) = (shape.rows as usize, shape.cols as usize);
    let (dy, pre) = (seeded(12, r * c, -1.0, 1.0), seeded(13, r * c, -2.0, 2.0));
    // dbias adds (or is written) as `accumulate` says, dx the other way.
    let db0 = start(seeded(14, c, -1.0, 1.0), accumulate);
    let dx0 = start(seeded(15, r * c, -1.0, 1.0), !accumulate);
    let (gdy, gpre, gdb, gdx) = (
        gpu.upload("dy", &dy),
        gpu.upload("pre", &pre),
        gpu.upload("dbias", &db0),
        gpu.upload("dx", &dx0),
    );
    let scratch = gpu.zeroed_f32("scratch", shape.scratch_len().max(1));
    let scratch = (shape.scratch_len() > 0).then_some(&scratch);
    gpu.run(|pass| {
        let dbias = Grad::new(&gdb, accumulate);
        match activation {
            None => bias::bias_backward(gpu, pass, dbias, scratch, &gdy, shape),
            Some(act) => {
                let dx = Grad::new(&gdx, !accumulate);
                bias::bias_activation_backward(
                    gpu, pass, dx, dbias, scratch, &gdy, &gpre, act, shape,
                )
            }
        }
    })
    .await?;
    let (mut want_db, mut want_dx) = (db0, dx0);
    let through = activation.map(|act| (&mut want_dx[..], !accumulate, &pre[..], act));
    cpu::bias::bias_backward(&mut want_db, accumulate, through, &dy, shape);
    let mut v = Verdict::default();
    v.expect(gpu, "dbias", &gdb, &want_db, Tol::sum(r, 1e-4))
        .await?;
    if activation.is_some() {
        v.expect(gpu, "dx", &gdx, &want_dx, Tol::new(1e-5, 1e-5))
            .await?;
    }
    Ok(v)
}
