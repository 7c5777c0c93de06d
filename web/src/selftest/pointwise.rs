//! Self-test cases of the elementwise-shaped families: elementwise ops, the ReZero
//! residual, dropout, embedding lookup, the head layout and the reductions.

use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::dropout::{self, Mask};
use rezero::kernels::embedding::{self, EmbeddingShape, IdGroups};
use rezero::kernels::heads::{self, HeadLayout};
use rezero::kernels::{Dtype, Grad, elementwise as ew, reduce, rezero as rz};

use super::harness::{Outcome, Runner, Tol, Verdict, seeded, start};

pub async fn run(run: &mut Runner<'_>) {
    let gpu = run.gpu;
    for n in [1u32, 13, 1000] {
        for op in Op::ALL {
            for accumulate in [false, true] {
                if accumulate && !op.accumulates() || op == Op::CopyVec4 && n % 4 != 0 {
                    continue;
                }
                let case = format!("{op:?} n={n} accumulate={accumulate}");
                run.case("elementwise", case, elementwise(gpu, op, n, accumulate))
                    .await;
            }
        }
        let p = 0.3;
        run.case("dropout", format!("p={p} n={n}"), dropout(gpu, n, p))
            .await;
    }
    for n in [1u32, 33, 4099] {
        for accumulate in [[false, false, true], [true, true, false]] {
            let case = format!("forward+backward n={n} accumulate={accumulate:?}");
            run.case("rezero", case, rezero(gpu, n, accumulate)).await;
        }
    }
    for (tokens, dim, vocab) in [(1u32, 1u32, 1u32), (17, 3, 5), (40, 7, 9)] {
        let shape = EmbeddingShape::new(tokens, dim, vocab);
        for accumulate in [false, true] {
            let case = format!("forward+backward {tokens}x{dim} vocab={vocab} acc={accumulate}");
            run.case("embedding", case, embedding(gpu, shape, accumulate))
                .await;
        }
    }
    for accumulate in [false, true] {
        let case = format!("rows_to_heads+heads_to_rows acc={accumulate}");
        run.case("heads", case, head_layout(gpu, accumulate)).await;
    }
    for (rows, cols) in [(1u32, 1u32), (3, 7), (5, 1000)] {
        for (square, accumulate) in [(false, false), (true, true)] {
            let case = format!("sum_rows {rows}x{cols} square={square} acc={accumulate}");
            let work = sum_rows(gpu, rows, cols, square, accumulate);
            run.case("reduce", case, work).await;
        }
    }
    for n in [1u32, 33, 5000] {
        for (square, accumulate) in [(false, true), (true, false)] {
            let case = format!("sum_all n={n} square={square} acc={accumulate}");
            run.case("reduce", case, sum_all(gpu, n, square, accumulate))
                .await;
        }
    }
}

/// The elementwise launchers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Scale,
    Relu,
    ReluBackward,
    Gelu,
    GeluBackward,
    Fill,
    Copy,
    CopyVec4,
}

impl Op {
    const ALL: [Op; 9] = [
        Op::Add,
        Op::Scale,
        Op::Relu,
        Op::ReluBackward,
        Op::Gelu,
        Op::GeluBackward,
        Op::Fill,
        Op::Copy,
        Op::CopyVec4,
    ];

    fn accumulates(self) -> bool {
        matches!(
            self,
            Op::Add | Op::Scale | Op::ReluBackward | Op::GeluBackward
        )
    }
}

async fn elementwise(gpu: &Gpu, op: Op, n: u32, accumulate: bool) -> Outcome {
    let len = n as usize;
    let (a, b) = (seeded(5, len, -3.0, 3.0), seeded(6, len, -3.0, 3.0));
    let base = start(seeded(7, len, -1.0, 1.0), accumulate);
    let (ga, gb, out) = (
        gpu.upload("a", &a),
        gpu.upload("b", &b),
        gpu.upload("out", &base),
    );
    let mut want = base.clone();
    match op {
        Op::Add => cpu::elementwise::add(&mut want, &a, &b, accumulate),
        Op::Scale => cpu::elementwise::scale(&mut want, &a, -0.75, accumulate),
        Op::Relu => cpu::elementwise::relu(&mut want, &a),
        Op::ReluBackward => cpu::elementwise::relu_backward(&mut want, &a, &b, accumulate),
        Op::Gelu => cpu::elementwise::gelu(&mut want, &a),
        Op::GeluBackward => cpu::elementwise::gelu_backward(&mut want, &a, &b, accumulate),
        Op::Fill => want.iter_mut().for_each(|v| *v = 2.5),
        Op::Copy | Op::CopyVec4 => want.copy_from_slice(&a),
    }
    let f = Dtype::F32;
    gpu.run(|p| match op {
        Op::Add => ew::add(gpu, p, &out, &ga, &gb, n, accumulate, f),
        Op::Scale => ew::scale(gpu, p, &out, &ga, -0.75, n, accumulate, f),
        Op::Relu => ew::relu(gpu, p, &out, &ga, n, f),
        Op::ReluBackward => ew::relu_backward(gpu, p, &out, &ga, &gb, n, accumulate, f),
        Op::Gelu => ew::gelu(gpu, p, &out, &ga, n, f),
        Op::GeluBackward => ew::gelu_backward(gpu, p, &out, &ga, &gb, n, accumulate, f),
        Op::Fill => ew::fill(gpu, p, &out, 2.5, n, f),
        Op::Copy => ew::copy(gpu, p, &out, &ga, n, f),
        Op::CopyVec4 => ew::copy_vec4(gpu, p, &out, &ga, n, f),
    })
    .await?;
    // gelu goes through exp in f32: a few ulps more than the exact ops.
    let tol = match op {
        Op::Gelu | Op::GeluBackward => Tol::new(1e-5, 2e-6),
        _ => Tol::new(1e-6, 2e-6),
    };
    let mut verdict = Verdict::default();
    verdict.expect(gpu, "out", &out, &want, tol).await?;
    Ok(verdict)
}

async fn rezero(gpu: &Gpu, n: u32, accumulate: [bool; 3]) -> Outcome {
    let len = n as usize;
    let (x, f, dy) = (
        seeded(1, len, -1.0, 1.0),
        seeded(2, len, -1.0, 1.0),
        seeded(3, len, -1.0, 1.0),
    );
    let dx0 = start(seeded(4, len, -1.0, 1.0), accumulate[0]);
    let df0 = start(seeded(5, len, -1.0, 1.0), accumulate[1]);
    let da0 = if accumulate[2] { 0.5f32 } else { f32::NAN };
    let alpha = 0.37f32;
    let mut want_y = vec![0.0; len];
    cpu::rezero::rezero_forward(&mut want_y, &x, &f, alpha);
    let (mut want_dx, mut want_df, mut want_da) = (dx0.clone(), df0.clone(), da0);
    cpu::rezero::rezero_backward(
        &mut want_dx,
        &mut want_df,
        &mut want_da,
        &dy,
        &f,
        alpha,
        accumulate,
    );
    let (gx, gf, gdy) = (
        gpu.upload("x", &x),
        gpu.upload("f", &f),
        gpu.upload("dy", &dy),
    );
    // Several blocks' α in one buffer; this block's is at index 2.
    let galpha = gpu.upload("alpha", &[0.9f32, -0.4, alpha, 0.1]);
    let (gy, gdx, gdf) = (
        gpu.zeroed_f32("y", len),
        gpu.upload("dx", &dx0),
        gpu.upload("df", &df0),
    );
    let gda = gpu.upload("dalpha", &[1.0f32, 2.0, da0, 3.0]);
    let scratch = gpu.zeroed_f32("scratch", rz::REZERO_SCRATCH_LEN);
    let shape = rz::RezeroShape::new(n, 2);
    gpu.run(|pass| {
        rz::rezero_forward(gpu, pass, &gy, &gx, &gf, &galpha, shape)?;
        let [adx, adf, ada] = accumulate;
        let (dx, df, da) = (
            Grad::new(&gdx, adx),
            Grad::new(&gdf, adf),
            Grad::new(&gda, ada),
        );
        rz::rezero_backward(gpu, pass, dx, df, da, &scratch, &gdy, &gf, &galpha, shape)
    })
    .await?;
    let mut v = Verdict::default();
    let tol = Tol::new(1e-6, 1e-6);
    v.expect(gpu, "y", &gy, &want_y, tol).await?;
    v.expect(gpu, "dx", &gdx, &want_dx, tol).await?;
    v.expect(gpu, "df", &gdf, &want_df, tol).await?;
    let want_da = [1.0, 2.0, want_da, 3.0];
    v.expect(gpu, "dalpha", &gda, &want_da, Tol::sum(len, 1e-5))
        .await?;
    Ok(v)
}

async fn dropout(gpu: &Gpu, n: u32, p: f32) -> Outcome {
    let len = n as usize;
    let mask = Mask {
        p,
        site: Mask::site_key(11, 2),
    };
    let key = Mask::step_key(7);
    let (x, dy) = (seeded(8, len, -1.0, 1.0), seeded(9, len, -1.0, 1.0));
    let dx0 = seeded(10, len, -1.0, 1.0);
    let (gx, gdy, gstep) = (
        gpu.upload("x", &x),
        gpu.upload("dy", &dy),
        gpu.upload("step", &[key]),
    );
    let (gy, gdx) = (gpu.zeroed_f32("y", len), gpu.upload("dx", &dx0));
    gpu.run(|pass| {
        dropout::dropout_forward(gpu, pass, &gy, &gx, &gstep, n, mask, Dtype::F32)?;
        let dx = Grad::add(&gdx);
        dropout::dropout_backward(gpu, pass, dx, &gdy, &gstep, n, mask, Dtype::F32)
    })
    .await?;
    let mut want_y = vec![0.0; len];
    cpu::dropout::dropout_forward(&mut want_y, &x, mask, key);
    let mut want_dx = dx0;
    cpu::dropout::dropout_backward(&mut want_dx, &dy, mask, key, true);
    let mut v = Verdict::default();
    let tol = Tol::new(1e-6, 1e-6);
    v.expect(gpu, "y", &gy, &want_y, tol).await?;
    v.expect(gpu, "dx (added to)", &gdx, &want_dx, tol).await?;
    Ok(v)
}

async fn embedding(gpu: &Gpu, shape: EmbeddingShape, accumulate: bool) -> Outcome {
    let (t, dim, vocab) = (shape.tokens as usize, shape.dim as usize, shape.vocab);
    let table = seeded(15, vocab as usize * dim, -1.0, 1.0);
    let ids = cpu::seeded_ids(16, t, vocab);
    // A lookup past the vocabulary reads a zero row.
    let mut lookup = ids.clone();
    lookup[t / 2] = vocab + 3;
    let dout = seeded(17, t * dim, -1.0, 1.0);
    let out0 = start(seeded(18, t * dim, -1.0, 1.0), accumulate);
    let dtable0 = start(seeded(19, table.len(), -1.0, 1.0), accumulate);
    let groups = IdGroups::new(&ids, vocab)?;
    let (gtable, glookup, gdout) = (
        gpu.upload("table", &table),
        gpu.upload("ids", &lookup),
        gpu.upload("dout", &dout),
    );
    let (gorder, goffsets) = (
        gpu.upload("order", &groups.order),
        gpu.upload("offsets", &groups.offsets),
    );
    let (gout, gdtable) = (gpu.upload("out", &out0), gpu.upload("dtable", &dtable0));
    gpu.run(|pass| {
        embedding::embedding_forward(gpu, pass, &gout, &gtable, &glookup, shape, accumulate)?;
        let dtable = Grad::new(&gdtable, accumulate);
        embedding::embedding_backward(gpu, pass, dtable, &gdout, &gorder, &goffsets, shape)
    })
    .await?;
    let mut want_out = out0;
    cpu::embedding::embedding_forward(&mut want_out, &table, &lookup, dim, accumulate);
    let mut want_dtable = dtable0;
    cpu::embedding::embedding_backward(&mut want_dtable, &dout, &ids, dim, accumulate);
    let mut v = Verdict::default();
    v.expect(gpu, "out", &gout, &want_out, Tol::new(1e-6, 1e-6))
        .await?;
    v.expect(gpu, "dtable", &gdtable, &want_dtable, Tol::sum(t, 1e-5))
        .await?;
    Ok(v)
}

/// The k columns of a fused qkv row layout to the head layout and back.
async fn head_layout(gpu: &Gpu, accumulate: bool) -> Outcome {
    let layout = HeadLayout {
        batch: 2,
        t: 5,
        heads: 3,
        d: 4,
        stride: 3 * 3 * 4,
        offset: 3 * 4,
    };
    let rows_len = (layout.batch * layout.t * layout.stride) as usize;
    let heads_len = (layout.batch * layout.heads * layout.t * layout.d) as usize;
    let x = seeded(20, rows_len, -1.0, 1.0);
    let back = seeded(21, heads_len, -1.0, 1.0);
    // Columns outside the heads keep their values whether or not the heads add.
    let out0 = seeded(22, rows_len, -1.0, 1.0);
    let (gx, gback) = (gpu.upload("x", &x), gpu.upload("heads", &back));
    let (gheads, gout) = (gpu.zeroed_f32("heads", heads_len), gpu.upload("out", &out0));
    gpu.run(|pass| {
        heads::rows_to_heads(gpu, pass, &gheads, &gx, &layout)?;
        heads::heads_to_rows(gpu, pass, &gout, &gback, &layout, accumulate)
    })
    .await?;
    let want_heads = cpu::heads::rows_to_heads(&x, &layout);
    let mut want_out = out0;
    cpu::heads::heads_to_rows(&mut want_out, &back, &layout, accumulate);
    let mut v = Verdict::default();
    v.expect(gpu, "heads", &gheads, &want_heads, Tol::EXACT)
        .await?;
    v.expect(gpu, "rows", &gout, &want_out, Tol::new(1e-6, 1e-6))
        .await?;
    Ok(v)
}

async fn sum_rows(gpu: &Gpu, rows: u32, cols: u32, square: bool, accumulate: bool) -> Outcome {
    let x = seeded(23, (rows * cols) as usize, -1.0, 1.0);
    let out0 = start(seeded(24, rows as usize, -1.0, 1.0), accumulate);
    let (gx, gout) = (gpu.upload("x", &x), gpu.upload("out", &out0));
    gpu.run(|pass| reduce::sum_rows(gpu, pass, &gout, &gx, rows, cols, square, accumulate))
        .await?;
    let sums = cpu::reduce::sum_rows(&x, cols as usize, square);
    let want: Vec<f32> = out0
        .iter()
        .zip(&sums)
        .map(|(&o, &s)| if accumulate { o + s } else { s })
        .collect();
    let mut v = Verdict::default();
    v.expect(gpu, "sums", &gout, &want, Tol::sum(cols as usize, 1e-5))
        .await?;
    Ok(v)
}

async fn sum_all(gpu: &Gpu, n: u32, square: bool, accumulate: bool) -> Outcome {
    let x = seeded(25, n as usize, -1.0, 1.0);
    let out0 = if accumulate { 0.75f32 } else { f32::NAN };
    let (gx, gout) = (gpu.upload("x", &x), gpu.upload("out", &[out0]));
    let scratch = gpu.zeroed_f32("scratch", reduce::REDUCE_SCRATCH_LEN);
    gpu.run(|pass| reduce::sum_all(gpu, pass, &gout, &scratch, &gx, n, square, accumulate))
        .await?;
    let sum = cpu::reduce::sum_all(&x, square);
    let want = if accumulate { out0 + sum } else { sum };
    let mut v = Verdict::default();
    v.expect(gpu, "sum", &gout, &[want], Tol::sum(n as usize, 1e-5))
        .await?;
    Ok(v)
}
