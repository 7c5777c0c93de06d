//! Self-test cases of the image families: conv2d (forward, input, weight and bias
//! gradients) in each of its kernels, batch norm (both reduction paths), global average
//! pooling and the downsampling shortcut.

use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::batchnorm::{self as bn, BatchNormConfig, BatchNormShape};
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvPass, ConvVariant};
use rezero::kernels::shortcut::{self, ShortcutShape};
use rezero::kernels::{Dtype, Grad, NormSaved, pool};

use super::harness::{Outcome, Runner, Tol, Verdict, seeded, start};

pub async fn run(run: &mut Runner<'_>) {
    let gpu = run.gpu;
    for (i, s) in conv_shapes().into_iter().enumerate() {
        // Alternate bias and accumulation over the shapes.
        let (bias, accumulate) = (i % 3 != 2, i % 2 == 1);
        for variant in conv_variants(gpu, ConvPass::Forward) {
            let case = format!(
                "forward {} {s:?} bias={bias} acc={accumulate}",
                variant.name()
            );
            run.case(
                "conv2d",
                case,
                conv_forward(gpu, s, variant, bias, accumulate),
            )
            .await;
        }
        for variant in conv_variants(gpu, ConvPass::BackwardInput) {
            let case = format!("backward {} {s:?} acc={accumulate}", variant.name());
            run.case("conv2d", case, conv_backward(gpu, s, variant, accumulate))
                .await;
        }
    }
    for (batch, channels, pixels) in [(1u32, 1u32, 2u32), (3, 5, 7), (2, 3, 33)] {
        let s = BatchNormShape::new(batch, channels, pixels);
        // One workgroup a channel, and the split reduction (blocks of 16 elements).
        for block in [Some(u32::MAX), Some(16)] {
            for accumulate in [[false, true, true], [true, false, false]] {
                let case = format!("train+eval+backward {s:?} block={block:?} acc={accumulate:?}");
                run.case("batchnorm", case, batchnorm(gpu, s, block, accumulate))
                    .await;
            }
        }
    }
    for (rows, pixels) in [(1u32, 1u32), (6, 49)] {
        for accumulate in [false, true] {
            let case = format!("forward+backward {rows}x{pixels} acc={accumulate}");
            run.case("pool", case, avg_pool(gpu, rows, pixels, accumulate))
                .await;
        }
    }
    for s in shortcut_shapes() {
        for accumulate in [false, true] {
            let case = format!("forward+backward {s:?} acc={accumulate}");
            run.case("shortcut", case, shortcut_case(gpu, s, accumulate))
                .await;
        }
    }
}

fn conv_shapes() -> [Conv2d; 5] {
    [
        Conv2d::new(1, 1, 1, 1, 1, 1),
        Conv2d::new(1, 3, 7, 5, 5, 3).pad(1),
        Conv2d::new(2, 5, 9, 9, 6, 3).stride(2).pad(1),
        Conv2d {
            kh: 3,
            kw: 1,
            ..Conv2d::new(2, 3, 5, 4, 2, 1).pad(2)
        },
        // Reductions and pixels in fours: the blocked kernels' vec4 paths.
        Conv2d::new(1, 4, 6, 6, 8, 1),
    ]
}

/// The kernels of `pass`: the register-blocked one, the direct loop (forward; backward it
/// runs the simple blocked tile), one blocked tile of each register block among those
/// `Auto` tries here (the project's rule for covering every code shape of the blocked
/// kernel without compiling every tile), and `Auto`.
fn conv_variants(gpu: &Gpu, pass: ConvPass) -> Vec<ConvVariant> {
    let mut list = vec![ConvVariant::Reg, ConvVariant::Direct];
    let mut shapes = Vec::new();
    let blocks = [
        ConvPass::Forward,
        ConvPass::BackwardInput,
        ConvPass::BackwardWeight,
    ]
    .into_iter()
    .flat_map(|p| conv::candidates(gpu, p));
    for variant in blocks {
        if let ConvVariant::Blocked(b) = variant
            && b.check(gpu).is_ok()
            && b != ConvVariant::SIMPLE_BLOCK
            && !shapes.contains(&(b.tm, b.tn, b.bk))
        {
            shapes.push((b.tm, b.tn, b.bk));
            list.push(variant);
        }
    }
    if pass == ConvPass::Forward {
        list.push(ConvVariant::Blocked(ConvVariant::SIMPLE_BLOCK));
    }
    list.push(ConvVariant::Auto);
    list
}

async fn conv_forward(
    gpu: &Gpu,
    s: Conv2d,
    variant: ConvVariant,
    bias: bool,
    accumulate: bool,
) -> Outcome {
    let x = seeded(1, s.input_len(), -1.0, 1.0);
    let w = seeded(2, s.weight_len(), -1.0, 1.0);
    let b = seeded(3, s.c_out as usize, -1.0, 1.0);
    let y0 = start(seeded(4, s.output_len(), -1.0, 1.0), accumulate);
    let (gx, gw, gb, gy) = (
        gpu.upload("x", &x),
        gpu.upload("w", &w),
        gpu.upload("b", &b),
        gpu.upload("y", &y0),
    );
    let gbias = bias.then_some(&gb);
    gpu.run(|p| conv::conv2d_forward(gpu, p, &gy, &gx, &gw, gbias, &s, variant, accumulate))
        .await?;
    let mut want = y0;
    let cbias = bias.then_some(&b[..]);
    cpu::conv2d::conv2d_forward(&mut want, &x, &w, cbias, &s, accumulate);
    let taps = (s.c_in * s.kh * s.kw) as usize;
    let mut v = Verdict::default();
    v.expect(gpu, "y", &gy, &want, Tol::sum(taps, 1e-5)).await?;
    Ok(v)
}

/// The input, weight and bias gradients (the bias gradient has one kernel).
async fn conv_backward(gpu: &Gpu, s: Conv2d, variant: ConvVariant, accumulate: bool) -> Outcome {
    let x = seeded(5, s.input_len(), -1.0, 1.0);
    let w = seeded(6, s.weight_len(), -1.0, 1.0);
    let dy = seeded(7, s.output_len(), -1.0, 1.0);
    let dx0 = start(seeded(8, s.input_len(), -1.0, 1.0), accumulate);
    let dw0 = start(seeded(9, s.weight_len(), -1.0, 1.0), accumulate);
    let db0 = start(seeded(10, s.c_out as usize, -1.0, 1.0), accumulate);
    let (gx, gw, gdy) = (
        gpu.upload("x", &x),
        gpu.upload("w", &w),
        gpu.upload("dy", &dy),
    );
    let (gdx, gdw, gdb) = (
        gpu.upload("dx", &dx0),
        gpu.upload("dw", &dw0),
        gpu.upload("db", &db0),
    );
    let scratch = gpu.zeroed_f32("scratch", conv::conv2d_weight_scratch_len(gpu, &s));
    gpu.run(|p| {
        conv::conv2d_backward_input(gpu, p, &gdx, &gdy, &gw, &s, variant, accumulate)?;
        conv::conv2d_backward_weight(gpu, p, &gdw, &scratch, &gdy, &gx, &s, variant, accumulate)?;
        conv::conv2d_backward_bias(gpu, p, &gdb, &gdy, &s, accumulate)
    })
    .await?;
    let (mut dx, mut dw, mut db) = (dx0, dw0, db0);
    cpu::conv2d::conv2d_backward_input(&mut dx, &dy, &w, &s, accumulate);
    cpu::conv2d::conv2d_backward_weight(&mut dw, &dy, &x, &s, accumulate);
    cpu::conv2d::conv2d_backward_bias(&mut db, &dy, &s, accumulate);
    let taps = (s.c_out * s.kh * s.kw) as usize;
    let pixels = (s.batch * s.out_h() * s.out_w()) as usize;
    let mut v = Verdict::default();
    v.expect(gpu, "dx", &gdx, &dx, Tol::sum(taps, 1e-5)).await?;
    v.expect(gpu, "dw", &gdw, &dw, Tol::sum(pixels, 1e-5))
        .await?;
    v.expect(gpu, "db", &gdb, &db, Tol::sum(pixels, 1e-5))
        .await?;
    Ok(v)
}

/// A batch norm case's values: inputs, gradients' starting values, and (after
/// [`BnValues::reference`]) every output.
struct BnValues {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    /// Running mean and variance: before the step, then after it.
    running: [Vec<f32>; 2],
    dy: Vec<f32>,
    /// dx, dgamma, dbeta: their starting values, then the gradients.
    grads: [Vec<f32>; 3],
}

impl BnValues {
    fn new(s: &BatchNormShape, accumulate: [bool; 3]) -> BnValues {
        let (len, c) = (s.len() as usize, s.channels as usize);
        // An offset and a spread per channel, so that the statistics matter.
        let x = seeded(11, len, -1.0, 1.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v * 3.0 + ((i / s.pixels as usize) % c) as f32)
            .collect();
        BnValues {
            x,
            gamma: seeded(12, c, 0.5, 1.5),
            beta: seeded(13, c, -1.0, 1.0),
            running: [seeded(14, c, -1.0, 1.0), seeded(15, c, 0.5, 2.0)],
            dy: seeded(16, len, -1.0, 1.0),
            grads: [
                start(seeded(17, len, -1.0, 1.0), accumulate[0]),
                start(vec![0.5; c], accumulate[1]),
                start(vec![-0.5; c], accumulate[2]),
            ],
        }
    }

    /// The reference: (train y, mean, rstd, eval y), the running statistics and gradients
    /// updated in place.
    fn reference(
        &mut self,
        s: &BatchNormShape,
        config: &BatchNormConfig,
        accumulate: [bool; 3],
    ) -> [Vec<f32>; 4] {
        let BnValues {
            x,
            gamma,
            beta,
            running: [rm, rv],
            dy,
            grads: [dx, dg, db],
        } = self;
        let mut y = vec![0.0; x.len()];
        let (mean, rstd) =
            cpu::batchnorm::batchnorm_train_forward(&mut y, rm, rv, x, gamma, beta, s, config);
        let mut y_eval = vec![0.0; x.len()];
        let eps = config.eps;
        cpu::batchnorm::batchnorm_eval_forward(&mut y_eval, x, rm, rv, gamma, beta, s, eps);
        cpu::batchnorm::batchnorm_backward(dx, dg, db, dy, x, &mean, &rstd, gamma, s, accumulate);
        [y, mean, rstd, y_eval]
    }
}

/// The training forward (output, statistics, running statistics), the eval forward with
/// the updated running statistics, and the backward.
async fn batchnorm(
    gpu: &Gpu,
    s: BatchNormShape,
    block: Option<u32>,
    accumulate: [bool; 3],
) -> Outcome {
    let (len, c, n) = (
        s.len() as usize,
        s.channels as usize,
        (s.batch * s.pixels) as usize,
    );
    let config = BatchNormConfig {
        block,
        ..Default::default()
    };
    let mut values = BnValues::new(&s, accumulate);
    let up = |label, v: &Vec<f32>| gpu.upload(label, v);
    let [gx, gg, gb, gdy] = [
        ("x", &values.x),
        ("gamma", &values.gamma),
        ("beta", &values.beta),
        ("dy", &values.dy),
    ]
    .map(|(l, v)| up(l, v));
    let [grm, grv] = [0, 1].map(|i| up("running", &values.running[i]));
    let [gdx, gdg, gdb] = [0, 1, 2].map(|i| up("grad", &values.grads[i]));
    let [gy, gy_eval] = ["y", "y eval"].map(|l| gpu.zeroed_f32(l, len));
    let [gmean, grstd] = ["mean", "rstd"].map(|l| gpu.zeroed_f32(l, c));
    let scratch = gpu.zeroed_f32("scratch", bn::batchnorm_scratch_len(gpu, &s, &config));
    gpu.run(|p| {
        bn::batchnorm_train_forward(
            gpu, p, &gy, &gmean, &grstd, &grm, &grv, &scratch, &gx, &gg, &gb, &s, &config,
        )?;
        bn::batchnorm_eval_forward(gpu, p, &gy_eval, &gx, &grm, &grv, &gg, &gb, &s, &config)?;
        let saved = NormSaved {
            x: &gx,
            mean: &gmean,
            rstd: &grstd,
            gain: &gg,
        };
        let [dx, dg, db] =
            [(&gdx, 0), (&gdg, 1), (&gdb, 2)].map(|(b, i)| Grad::new(b, accumulate[i]));
        bn::batchnorm_backward(gpu, p, dx, dg, db, &scratch, &gdy, saved, &s, &config)
    })
    .await?;
    let [y, mean, rstd, y_eval] = values.reference(&s, &config, accumulate);
    let ([rm, rv], [dx, dg, db]) = (&values.running, &values.grads);
    let mut v = Verdict::default();
    let close = Tol::new(1e-4, 1e-4);
    v.expect(gpu, "train y", &gy, &y, close).await?;
    v.expect(gpu, "mean", &gmean, &mean, Tol::sum(n, 1e-5))
        .await?;
    v.expect(gpu, "rstd", &grstd, &rstd, Tol::new(1e-5, 1e-4))
        .await?;
    v.expect(gpu, "running mean", &grm, rm, Tol::new(1e-5, 1e-5))
        .await?;
    v.expect(gpu, "running var", &grv, rv, Tol::new(1e-5, 1e-4))
        .await?;
    v.expect(gpu, "eval y", &gy_eval, &y_eval, close).await?;
    v.expect(gpu, "dx", &gdx, dx, Tol::new(1e-4, 1e-3)).await?;
    v.expect(gpu, "dgamma", &gdg, dg, Tol::sum(n, 1e-4)).await?;
    v.expect(gpu, "dbeta", &gdb, db, Tol::sum(n, 1e-4)).await?;
    Ok(v)
}

async fn avg_pool(gpu: &Gpu, rows: u32, pixels: u32, accumulate: bool) -> Outcome {
    let (r, len) = (rows as usize, (rows * pixels) as usize);
    let (x, dy) = (seeded(18, len, -1.0, 1.0), seeded(19, r, -1.0, 1.0));
    let dx0 = start(seeded(20, len, -1.0, 1.0), accumulate);
    let (gx, gdy, gy, gdx) = (
        gpu.upload("x", &x),
        gpu.upload("dy", &dy),
        gpu.zeroed_f32("y", r),
        gpu.upload("dx", &dx0),
    );
    let f = Dtype::F32;
    gpu.run(|p| {
        pool::global_avg_pool_forward(gpu, p, &gy, &gx, rows, pixels, f)?;
        pool::global_avg_pool_backward(gpu, p, &gdx, &gdy, rows, pixels, accumulate, f)
    })
    .await?;
    let mut y = vec![0.0; r];
    cpu::batchnorm::global_avg_pool_forward(&mut y, &x, pixels as usize);
    let mut dx = dx0;
    cpu::batchnorm::global_avg_pool_backward(&mut dx, &dy, pixels as usize, accumulate);
    let mut v = Verdict::default();
    v.expect(gpu, "y", &gy, &y, Tol::sum(pixels as usize, 1e-5))
        .await?;
    v.expect(gpu, "dx", &gdx, &dx, Tol::new(1e-6, 1e-5)).await?;
    Ok(v)
}

fn shortcut_shapes() -> [ShortcutShape; 2] {
    let s = |batch, c_in, c_out, h, w, stride| ShortcutShape {
        batch,
        c_in,
        c_out,
        h,
        w,
        stride,
        dtype: Dtype::F32,
    };
    [s(2, 3, 5, 7, 5, 2), s(1, 4, 4, 3, 3, 1)]
}

async fn shortcut_case(gpu: &Gpu, s: ShortcutShape, accumulate: bool) -> Outcome {
    let (x, dy) = (
        seeded(21, s.input_len(), -1.0, 1.0),
        seeded(22, s.output_len(), -1.0, 1.0),
    );
    let dx0 = start(seeded(23, s.input_len(), -1.0, 1.0), accumulate);
    let (gx, gdy, gdx) = (
        gpu.upload("x", &x),
        gpu.upload("dy", &dy),
        gpu.upload("dx", &dx0),
    );
    let gy = gpu.upload("y", &vec![f32::NAN; s.output_len()]);
    gpu.run(|p| {
        shortcut::shortcut_forward(gpu, p, &gy, &gx, &s)?;
        shortcut::shortcut_backward(gpu, p, &gdx, &gdy, &s, accumulate)
    })
    .await?;
    let mut y = vec![0.0; s.output_len()];
    cpu::batchnorm::shortcut_forward(&mut y, &x, &s);
    let mut dx = dx0;
    cpu::batchnorm::shortcut_backward(&mut dx, &dy, &s, accumulate);
    let mut v = Verdict::default();
    v.expect(gpu, "y", &gy, &y, Tol::EXACT).await?;
    v.expect(gpu, "dx", &gdx, &dx, Tol::new(1e-6, 1e-6)).await?;
    Ok(v)
}
