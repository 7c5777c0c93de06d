//! The row kernels (sums, softmax, layernorm, cross-entropy) and embedding against their
//! CPU references on awkward sizes, at the device's row workgroup size and at others.

mod common;

use common::precision::{dtypes, exact, read_as_f32, upload_as, widen};
use common::{assert_close, atol_for};
use rezero::cpu;
use rezero::kernels::Dtype;
use rezero::kernels::{Grad, NormSaved, cross_entropy, embedding, layernorm, reduce, softmax};

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

const ROWS_COLS: [(u32, u32); 6] = [(1, 1), (3, 17), (17, 3), (1, 65), (33, 257), (5, 1000)];

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
                pollster::block_on(
                    gpu.run(|pass| {
                        reduce::sum_rows(gpu, pass, &out, &gx, rows, cols, square, false)
                    }),
                )
                .unwrap();
                let want = cpu::reduce::sum_rows(&x, cols as usize, square);
                assert_close(
                    &format!("sum_rows {rows}x{cols} square={square}"),
                    &pollster::block_on(gpu.read_f32(&out, rows as usize)).unwrap(),
                    &want,
                    atol_for(cols as usize),
                    1e-5,
                );

                let total = gpu.upload("total", &[1.0f32]);
                let scratch = gpu.zeroed_f32("scratch", reduce::REDUCE_SCRATCH_LEN);
                pollster::block_on(gpu.run(|pass| {
                    reduce::sum_all(gpu, pass, &total, &scratch, &gx, rows * cols, square, true)
                }))
                .unwrap();
                let want = 1.0 + cpu::reduce::sum_all(&x, square);
                assert_close(
                    &format!("sum_all n={len} square={square}"),
                    &pollster::block_on(gpu.read_f32(&total, 1)).unwrap(),
                    &[want],
                    atol_for(len),
                    1e-5,
                );
            }
        }
    }
}

/// On f32 and f16 activations. The backward's reference reads the y the kernel wrote (the
/// input the backward kernel had), so that an f16 y rounded the other way at a tie does
/// not count against the backward.
#[test]
fn softmax_forward_backward() {
    let gpu = require_gpu!();
    for size in row_workgroup_sizes(gpu) {
        let _size = row_size(gpu, size);
        for ((rows, cols), dtype) in ROWS_COLS
            .into_iter()
            .flat_map(|s| dtypes(gpu).into_iter().map(move |d| (s, d)))
        {
            let len = (rows * cols) as usize;
            let x = exact(&cpu::seeded(9, len, -8.0, 8.0), dtype);
            let dy = exact(&cpu::seeded(10, len, -1.0, 1.0), dtype);
            let mut want_y = vec![0.0; len];
            cpu::softmax::softmax_forward(&mut want_y, &x, cols as usize);
            let (gx, gdy, gy, gdx) = (
                upload_as(gpu, "x", &x, dtype),
                upload_as(gpu, "dy", &dy, dtype),
                gpu.zeroed_f32("y", len),
                upload_as(gpu, "dx", &vec![0.25f32; len], dtype),
            );
            pollster::block_on(
                gpu.run(|pass| softmax::softmax_forward(gpu, pass, &gy, &gx, rows, cols, dtype)),
            )
            .unwrap();
            let y = read_as_f32(gpu, &gy, len, dtype);
            let what = format!("softmax {dtype} {rows}x{cols}");
            let (atol, rtol) = widen((1e-6, 1e-5), dtype);
            assert_close(&format!("{what} y"), &y, &want_y, atol, rtol);
            let mut want_dx = vec![0.25; len];
            cpu::softmax::softmax_backward(&mut want_dx, &y, &dy, cols as usize, true);
            pollster::block_on(gpu.run(|pass| {
                softmax::softmax_backward(gpu, pass, &gdx, &gy, &gdy, rows, cols, true, dtype)
            }))
            .unwrap();
            let (atol, rtol) = widen((atol_for(cols as usize), 1e-4), dtype);
            let dx = read_as_f32(gpu, &gdx, len, dtype);
            assert_close(&format!("{what} dx"), &dx, &want_dx, atol, rtol);
        }
    }
}

#[test]
fn layernorm_forward_backward() {
    let gpu = require_gpu!();
    for size in row_workgroup_sizes(gpu) {
        let _size = row_size(gpu, size);
        // More than one block of 64 rows, the last one partial, for the gain/bias sums.
        let shapes = ROWS_COLS.into_iter().chain([(130, 7), (200, 65)]);
        for ((rows, cols), dtype) in
            shapes.flat_map(|s| dtypes(gpu).into_iter().map(move |d| (s, d)))
        {
            let (r, c, len) = (rows as usize, cols as usize, (rows * cols) as usize);
            let x = exact(&cpu::seeded(11, len, -2.0, 3.0), dtype);
            let dy = exact(&cpu::seeded(12, len, -1.0, 1.0), dtype);
            let gain = cpu::seeded(13, c, 0.5, 1.5);
            let bias = cpu::seeded(14, c, -0.5, 0.5);
            let eps = 1e-5;
            let mut want_y = vec![0.0; len];
            let (mean, rstd) =
                cpu::layernorm::layernorm_forward(&mut want_y, &x, &gain, &bias, c, eps);
            // Each gradient written (its buffer NaN-poisoned first) or added to.
            for accumulate in [[false, true, true], [true, false, false]] {
                let dx0 = exact(&start(len, accumulate[0], 0.3), dtype);
                let (dg0, db0) = (start(c, accumulate[1], 0.1), start(c, accumulate[2], 0.2));
                let (mut want_dx, mut want_dg, mut want_db) =
                    (dx0.clone(), dg0.clone(), db0.clone());
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

                let (gx, gdy, gg, gb) = (
                    upload_as(gpu, "x", &x, dtype),
                    upload_as(gpu, "dy", &dy, dtype),
                    gpu.upload("gain", &gain),
                    gpu.upload("bias", &bias),
                );
                let (gy, gm, gr, gdx) = (
                    gpu.zeroed_f32("y", len),
                    gpu.zeroed_f32("mean", r),
                    gpu.zeroed_f32("rstd", r),
                    upload_as(gpu, "dx", &dx0, dtype),
                );
                let (gdg, gdb) = (gpu.upload("dgain", &dg0), gpu.upload("dbias", &db0));
                let scratch =
                    gpu.zeroed_f32("scratch", layernorm::layernorm_scratch_len(rows, cols));
                pollster::block_on(gpu.run(|pass| {
                    let shape = layernorm::LayerNormShape { rows, cols, dtype };
                    layernorm::layernorm_forward(
                        gpu, pass, &gy, &gm, &gr, &gx, &gg, &gb, shape, eps,
                    )?;
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
                    layernorm::layernorm_backward(
                        gpu, pass, dx, dg, db, &scratch, &gdy, saved, shape,
                    )
                }))
                .unwrap();
                let what = format!("layernorm {dtype} {rows}x{cols} accumulate {accumulate:?}");
                // A row of one column normalises to 0 with rstd = 1/sqrt(eps): compare relative to that scale.
                let (atol, rtol) = widen((1e-4, 1e-4), dtype);
                let y = read_as_f32(gpu, &gy, len, dtype);
                assert_close(&format!("{what} y"), &y, &want_y, atol, rtol);
                assert_close(
                    &format!("{what} mean"),
                    &pollster::block_on(gpu.read_f32(&gm, r)).unwrap(),
                    &mean,
                    1e-5,
                    1e-5,
                );
                assert_close(
                    &format!("{what} rstd"),
                    &pollster::block_on(gpu.read_f32(&gr, r)).unwrap(),
                    &rstd,
                    1e-5,
                    1e-4,
                );
                let (atol, rtol) = widen((10.0 * atol_for(c), 1e-3), dtype);
                let dx = read_as_f32(gpu, &gdx, len, dtype);
                assert_close(&format!("{what} dx"), &dx, &want_dx, atol, rtol);
                assert_close(
                    &format!("{what} dgain"),
                    &pollster::block_on(gpu.read_f32(&gdg, c)).unwrap(),
                    &want_dg,
                    atol_for(r),
                    1e-4,
                );
                assert_close(
                    &format!("{what} dbias"),
                    &pollster::block_on(gpu.read_f32(&gdb, c)).unwrap(),
                    &want_db,
                    atol_for(r),
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn embedding_lookup_and_deterministic_scatter_add() {
    let gpu = require_gpu!();
    let sizes = [(1u32, 1u32, 1u32), (17, 3, 5), (65, 33, 256), (300, 17, 3)];
    // The rows and their gradient of each type; the table and its gradient stay f32.
    for ((tokens, dim, vocab), dtype) in sizes
        .into_iter()
        .flat_map(|s| dtypes(gpu).into_iter().map(move |d| (s, d)))
    {
        let (t, d, v) = (tokens as usize, dim as usize, vocab as usize);
        let table = cpu::seeded(15, v * d, -1.0, 1.0);
        let ids = cpu::seeded_ids(16, t, vocab);
        let dout = exact(&cpu::seeded(17, t * d, -1.0, 1.0), dtype);
        let base = exact(&cpu::seeded(18, t * d, -1.0, 1.0), dtype);
        let mut want_out = base.clone();
        cpu::embedding::embedding_forward(&mut want_out, &table, &ids, d, true);
        for accumulate in [true, false] {
            let dt0 = start(v * d, accumulate, 0.5);
            let mut want_dt = dt0.clone();
            cpu::embedding::embedding_backward(&mut want_dt, &dout, &ids, d, accumulate);

            let groups = embedding::IdGroups::new(&ids, vocab).unwrap();
            let (gt, gids, gout) = (
                gpu.upload("table", &table),
                gpu.upload("ids", &ids),
                upload_as(gpu, "out", &base, dtype),
            );
            let (gdout, gorder, goff, gdt) = (
                upload_as(gpu, "dout", &dout, dtype),
                gpu.upload("order", &groups.order),
                gpu.upload("offsets", &groups.offsets),
                gpu.upload("dtable", &dt0),
            );
            let shape = embedding::EmbeddingShape {
                dtype,
                ..embedding::EmbeddingShape::new(tokens, dim, vocab)
            };
            pollster::block_on(gpu.run(|pass| {
                embedding::embedding_forward(gpu, pass, &gout, &gt, &gids, shape, true)?;
                let dt = Grad::new(&gdt, accumulate);
                embedding::embedding_backward(gpu, pass, dt, &gdout, &gorder, &goff, shape)
            }))
            .unwrap();
            let what = format!(
                "embedding {dtype} tokens={tokens} dim={dim} vocab={vocab} accumulate={accumulate}"
            );
            let (atol, rtol) = widen((1e-6, 1e-6), dtype);
            let got_out = read_as_f32(gpu, &gout, t * d, dtype);
            assert_close(&format!("{what} out"), &got_out, &want_out, atol, rtol);
            let got_dt = pollster::block_on(gpu.read_f32(&gdt, v * d)).unwrap();
            assert_close(
                &format!("{what} dtable"),
                &got_dt,
                &want_dt,
                atol_for(t),
                1e-5,
            );
            // Deterministic: a second run gives bit-identical gradients.
            let gdt2 = gpu.upload("dtable2", &dt0);
            pollster::block_on(gpu.run(|pass| {
                let dt = Grad::new(&gdt2, accumulate);
                embedding::embedding_backward(gpu, pass, dt, &gdout, &gorder, &goff, shape)
            }))
            .unwrap();
            assert_eq!(
                got_dt,
                pollster::block_on(gpu.read_f32(&gdt2, v * d)).unwrap(),
                "{what}: backward is not deterministic"
            );
        }
    }
}

/// The backward reads its groups from the caller's buffers, which `IdGroups` built but a
/// caller may fill with anything: offsets past the tokens, decreasing or huge, and token
/// ids past the end are clamped and skipped (the shader is built without bounds checks), so
/// each row sums at most the tokens its clamped range names that exist.
#[test]
fn embedding_backward_clamps_groups_whatever_the_buffers_hold() {
    let gpu = require_gpu!();
    let (tokens, dim, vocab) = (4u32, 3u32, 5u32);
    let dout: Vec<f32> = (0..tokens * dim).map(|i| i as f32).collect();
    // Row 0: tokens 0 and 1; row 1: a decreasing range (nothing); row 2: token 1 and an id
    // past the end (skipped); row 3: from 3 to a huge offset (clamped to 4: token 3); row
    // 4: a range that starts past the end (nothing).
    let offsets = [0u32, 2, 1, 3, u32::MAX, u32::MAX];
    let order = [0u32, 1, u32::MAX, 3];
    let (gdout, goff, gorder) = (
        gpu.upload("dout", &dout),
        gpu.upload("offsets", &offsets),
        gpu.upload("order", &order),
    );
    let gdt = gpu.zeroed_f32("dtable", (vocab * dim) as usize);
    let shape = embedding::EmbeddingShape::new(tokens, dim, vocab);
    pollster::block_on(gpu.run(|pass| {
        embedding::embedding_backward(gpu, pass, Grad::write(&gdt), &gdout, &gorder, &goff, shape)
    }))
    .unwrap();
    let got = pollster::block_on(gpu.read_f32(&gdt, (vocab * dim) as usize)).unwrap();
    let row = |t: usize| &dout[t * 3..t * 3 + 3];
    let mut want = vec![0.0f32; 15];
    for c in 0..3 {
        want[c] = row(0)[c] + row(1)[c];
        want[6 + c] = row(1)[c];
        want[9 + c] = row(3)[c];
    }
    assert_eq!(got, want);
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
        for ((rows, cols), dtype) in ROWS_COLS
            .into_iter()
            .flat_map(|s| dtypes(gpu).into_iter().map(move |d| (s, d)))
        {
            let (r, c, len) = (rows as usize, cols as usize, (rows * cols) as usize);
            let logits = exact(&cpu::seeded(19, len, -6.0, 6.0), dtype);
            let mut targets = cpu::seeded_ids(20, r, cols);
            if r > 2 {
                targets[1] = cols + 7; // an ignored row
            }
            let mut want_d = vec![0.0; len];
            let want_loss = cpu::cross_entropy::cross_entropy(&mut want_d, &logits, &targets, c);
            let (gl, gt) = (
                upload_as(gpu, "logits", &logits, dtype),
                gpu.upload("targets", &targets),
            );
            let (loss, gd, rl) = (
                gpu.zeroed_f32("loss", 1),
                gpu.zeroed_f32("dlogits", len),
                gpu.zeroed_f32("row_loss", r),
            );
            pollster::block_on(gpu.run(|pass| {
                cross_entropy::cross_entropy(
                    gpu, pass, &loss, &gd, &rl, &gl, &gt, rows, cols, dtype, None,
                )
            }))
            .unwrap();
            let what = format!("cross_entropy {dtype} {rows}x{cols}");
            assert_close(
                &format!("{what} loss"),
                &pollster::block_on(gpu.read_f32(&loss, 1)).unwrap(),
                &[want_loss],
                1e-5 * (c as f32).ln().max(1.0),
                1e-5,
            );
            let (atol, rtol) = widen((1e-6, 1e-4), dtype);
            let dlogits = read_as_f32(gpu, &gd, len, dtype);
            assert_close(&format!("{what} dlogits"), &dlogits, &want_d, atol, rtol);
        }
    }
}

#[test]
fn causal_scaled_softmax_forward_backward() {
    let gpu = require_gpu!();
    for (heads, t) in [(1u32, 1u32), (3, 5), (2, 33), (1, 130)] {
        let (rows, len) = (heads * t, (heads * t * t) as usize);
        let scale = 0.37f32;
        let (x, dy) = (
            cpu::seeded(30, len, -4.0, 4.0),
            cpu::seeded(31, len, -1.0, 1.0),
        );
        let mut want_y = vec![0.0; len];
        cpu::softmax::softmax_causal_forward(&mut want_y, &x, t as usize, scale);
        let mut want_dx = vec![0.0; len];
        cpu::softmax::softmax_backward(&mut want_dx, &want_y, &dy, t as usize, false);
        want_dx.iter_mut().for_each(|v| *v *= scale);
        let (gx, gdy, gy, gdx) = (
            gpu.upload("x", &x),
            gpu.upload("dy", &dy),
            gpu.zeroed_f32("y", len),
            gpu.zeroed_f32("dx", len),
        );
        pollster::block_on(gpu.run(|pass| {
            softmax::softmax_causal_forward(gpu, pass, &gy, &gx, rows, t, scale, Dtype::F32)?;
            softmax::softmax_causal_backward(
                gpu,
                pass,
                &gdx,
                &gy,
                &gdy,
                rows,
                t,
                scale,
                false,
                Dtype::F32,
            )
        }))
        .unwrap();
        let y = pollster::block_on(gpu.read_f32(&gy, len)).unwrap();
        assert_close(
            &format!("causal softmax {heads}x{t} y"),
            &y,
            &want_y,
            1e-6,
            1e-5,
        );
        assert!(
            y.iter()
                .enumerate()
                .all(|(i, &v)| (i % t as usize) <= (i / t as usize) % t as usize || v == 0.0),
            "masked entries are exactly 0"
        );
        assert_close(
            &format!("causal softmax {heads}x{t} dx"),
            &pollster::block_on(gpu.read_f32(&gdx, len)).unwrap(),
            &want_dx,
            atol_for(t as usize),
            1e-4,
        );
    }
}

/// A gradient buffer's starting values: `value` where the kernel adds to it, NaN where it
/// must overwrite it (so a missed element shows).
fn start(len: usize, accumulate: bool, value: f32) -> Vec<f32> {
    vec![if accumulate { value } else { f32::NAN }; len]
}
