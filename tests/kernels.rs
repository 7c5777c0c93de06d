//! Every non-matmul kernel against its CPU reference on awkward sizes.

mod common;

use common::{assert_close, atol_for};
use rezero::cpu;
use rezero::kernels::{
    cross_entropy, elementwise as ew, embedding, layernorm, optim, reduce, rezero as rz, softmax,
};

/// Row kernels run with the device's own row workgroup size and with others (256 is what
/// GPUs get); the lock keeps parallel tests from changing it under each other.
fn row_workgroup_sizes(gpu: &rezero::Gpu) -> Vec<u32> {
    let mut sizes = vec![gpu.row_workgroup_size(), 256, 32];
    sizes.dedup();
    sizes
}

static ROW_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Sets the row workgroup size while alive; names it if the test fails under it.
struct RowSize(u32, #[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

fn row_size(gpu: &rezero::Gpu, size: u32) -> RowSize {
    let guard = ROW_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    gpu.set_row_workgroup_size(size).unwrap();
    RowSize(size, guard)
}

impl Drop for RowSize {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(with row workgroup size {})", self.0);
        }
    }
}

const SIZES: [u32; 6] = [1, 3, 17, 33, 65, 1000];
const ROWS_COLS: [(u32, u32); 6] = [(1, 1), (3, 17), (17, 3), (1, 65), (33, 257), (5, 1000)];

#[test]
fn rezero_forward_and_backward() {
    let gpu = require_gpu!();
    for n in SIZES.into_iter().chain([70_000]) {
        let len = n as usize;
        let (x, f, dy, dx0) = (
            cpu::seeded(1, len, -1.0, 1.0),
            cpu::seeded(2, len, -1.0, 1.0),
            cpu::seeded(3, len, -1.0, 1.0),
            cpu::seeded(4, len, -1.0, 1.0),
        );
        let alpha = 0.37f32;
        for accumulate_dx in [false, true] {
            let mut want_y = vec![0.0; len];
            cpu::rezero::rezero_forward(&mut want_y, &x, &f, alpha);
            let (mut want_dx, mut want_df, mut want_da) = (dx0.clone(), vec![0.0; len], 0.5f32);
            cpu::rezero::rezero_backward(
                &mut want_dx,
                &mut want_df,
                &mut want_da,
                &dy,
                &f,
                alpha,
                accumulate_dx,
            );

            let (gx, gf, gdy, galpha) = (
                gpu.upload("x", &x),
                gpu.upload("f", &f),
                gpu.upload("dy", &dy),
                // Several blocks' α in one buffer; this block's is at index 2.
                gpu.upload("alpha", &[0.9, -0.4, alpha, 0.1]),
            );
            let (gy, gdx, gdf, gda) = (
                gpu.zeroed_f32("y", len),
                gpu.upload("dx", &dx0),
                gpu.zeroed_f32("df", len),
                gpu.upload("da", &[1.0f32, 2.0, 0.5, 3.0]),
            );
            let scratch = gpu.zeroed_f32("scratch", rz::REZERO_SCRATCH_LEN);
            gpu.run(|pass| {
                rz::rezero_forward(gpu, pass, &gy, &gx, &gf, &galpha, 2, n)?;
                rz::rezero_backward(
                    gpu,
                    pass,
                    &gdx,
                    &gdf,
                    &gda,
                    &scratch,
                    &gdy,
                    &gf,
                    &galpha,
                    2,
                    n,
                    accumulate_dx,
                )
            })
            .unwrap();
            let what = format!("rezero n={n} accumulate_dx={accumulate_dx}");
            assert_close(
                &format!("{what} y"),
                &gpu.read_f32(&gy, len).unwrap(),
                &want_y,
                1e-6,
                1e-6,
            );
            assert_close(
                &format!("{what} dx"),
                &gpu.read_f32(&gdx, len).unwrap(),
                &want_dx,
                1e-6,
                1e-6,
            );
            assert_close(
                &format!("{what} df"),
                &gpu.read_f32(&gdf, len).unwrap(),
                &want_df,
                1e-6,
                1e-6,
            );
            assert_close(
                &format!("{what} dalpha (only index 2 changes)"),
                &gpu.read_f32(&gda, 4).unwrap(),
                &[1.0, 2.0, want_da, 3.0],
                atol_for(len),
                1e-5,
            );
        }
    }
}

#[test]
fn elementwise_ops_and_backwards() {
    let gpu = require_gpu!();
    for n in SIZES.into_iter().chain([70_000]) {
        let len = n as usize;
        let (a, b, base) = (
            cpu::seeded(5, len, -3.0, 3.0),
            cpu::seeded(6, len, -3.0, 3.0),
            cpu::seeded(7, len, -1.0, 1.0),
        );
        let (ga, gb) = (gpu.upload("a", &a), gpu.upload("b", &b));
        for accumulate in [false, true] {
            type Launch =
                Box<dyn Fn(&mut wgpu::ComputePass<'_>, &wgpu::Buffer) -> rezero::Result<()>>;
            let mut cases: Vec<(&str, Launch, Vec<f32>)> = Vec::new();
            let mut want = base.clone();
            cpu::elementwise::add(&mut want, &a, &b, accumulate);
            let (ga2, gb2) = (ga.clone(), gb.clone());
            cases.push((
                "add",
                Box::new(move |p, o| ew::add(gpu, p, o, &ga2, &gb2, n, accumulate)),
                want,
            ));
            let mut want = base.clone();
            cpu::elementwise::scale(&mut want, &a, -0.75, accumulate);
            let ga2 = ga.clone();
            cases.push((
                "scale",
                Box::new(move |p, o| ew::scale(gpu, p, o, &ga2, -0.75, n, accumulate)),
                want,
            ));
            let mut want = base.clone();
            cpu::elementwise::relu_backward(&mut want, &a, &b, accumulate);
            let (ga2, gb2) = (ga.clone(), gb.clone());
            cases.push((
                "relu_backward",
                Box::new(move |p, o| ew::relu_backward(gpu, p, o, &ga2, &gb2, n, accumulate)),
                want,
            ));
            let mut want = base.clone();
            cpu::elementwise::gelu_backward(&mut want, &a, &b, accumulate);
            let (ga2, gb2) = (ga.clone(), gb.clone());
            cases.push((
                "gelu_backward",
                Box::new(move |p, o| ew::gelu_backward(gpu, p, o, &ga2, &gb2, n, accumulate)),
                want,
            ));
            if !accumulate {
                let mut want = base.clone();
                cpu::elementwise::relu(&mut want, &a);
                let ga2 = ga.clone();
                cases.push((
                    "relu",
                    Box::new(move |p, o| ew::relu(gpu, p, o, &ga2, n)),
                    want,
                ));
                let mut want = base.clone();
                cpu::elementwise::gelu(&mut want, &a);
                let ga2 = ga.clone();
                cases.push((
                    "gelu",
                    Box::new(move |p, o| ew::gelu(gpu, p, o, &ga2, n)),
                    want,
                ));
                let ga2 = ga.clone();
                cases.push((
                    "copy",
                    Box::new(move |p, o| ew::copy(gpu, p, o, &ga2, n)),
                    a.clone(),
                ));
                cases.push((
                    "fill",
                    Box::new(move |p, o| ew::fill(gpu, p, o, 2.5, n)),
                    vec![2.5; len],
                ));
            }
            for (name, launch, want) in cases {
                let out = gpu.upload("out", &base);
                gpu.run(|pass| launch(pass, &out)).unwrap();
                let what = format!("{name} n={n} accumulate={accumulate}");
                // gelu goes through exp in f32: a few ulps more than the exact ops.
                let atol = if name.starts_with("gelu") { 1e-5 } else { 1e-6 };
                assert_close(&what, &gpu.read_f32(&out, len).unwrap(), &want, atol, 2e-6);
            }
        }
    }
}

#[test]
fn sums_per_row_and_whole() {
    let gpu = require_gpu!();
    for size in row_workgroup_sizes(gpu) {
        let _size = row_size(gpu, size);
        for (rows, cols) in ROWS_COLS.into_iter().chain([(70_000, 3)]) {
            let len = (rows * cols) as usize;
            let x = cpu::seeded(8, len, -1.0, 1.0);
            let gx = gpu.upload("x", &x);
            for square in [false, true] {
                let out = gpu.zeroed_f32("out", rows as usize);
                gpu.run(|pass| reduce::sum_rows(gpu, pass, &out, &gx, rows, cols, square, false))
                    .unwrap();
                let want = cpu::reduce::sum_rows(&x, cols as usize, square);
                assert_close(
                    &format!("sum_rows {rows}x{cols} square={square}"),
                    &gpu.read_f32(&out, rows as usize).unwrap(),
                    &want,
                    atol_for(cols as usize),
                    1e-5,
                );

                let total = gpu.upload("total", &[1.0f32]);
                let scratch = gpu.zeroed_f32("scratch", reduce::REDUCE_SCRATCH_LEN);
                gpu.run(|pass| {
                    reduce::sum_all(gpu, pass, &total, &scratch, &gx, rows * cols, square, true)
                })
                .unwrap();
                let want = 1.0 + cpu::reduce::sum_all(&x, square);
                assert_close(
                    &format!("sum_all n={len} square={square}"),
                    &gpu.read_f32(&total, 1).unwrap(),
                    &[want],
                    atol_for(len),
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn softmax_forward_backward() {
    let gpu = require_gpu!();
    for size in row_workgroup_sizes(gpu) {
        let _size = row_size(gpu, size);
        for (rows, cols) in ROWS_COLS {
            let len = (rows * cols) as usize;
            let x = cpu::seeded(9, len, -8.0, 8.0);
            let dy = cpu::seeded(10, len, -1.0, 1.0);
            let mut want_y = vec![0.0; len];
            cpu::softmax::softmax_forward(&mut want_y, &x, cols as usize);
            let mut want_dx = vec![0.25; len];
            cpu::softmax::softmax_backward(&mut want_dx, &want_y, &dy, cols as usize, true);
            let (gx, gdy, gy, gdx) = (
                gpu.upload("x", &x),
                gpu.upload("dy", &dy),
                gpu.zeroed_f32("y", len),
                gpu.upload("dx", &vec![0.25f32; len]),
            );
            gpu.run(|pass| {
                softmax::softmax_forward(gpu, pass, &gy, &gx, rows, cols)?;
                softmax::softmax_backward(gpu, pass, &gdx, &gy, &gdy, rows, cols, true)
            })
            .unwrap();
            assert_close(
                &format!("softmax {rows}x{cols} y"),
                &gpu.read_f32(&gy, len).unwrap(),
                &want_y,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("softmax {rows}x{cols} dx"),
                &gpu.read_f32(&gdx, len).unwrap(),
                &want_dx,
                atol_for(cols as usize),
                1e-4,
            );
        }
    }
}

#[test]
fn layernorm_forward_backward() {
    let gpu = require_gpu!();
    for size in row_workgroup_sizes(gpu) {
        let _size = row_size(gpu, size);
        // More than one block of 64 rows, the last one partial, for the gain/bias sums.
        for (rows, cols) in ROWS_COLS.into_iter().chain([(130, 7), (200, 65)]) {
            let (r, c, len) = (rows as usize, cols as usize, (rows * cols) as usize);
            let x = cpu::seeded(11, len, -2.0, 3.0);
            let dy = cpu::seeded(12, len, -1.0, 1.0);
            let gain = cpu::seeded(13, c, 0.5, 1.5);
            let bias = cpu::seeded(14, c, -0.5, 0.5);
            let eps = 1e-5;
            let mut want_y = vec![0.0; len];
            let (mean, rstd) =
                cpu::layernorm::layernorm_forward(&mut want_y, &x, &gain, &bias, c, eps);
            let (mut want_dx, mut want_dg, mut want_db) =
                (vec![0.0; len], vec![0.1; c], vec![0.2; c]);
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
                false,
            );

            let (gx, gdy, gg, gb) = (
                gpu.upload("x", &x),
                gpu.upload("dy", &dy),
                gpu.upload("gain", &gain),
                gpu.upload("bias", &bias),
            );
            let (gy, gm, gr, gdx) = (
                gpu.zeroed_f32("y", len),
                gpu.zeroed_f32("mean", r),
                gpu.zeroed_f32("rstd", r),
                gpu.zeroed_f32("dx", len),
            );
            let (gdg, gdb) = (
                gpu.upload("dgain", &vec![0.1f32; c]),
                gpu.upload("dbias", &vec![0.2f32; c]),
            );
            let scratch = gpu.zeroed_f32("scratch", layernorm::layernorm_scratch_len(rows, cols));
            gpu.run(|pass| {
                layernorm::layernorm_forward(
                    gpu, pass, &gy, &gm, &gr, &gx, &gg, &gb, rows, cols, eps,
                )?;
                layernorm::layernorm_backward(
                    gpu, pass, &gdx, &gdg, &gdb, &scratch, &gdy, &gx, &gm, &gr, &gg, rows, cols,
                    false,
                )
            })
            .unwrap();
            let what = format!("layernorm {rows}x{cols}");
            // A row of one column normalises to 0 with rstd = 1/sqrt(eps): compare relative to that scale.
            assert_close(
                &format!("{what} y"),
                &gpu.read_f32(&gy, len).unwrap(),
                &want_y,
                1e-4,
                1e-4,
            );
            assert_close(
                &format!("{what} mean"),
                &gpu.read_f32(&gm, r).unwrap(),
                &mean,
                1e-5,
                1e-5,
            );
            assert_close(
                &format!("{what} rstd"),
                &gpu.read_f32(&gr, r).unwrap(),
                &rstd,
                1e-5,
                1e-4,
            );
            assert_close(
                &format!("{what} dx"),
                &gpu.read_f32(&gdx, len).unwrap(),
                &want_dx,
                10.0 * atol_for(c),
                1e-3,
            );
            assert_close(
                &format!("{what} dgain"),
                &gpu.read_f32(&gdg, c).unwrap(),
                &want_dg,
                atol_for(r),
                1e-4,
            );
            assert_close(
                &format!("{what} dbias"),
                &gpu.read_f32(&gdb, c).unwrap(),
                &want_db,
                atol_for(r),
                1e-4,
            );
        }
    }
}

#[test]
fn embedding_lookup_and_deterministic_scatter_add() {
    let gpu = require_gpu!();
    for (tokens, dim, vocab) in [(1u32, 1u32, 1u32), (17, 3, 5), (65, 33, 256), (300, 17, 3)] {
        let (t, d, v) = (tokens as usize, dim as usize, vocab as usize);
        let table = cpu::seeded(15, v * d, -1.0, 1.0);
        let ids = cpu::seeded_ids(16, t, vocab);
        let dout = cpu::seeded(17, t * d, -1.0, 1.0);
        let base = cpu::seeded(18, t * d, -1.0, 1.0);
        let mut want_out = base.clone();
        cpu::embedding::embedding_forward(&mut want_out, &table, &ids, d, true);
        let mut want_dt = vec![0.5; v * d];
        cpu::embedding::embedding_backward(&mut want_dt, &dout, &ids, d);

        let groups = embedding::IdGroups::new(&ids, vocab).unwrap();
        let (gt, gids, gout) = (
            gpu.upload("table", &table),
            gpu.upload("ids", &ids),
            gpu.upload("out", &base),
        );
        let (gdout, gorder, goff, gdt) = (
            gpu.upload("dout", &dout),
            gpu.upload("order", &groups.order),
            gpu.upload("offsets", &groups.offsets),
            gpu.upload("dtable", &vec![0.5f32; v * d]),
        );
        gpu.run(|pass| {
            embedding::embedding_forward(gpu, pass, &gout, &gt, &gids, tokens, dim, vocab, true)?;
            embedding::embedding_backward(
                gpu, pass, &gdt, &gdout, &gorder, &goff, tokens, dim, vocab,
            )
        })
        .unwrap();
        let what = format!("embedding tokens={tokens} dim={dim} vocab={vocab}");
        assert_close(
            &format!("{what} out"),
            &gpu.read_f32(&gout, t * d).unwrap(),
            &want_out,
            1e-6,
            1e-6,
        );
        let got_dt = gpu.read_f32(&gdt, v * d).unwrap();
        assert_close(
            &format!("{what} dtable"),
            &got_dt,
            &want_dt,
            atol_for(t),
            1e-5,
        );
        // Deterministic: a second run gives bit-identical gradients.
        let gdt2 = gpu.upload("dtable2", &vec![0.5f32; v * d]);
        gpu.run(|pass| {
            embedding::embedding_backward(
                gpu, pass, &gdt2, &gdout, &gorder, &goff, tokens, dim, vocab,
            )
        })
        .unwrap();
        assert_eq!(
            got_dt,
            gpu.read_f32(&gdt2, v * d).unwrap(),
            "{what}: backward is not deterministic"
        );
    }
}

#[test]
fn id_groups_reject_out_of_range_ids() {
    let err = embedding::IdGroups::new(&[0, 4, 9], 5).unwrap_err();
    assert!(matches!(err, rezero::Error::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("ids[2] = 9"), "{err}");
}

#[test]
fn cross_entropy_loss_and_gradient() {
    let gpu = require_gpu!();
    for size in row_workgroup_sizes(gpu) {
        let _size = row_size(gpu, size);
        for (rows, cols) in ROWS_COLS {
            let (r, c, len) = (rows as usize, cols as usize, (rows * cols) as usize);
            let logits = cpu::seeded(19, len, -6.0, 6.0);
            let mut targets = cpu::seeded_ids(20, r, cols);
            if r > 2 {
                targets[1] = cols + 7; // an ignored row
            }
            let mut want_d = vec![0.0; len];
            let want_loss = cpu::cross_entropy::cross_entropy(&mut want_d, &logits, &targets, c);
            let (gl, gt) = (
                gpu.upload("logits", &logits),
                gpu.upload("targets", &targets),
            );
            let (loss, gd, rl) = (
                gpu.zeroed_f32("loss", 1),
                gpu.zeroed_f32("dlogits", len),
                gpu.zeroed_f32("row_loss", r),
            );
            gpu.run(|pass| {
                cross_entropy::cross_entropy(gpu, pass, &loss, &gd, &rl, &gl, &gt, rows, cols)
            })
            .unwrap();
            let what = format!("cross_entropy {rows}x{cols}");
            assert_close(
                &format!("{what} loss"),
                &gpu.read_f32(&loss, 1).unwrap(),
                &[want_loss],
                1e-5 * (c as f32).ln().max(1.0),
                1e-5,
            );
            assert_close(
                &format!("{what} dlogits"),
                &gpu.read_f32(&gd, len).unwrap(),
                &want_d,
                1e-6,
                1e-4,
            );
        }
    }
}

#[test]
fn optimizers_match_reference_over_steps() {
    let gpu = require_gpu!();
    for n in [1u32, 17, 1000] {
        let len = n as usize;
        let p0 = cpu::seeded(21, len, -1.0, 1.0);
        let sgd = optim::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
        };
        let ada = optim::Adagrad {
            lr: 0.05,
            eps: 1e-8,
            weight_decay: 0.001,
        };
        // (AdamW or Adam with L2) × (no clipping, clipping to norm 0.5: always active here)
        for (decoupled, max_norm) in [(false, None), (true, None), (true, Some(0.5f32))] {
            let adam = optim::Adam {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled,
            };
            let (gp_s, gp_a, gp_m) = (
                gpu.upload("p", &p0),
                gpu.upload("p", &p0),
                gpu.upload("p", &p0),
            );
            let (gv, gs, gm, gv2) = (
                gpu.zeroed_f32("v", len),
                gpu.zeroed_f32("s", len),
                gpu.zeroed_f32("m", len),
                gpu.zeroed_f32("v2", len),
            );
            let (mut p_s, mut p_a, mut p_m) = (p0.clone(), p0.clone(), p0.clone());
            let (mut v, mut s, mut m, mut v2) = (
                vec![0.0; len],
                vec![0.0; len],
                vec![0.0; len],
                vec![0.0; len],
            );
            for step in 1..=3u32 {
                let g = cpu::seeded(100 + step as u64, len, -1.0, 1.0);
                let gg = gpu.upload("g", &g);
                let norm_sq = cpu::reduce::sum_all(&g, true);
                let gnorm = gpu.upload("norm_sq", &[norm_sq]);
                let clip = max_norm.map(|max_norm| optim::Clip {
                    norm_sq: &gnorm,
                    max_norm,
                });
                gpu.run(|pass| {
                    optim::sgd(gpu, pass, &gp_s, &gv, &gg, n, &sgd, clip)?;
                    optim::adagrad(gpu, pass, &gp_a, &gs, &gg, n, &ada, clip)?;
                    optim::adam(gpu, pass, &gp_m, &gm, &gv2, &gg, n, &adam, step, clip)
                })
                .unwrap();
                let scale = cpu::optim::clip_scale(norm_sq, max_norm);
                cpu::optim::sgd(&mut p_s, &mut v, &g, &sgd, scale);
                cpu::optim::adagrad(&mut p_a, &mut s, &g, &ada, scale);
                cpu::optim::adam(&mut p_m, &mut m, &mut v2, &g, &adam, step, scale);
            }
            assert_close(
                &format!("sgd n={n} clip={max_norm:?}"),
                &gpu.read_f32(&gp_s, len).unwrap(),
                &p_s,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("adagrad n={n} clip={max_norm:?}"),
                &gpu.read_f32(&gp_a, len).unwrap(),
                &p_a,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("adam decoupled={decoupled} n={n} clip={max_norm:?}"),
                &gpu.read_f32(&gp_m, len).unwrap(),
                &p_m,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("adam m n={n}"),
                &gpu.read_f32(&gm, len).unwrap(),
                &m,
                1e-6,
                1e-5,
            );
        }
    }
}
