//! Self-test cases on f16 activations, run only where the device has `SHADER_F16`: the
//! casts, a sample of the elementwise and row families, matmul on f16 operands (and the
//! cooperative-matrix kernel where the adapter lists one), and attention. The reference
//! is the f32 computation on the same f16-rounded inputs; an f16 output may differ by its
//! one rounding.

use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::attention::{self as att, AttentionShape};
use rezero::kernels::matmul::{self, CoopSize, Matmul, MatmulVariant};
use rezero::kernels::precision::upload_as;
use rezero::kernels::{Dtype, Grad, cast, elementwise as ew, softmax};

use super::harness::{Outcome, Runner, Tol, Verdict, seeded};

const F16: Dtype = Dtype::F16;

pub async fn run(run: &mut Runner<'_>) {
    let gpu = run.gpu;
    run.case("cast", "f32 -> f16 -> f32 n=13".into(), casts(gpu, 13))
        .await;
    run.case(
        "elementwise",
        "f16 add+gelu n=1000".into(),
        add_gelu(gpu, 1000),
    )
    .await;
    run.case(
        "softmax",
        "f16 forward+backward 5x33".into(),
        softmax_f16(gpu, 5, 33),
    )
    .await;
    // The simple kernels, and whatever `Auto` runs here (a blocked tile on GPUs).
    let variants = [
        MatmulVariant::Naive,
        MatmulVariant::Tiled,
        MatmulVariant::Auto,
    ];
    for variant in variants {
        for output in [Dtype::F32, F16] {
            let desc = Matmul::new(20, 16, 24).dtypes(F16, output).variant(variant);
            let case = format!("f16 operands, {output} out {} 20x16x24", variant.name());
            run.case("matmul", case, product(gpu, desc)).await;
        }
    }
    for size in CoopSize::available(gpu) {
        let desc = Matmul::new(33, 40, 24).dtypes(F16, Dtype::F32);
        let desc = desc.variant(MatmulVariant::Coop(size));
        if size.check(gpu, &desc).is_ok() {
            let case = format!("coop{} f16 operands 33x40x24", size.s());
            run.case("matmul", case, product(gpu, desc)).await;
        }
    }
    let s = AttentionShape::heads(2, 17, 16).dtype(F16);
    let case = "f16 auto forward+backward bh=2 t=17 d=16".to_string();
    run.case("attention", case, attention(gpu, s)).await;
}

/// An f16 output's bound: the f32 one, plus its one rounding.
fn widen(tol: Tol) -> Tol {
    Tol::new(tol.atol + 2f32.powi(-24), tol.rtol + cpu::F16_EPSILON)
}

fn seeded16(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    cpu::round_f16(&seeded(seed, len, lo, hi))
}

async fn casts(gpu: &Gpu, n: u32) -> Outcome {
    let x = seeded(1, n as usize, -70_000.0, 70_000.0);
    let gx = gpu.upload("x", &x);
    let (half, back) = (
        upload_as(gpu, "half", &vec![0.0; n as usize], F16),
        gpu.zeroed_f32("back", n as usize),
    );
    gpu.run(|p| {
        cast::to_f16(gpu, p, &half, &gx, n, 0.5)?;
        cast::to_f32(gpu, p, &back, &half, n, 2.0)
    })
    .await?;
    let halved: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
    let want_half = cpu::round_f16(&halved);
    let want_back: Vec<f32> = want_half.iter().map(|v| v * 2.0).collect();
    let mut v = Verdict::default();
    v.expect_as(gpu, "f16", (&half, F16), &want_half, Tol::EXACT)
        .await?;
    v.expect(gpu, "f32", &back, &want_back, Tol::EXACT).await?;
    Ok(v)
}

/// out = a + b, then dx += dy · gelu'(x), on f16 buffers.
async fn add_gelu(gpu: &Gpu, n: u32) -> Outcome {
    let len = n as usize;
    let [a, b, dx0] = [1, 2, 3].map(|seed| seeded16(seed, len, -3.0, 3.0));
    let [ga, gb] = [&a, &b].map(|x| upload_as(gpu, "in", x, F16));
    let (gsum, gdx) = (
        upload_as(gpu, "sum", &vec![f32::NAN; len], F16),
        upload_as(gpu, "dx", &dx0, F16),
    );
    gpu.run(|p| {
        ew::add(gpu, p, &gsum, &ga, &gb, n, false, F16)?;
        ew::gelu_backward(gpu, p, &gdx, &ga, &gb, n, true, F16)
    })
    .await?;
    let mut sum = vec![0.0; len];
    cpu::elementwise::add(&mut sum, &a, &b, false);
    let mut dx = dx0;
    cpu::elementwise::gelu_backward(&mut dx, &a, &b, true);
    let mut v = Verdict::default();
    let tol = widen(Tol::new(1e-5, 2e-6));
    v.expect_as(gpu, "sum", (&gsum, F16), &sum, tol).await?;
    v.expect_as(gpu, "dx", (&gdx, F16), &dx, tol).await?;
    Ok(v)
}

async fn softmax_f16(gpu: &Gpu, rows: u32, cols: u32) -> Outcome {
    let len = (rows * cols) as usize;
    let (x, dy) = (seeded16(4, len, -4.0, 4.0), seeded16(5, len, -1.0, 1.0));
    let [gx, gdy] = [&x, &dy].map(|v| upload_as(gpu, "in", v, F16));
    let [gy, gdx] = ["y", "dx"].map(|l| upload_as(gpu, l, &vec![f32::NAN; len], F16));
    gpu.run(|p| {
        softmax::softmax_forward(gpu, p, &gy, &gx, rows, cols, F16)?;
        softmax::softmax_backward(gpu, p, &gdx, &gy, &gdy, rows, cols, false, F16)
    })
    .await?;
    let mut y = vec![0.0; len];
    cpu::softmax::softmax_forward(&mut y, &x, cols as usize);
    // The backward reads y as the forward stored it: rounded to f16.
    let y16 = cpu::round_f16(&y);
    let mut dx = vec![0.0; len];
    cpu::softmax::softmax_backward(&mut dx, &y16, &dy, cols as usize, false);
    let mut v = Verdict::default();
    v.expect_as(gpu, "y", (&gy, F16), &y, widen(Tol::new(1e-6, 1e-5)))
        .await?;
    let dx_tol = widen(Tol::sum(cols as usize, 1e-4));
    v.expect_as(gpu, "dx", (&gdx, F16), &dx, dx_tol).await?;
    Ok(v)
}

/// C = A·B + bias, adding to C, on f16 operands.
async fn product(gpu: &Gpu, desc: Matmul) -> Outcome {
    let desc = desc.accumulate(true);
    let [len_a, len_b, len_c] = desc.lengths("selftest")?.map(|l| l as usize);
    let (a, b) = (seeded16(1, len_a, -1.0, 1.0), seeded16(2, len_b, -1.0, 1.0));
    let bias = seeded16(4, desc.n as usize, -1.0, 1.0);
    let c0 = match desc.output {
        Dtype::F16 => seeded16(3, len_c, -1.0, 1.0),
        Dtype::F32 => seeded(3, len_c, -1.0, 1.0),
    };
    let [ga, gb, gbias] = [&a, &b, &bias].map(|x| upload_as(gpu, "in", x, F16));
    let gc = upload_as(gpu, "c", &c0, desc.output);
    gpu.run(|p| matmul::matmul(gpu, p, &gc, &ga, &gb, Some(&gbias), &desc).map(drop))
        .await?;
    let mut want = c0;
    cpu::matmul::matmul(&mut want, &a, &b, Some(&bias), &desc);
    let mut tol = Tol::sum(desc.k as usize, 1e-4);
    if desc.output == F16 {
        tol = widen(tol);
    }
    let mut v = Verdict::default();
    v.expect_as(gpu, "c", (&gc, desc.output), &want, tol)
        .await?;
    Ok(v)
}

/// The forward and backward `Auto` picks, on f16 activations.
async fn attention(gpu: &Gpu, s: AttentionShape) -> Outcome {
    let (n, rows) = ((s.bh * s.t * s.d) as usize, (s.bh * s.t) as usize);
    let [q, k, v, d_o] = [21, 22, 23, 24].map(|seed| seeded16(seed, n, -1.5, 1.5));
    let [gq, gk, gv, gdo] = [&q, &k, &v, &d_o].map(|x| upload_as(gpu, "in", x, F16));
    let nan = vec![f32::NAN; n];
    let [go, gdq, gdk, gdv] = ["o", "dq", "dk", "dv"].map(|l| upload_as(gpu, l, &nan, F16));
    let (glse, gdelta) = (gpu.zeroed_f32("lse", rows), gpu.zeroed_f32("delta", rows));
    gpu.run(|p| {
        att::attention_forward(gpu, p, &go, &glse, &gq, &gk, &gv, &s)?;
        let grads = [&gdq, &gdk, &gdv].map(Grad::write);
        let inputs = [&gq, &gk, &gv, &go, &glse, &gdo];
        att::attention_backward(gpu, p, grads, &gdelta, inputs, &s)
    })
    .await?;
    let dims = [s.bh as usize, s.t as usize, s.d as usize];
    let (o, lse) = cpu::attention::attention_forward(&q, &k, &v, dims[0], dims[1], dims[2]);
    // The backward reads o as the forward stored it: rounded to f16.
    let o16 = cpu::round_f16(&o);
    let (dq, dk, dv) =
        cpu::attention::attention_backward_from_output([&q, &k, &v, &o16, &d_o], dims);
    let root_t = (s.t as f32).sqrt();
    let mut verdict = Verdict::default();
    let o_tol = widen(Tol::new(2e-5 * root_t, 1e-4));
    verdict.expect_as(gpu, "o", (&go, F16), &o, o_tol).await?;
    verdict
        .expect(gpu, "lse", &glse, &lse, Tol::new(1e-5, 1e-5))
        .await?;
    let tol = widen(Tol::new(3e-5 * root_t, 1e-3));
    for (name, buffer, want) in [("dq", &gdq, &dq), ("dk", &gdk, &dk), ("dv", &gdv, &dv)] {
        verdict
            .expect_as(gpu, name, (buffer, F16), want, tol)
            .await?;
    }
    Ok(verdict)
}
