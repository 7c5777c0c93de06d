//! Every backward kernel against central finite differences of the forward computed on the
//! CPU in f64, on tiny shapes. L = Σ dy ⊙ forward(inputs) with a seeded dy.

mod common;

use common::reference64::{dot, layernorm64, matmul64, numeric_grad, softmax64, to64};
use common::{assert_close, one_per_register_block};
use rezero::cpu;
use rezero::kernels::Dtype;
use rezero::kernels::autotune::{GPU_BLOCKS, SOFTWARE_BLOCKS};
use rezero::kernels::matmul::{Matmul, MatmulVariant, matmul};
use rezero::kernels::{
    Grad, NormSaved, cross_entropy, elementwise as ew, embedding, layernorm, rezero as rz, softmax,
};

const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-3;

#[test]
fn rezero_residual() {
    let gpu = require_gpu!();
    let n = 7;
    let (x, f, dy) = (
        cpu::seeded(1, n, -1.0, 1.0),
        cpu::seeded(2, n, -1.0, 1.0),
        cpu::seeded(3, n, -1.0, 1.0),
    );
    let alpha = 0.3f32;
    let (gdx, gdf, gda, scratch) = (
        gpu.zeroed_f32("dx", n),
        gpu.zeroed_f32("df", n),
        gpu.zeroed_f32("da", 1),
        gpu.zeroed_f32("s", rz::REZERO_SCRATCH_LEN),
    );
    let (gdy, gf, galpha) = (
        gpu.upload("dy", &dy),
        gpu.upload("f", &f),
        gpu.upload("alpha", &[alpha]),
    );
    pollster::block_on(gpu.run(|p| {
        let (dx, df, da) = (Grad::write(&gdx), Grad::write(&gdf), Grad::write(&gda));
        let shape = rz::RezeroShape {
            n: n as u32,
            alpha_index: 0,
            dtype: Dtype::F32,
        };
        rz::rezero_backward(gpu, p, dx, df, da, &scratch, &gdy, &gf, &galpha, shape)
    }))
    .unwrap();
    let fwd = |x: &[f64], f: &[f64], a: f64| -> f64 {
        (0..n).map(|i| dy[i] as f64 * (x[i] + a * f[i])).sum()
    };
    assert_close(
        "d/dx",
        &pollster::block_on(gpu.read_f32(&gdx, n)).unwrap(),
        &numeric_grad(|v| fwd(v, &to64(&f), alpha as f64), &x),
        ATOL,
        RTOL,
    );
    assert_close(
        "d/df",
        &pollster::block_on(gpu.read_f32(&gdf, n)).unwrap(),
        &numeric_grad(|v| fwd(&to64(&x), v, alpha as f64), &f),
        ATOL,
        RTOL,
    );
    assert_close(
        "d/dalpha",
        &pollster::block_on(gpu.read_f32(&gda, 1)).unwrap(),
        &numeric_grad(|v| fwd(&to64(&x), &to64(&f), v[0]), &[alpha]),
        ATOL,
        RTOL,
    );
}

#[test]
fn relu_gelu_scale() {
    let gpu = require_gpu!();
    let n = 9;
    // Keep relu's inputs away from its kink at 0.
    let x: Vec<f32> = cpu::seeded(4, n, -2.0, 2.0)
        .into_iter()
        .map(|v| if v.abs() < 0.1 { v + 0.3 } else { v })
        .collect();
    let dy = cpu::seeded(5, n, -1.0, 1.0);
    let (gx, gdy) = (gpu.upload("x", &x), gpu.upload("dy", &dy));
    let (d_relu, d_gelu, d_scale) = (
        gpu.zeroed_f32("a", n),
        gpu.zeroed_f32("b", n),
        gpu.zeroed_f32("c", n),
    );
    pollster::block_on(gpu.run(|p| {
        ew::relu_backward(gpu, p, &d_relu, &gdy, &gx, n as u32, false, Dtype::F32)?;
        ew::gelu_backward(gpu, p, &d_gelu, &gdy, &gx, n as u32, false, Dtype::F32)?;
        ew::scale(gpu, p, &d_scale, &gdy, -1.5, n as u32, false, Dtype::F32)
    }))
    .unwrap();
    let want = numeric_grad(
        |v| dot(&dy, &v.iter().map(|&t| t.max(0.0)).collect::<Vec<_>>()),
        &x,
    );
    assert_close(
        "relu",
        &pollster::block_on(gpu.read_f32(&d_relu, n)).unwrap(),
        &want,
        ATOL,
        RTOL,
    );
    let want = numeric_grad(
        |v| {
            dot(
                &dy,
                &v.iter()
                    .map(|&t| cpu::elementwise::gelu_value(t))
                    .collect::<Vec<_>>(),
            )
        },
        &x,
    );
    assert_close(
        "gelu",
        &pollster::block_on(gpu.read_f32(&d_gelu, n)).unwrap(),
        &want,
        ATOL,
        RTOL,
    );
    let want = numeric_grad(
        |v| dot(&dy, &v.iter().map(|&t| -1.5 * t).collect::<Vec<_>>()),
        &x,
    );
    assert_close(
        "scale",
        &pollster::block_on(gpu.read_f32(&d_scale, n)).unwrap(),
        &want,
        ATOL,
        RTOL,
    );
}

#[test]
fn softmax_rows() {
    let gpu = require_gpu!();
    let (rows, cols) = (3, 5);
    let n = rows * cols;
    let (x, dy) = (cpu::seeded(6, n, -2.0, 2.0), cpu::seeded(7, n, -1.0, 1.0));
    let (gx, gdy, gy, gdx) = (
        gpu.upload("x", &x),
        gpu.upload("dy", &dy),
        gpu.zeroed_f32("y", n),
        gpu.zeroed_f32("dx", n),
    );
    pollster::block_on(gpu.run(|p| {
        softmax::softmax_forward(gpu, p, &gy, &gx, rows as u32, cols as u32, Dtype::F32)?;
        softmax::softmax_backward(
            gpu,
            p,
            &gdx,
            &gy,
            &gdy,
            rows as u32,
            cols as u32,
            false,
            Dtype::F32,
        )
    }))
    .unwrap();
    let want = numeric_grad(|v| dot(&dy, &softmax64(v, cols)), &x);
    assert_close(
        "softmax",
        &pollster::block_on(gpu.read_f32(&gdx, n)).unwrap(),
        &want,
        ATOL,
        RTOL,
    );
}

#[test]
fn layernorm_rows() {
    let gpu = require_gpu!();
    let (rows, cols) = (3, 6);
    let n = rows * cols;
    let (x, dy) = (cpu::seeded(8, n, -2.0, 2.0), cpu::seeded(9, n, -1.0, 1.0));
    let (g, b) = (
        cpu::seeded(10, cols, 0.5, 1.5),
        cpu::seeded(11, cols, -0.5, 0.5),
    );
    let (gx, gdy, gg, gb) = (
        gpu.upload("x", &x),
        gpu.upload("dy", &dy),
        gpu.upload("g", &g),
        gpu.upload("b", &b),
    );
    let (gy, gm, gr) = (
        gpu.zeroed_f32("y", n),
        gpu.zeroed_f32("m", rows),
        gpu.zeroed_f32("r", rows),
    );
    let (gdx, gdg, gdb) = (
        gpu.zeroed_f32("dx", n),
        gpu.zeroed_f32("dg", cols),
        gpu.zeroed_f32("db", cols),
    );
    let (r, c) = (rows as u32, cols as u32);
    let scratch = gpu.zeroed_f32("s", layernorm::layernorm_scratch_len(r, c));
    pollster::block_on(gpu.run(|p| {
        let shape = layernorm::LayerNormShape {
            rows: r,
            cols: c,
            dtype: Dtype::F32,
        };
        layernorm::layernorm_forward(gpu, p, &gy, &gm, &gr, &gx, &gg, &gb, shape, 1e-5)?;
        let saved = NormSaved {
            x: &gx,
            mean: &gm,
            rstd: &gr,
            gain: &gg,
        };
        let (dx, dg, db) = (Grad::write(&gdx), Grad::write(&gdg), Grad::write(&gdb));
        let shape = layernorm::LayerNormShape {
            rows: r,
            cols: c,
            dtype: Dtype::F32,
        };
        layernorm::layernorm_backward(gpu, p, dx, dg, db, &scratch, &gdy, saved, shape)
    }))
    .unwrap();
    let (x64, g64, b64) = (to64(&x), to64(&g), to64(&b));
    assert_close(
        "d/dx",
        &pollster::block_on(gpu.read_f32(&gdx, n)).unwrap(),
        &numeric_grad(|v| dot(&dy, &layernorm64(v, &g64, &b64, cols)), &x),
        1e-4,
        RTOL,
    );
    assert_close(
        "d/dgain",
        &pollster::block_on(gpu.read_f32(&gdg, cols)).unwrap(),
        &numeric_grad(|v| dot(&dy, &layernorm64(&x64, v, &b64, cols)), &g),
        ATOL,
        RTOL,
    );
    assert_close(
        "d/dbias",
        &pollster::block_on(gpu.read_f32(&gdb, cols)).unwrap(),
        &numeric_grad(|v| dot(&dy, &layernorm64(&x64, &g64, v, cols)), &b),
        ATOL,
        RTOL,
    );
}

#[test]
fn cross_entropy_mean_loss() {
    let gpu = require_gpu!();
    let (rows, cols) = (4, 7);
    let n = rows * cols;
    let logits = cpu::seeded(12, n, -3.0, 3.0);
    let targets = cpu::seeded_ids(13, rows, cols as u32);
    let (gl, gt) = (gpu.upload("l", &logits), gpu.upload("t", &targets));
    let (loss, gd, rl) = (
        gpu.zeroed_f32("loss", 1),
        gpu.zeroed_f32("d", n),
        gpu.zeroed_f32("rl", rows),
    );
    pollster::block_on(gpu.run(|p| {
        cross_entropy::cross_entropy(
            gpu,
            p,
            &loss,
            &gd,
            &rl,
            &gl,
            &gt,
            rows as u32,
            cols as u32,
            Dtype::F32,
            None,
        )
    }))
    .unwrap();
    let ce = |v: &[f64]| -> f64 {
        let sm = softmax64(v, cols);
        (0..rows)
            .map(|r| -sm[r * cols + targets[r] as usize].ln())
            .sum::<f64>()
            / rows as f64
    };
    assert_close(
        "dlogits",
        &pollster::block_on(gpu.read_f32(&gd, n)).unwrap(),
        &numeric_grad(ce, &logits),
        ATOL,
        RTOL,
    );
    assert_close(
        "loss",
        &pollster::block_on(gpu.read_f32(&loss, 1)).unwrap(),
        &[ce(&to64(&logits)) as f32],
        1e-5,
        1e-5,
    );
}

#[test]
fn embedding_table() {
    let gpu = require_gpu!();
    let (tokens, dim, vocab) = (6usize, 3usize, 4usize);
    let table = cpu::seeded(14, vocab * dim, -1.0, 1.0);
    let ids = vec![2u32, 0, 2, 3, 2, 0];
    let dout = cpu::seeded(15, tokens * dim, -1.0, 1.0);
    let groups = embedding::IdGroups::new(&ids, vocab as u32).unwrap();
    let (gdt, gdout, go, goff) = (
        gpu.zeroed_f32("dt", vocab * dim),
        gpu.upload("dout", &dout),
        gpu.upload("o", &groups.order),
        gpu.upload("off", &groups.offsets),
    );
    pollster::block_on(gpu.run(|p| {
        let shape = embedding::EmbeddingShape::new(tokens as u32, dim as u32, vocab as u32);
        embedding::embedding_backward(gpu, p, Grad::write(&gdt), &gdout, &go, &goff, shape)
    }))
    .unwrap();
    let fwd = |t: &[f64]| -> f64 {
        (0..tokens)
            .flat_map(|i| (0..dim).map(move |c| (i, c)))
            .map(|(i, c)| dout[i * dim + c] as f64 * t[ids[i] as usize * dim + c])
            .sum()
    };
    assert_close(
        "dtable",
        &pollster::block_on(gpu.read_f32(&gdt, vocab * dim)).unwrap(),
        &numeric_grad(fwd, &table),
        ATOL,
        RTOL,
    );
}

/// dA = dC·Bᵀ and dB = Aᵀ·dC through every variant a launcher can pick: the simple ones and
/// the blocked tiles tried on GPUs and on software adapters, one of each register block and
/// slab depth (BM and BN only change how many loads each invocation makes; every tile
/// goes through the translation test). One shape fits reg8x4 (n and k multiples of 4);
/// the other crosses no tile boundary evenly.
#[test]
fn matmul_backward_through_transposed_products() {
    let gpu = require_gpu!();
    let blocks = GPU_BLOCKS.iter().chain(&SOFTWARE_BLOCKS);
    let variants: Vec<MatmulVariant> = MatmulVariant::SIMPLE
        .into_iter()
        .chain(one_per_register_block(gpu, blocks).map(MatmulVariant::Blocked))
        .collect();
    for variant in variants {
        matmul_backward_case(gpu, variant, (3, 8, 4));
        if variant != MatmulVariant::Reg8x4 {
            matmul_backward_case(gpu, variant, (37, 21, 19));
        }
    }
}

fn matmul_backward_case(
    gpu: &rezero::Gpu,
    variant: MatmulVariant,
    (m, n, k): (usize, usize, usize),
) {
    let (a, b, dc) = (
        cpu::seeded(16, m * k, -1.0, 1.0),
        cpu::seeded(17, k * n, -1.0, 1.0),
        cpu::seeded(18, m * n, -1.0, 1.0),
    );
    let (ga, gb, gdc) = (
        gpu.upload("a", &a),
        gpu.upload("b", &b),
        gpu.upload("dc", &dc),
    );
    let (gda, gdb) = (gpu.zeroed_f32("da", m * k), gpu.zeroed_f32("db", k * n));
    pollster::block_on(gpu.run(|p| {
        // dA[m, k] = dC[m, n] · Bᵀ;  dB[k, n] = Aᵀ · dC
        let desc = Matmul::new(m as u32, k as u32, n as u32).trans_b(true);
        matmul(gpu, p, &gda, &gdc, &gb, None, &desc.variant(variant))?;
        let desc = Matmul::new(k as u32, n as u32, m as u32).trans_a(true);
        matmul(gpu, p, &gdb, &ga, &gdc, None, &desc.variant(variant)).map(drop)
    }))
    .unwrap_or_else(|e| panic!("{variant:?}: {e}"));
    let prod = |a: &[f64], b: &[f64]| matmul64(a, b, None, m, n, k, false, false);
    let (a64, b64) = (to64(&a), to64(&b));
    let what = |t: &str| format!("{} [{m}, {n}, {k}] d{t}", variant.name());
    assert_close(
        &what("A"),
        &pollster::block_on(gpu.read_f32(&gda, m * k)).unwrap(),
        &numeric_grad(|v| dot(&dc, &prod(v, &b64)), &a),
        ATOL,
        RTOL,
    );
    assert_close(
        &what("B"),
        &pollster::block_on(gpu.read_f32(&gdb, k * n)).unwrap(),
        &numeric_grad(|v| dot(&dc, &prod(&a64, v)), &b),
        ATOL,
        RTOL,
    );
}
