//! The pointwise kernels (rezero, elementwise, optimizers) against their CPU references
//! on awkward sizes. The row kernels are in kernels_rows.rs, matmul in matmul.rs.

mod common;

use common::precision::{dtypes, exact, read_as_f32, upload_as, widen};
use common::{assert_close, atol_for};
use rezero::cpu;
use rezero::kernels::{Grad, elementwise as ew, optim, rezero as rz};

const SIZES: [u32; 6] = [1, 3, 17, 33, 65, 1000];

/// On f32 and on f16 activations (x, f, y, dy, dx, df; α and dα stay f32): the
/// reference is computed from the same f16-rounded inputs, and f16 outputs are allowed one
/// rounding.
#[test]
fn rezero_forward_and_backward() {
    let gpu = require_gpu!();
    let cases = SIZES.into_iter().chain([70_000]);
    for (n, dtype) in cases.flat_map(|n| dtypes(gpu).into_iter().map(move |d| (n, d))) {
        let len = n as usize;
        let (x, f, dy, dx0) = (
            exact(&cpu::seeded(1, len, -1.0, 1.0), dtype),
            exact(&cpu::seeded(2, len, -1.0, 1.0), dtype),
            exact(&cpu::seeded(3, len, -1.0, 1.0), dtype),
            exact(&cpu::seeded(4, len, -1.0, 1.0), dtype),
        );
        let alpha = 0.37f32;
        // Each gradient written (its buffer NaN-poisoned first) or added to.
        for accumulate in [
            [false, false, true],
            [true, true, false],
            [true, false, true],
        ] {
            let poison = |v: Vec<f32>, add: bool| if add { v } else { vec![f32::NAN; v.len()] };
            let (dx0, df0) = (
                poison(dx0.clone(), accumulate[0]),
                poison(exact(&cpu::seeded(5, len, -1.0, 1.0), dtype), accumulate[1]),
            );
            let da0 = if accumulate[2] { 0.5f32 } else { f32::NAN };
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

            let (gx, gf, gdy, galpha) = (
                upload_as(gpu, "x", &x, dtype),
                upload_as(gpu, "f", &f, dtype),
                upload_as(gpu, "dy", &dy, dtype),
                // Several blocks' α in one buffer; this block's is at index 2.
                gpu.upload("alpha", &[0.9, -0.4, alpha, 0.1]),
            );
            let (gy, gdx, gdf, gda) = (
                gpu.zeroed_f32("y", len),
                upload_as(gpu, "dx", &dx0, dtype),
                upload_as(gpu, "df", &df0, dtype),
                gpu.upload("da", &[1.0f32, 2.0, da0, 3.0]),
            );
            let scratch = gpu.zeroed_f32("scratch", rz::REZERO_SCRATCH_LEN);
            pollster::block_on(gpu.run(|pass| {
                rz::rezero_forward(
                    gpu,
                    pass,
                    &gy,
                    &gx,
                    &gf,
                    &galpha,
                    rz::RezeroShape {
                        n,
                        alpha_index: 2,
                        dtype,
                    },
                )?;
                let [adx, adf, ada] = accumulate;
                let (dx, df, da) = (
                    Grad::new(&gdx, adx),
                    Grad::new(&gdf, adf),
                    Grad::new(&gda, ada),
                );
                let shape = rz::RezeroShape {
                    n,
                    alpha_index: 2,
                    dtype,
                };
                rz::rezero_backward(gpu, pass, dx, df, da, &scratch, &gdy, &gf, &galpha, shape)
            }))
            .unwrap();
            let what = format!("rezero {dtype} n={n} accumulate={accumulate:?}");
            let (atol, rtol) = widen((1e-6, 1e-6), dtype);
            for (name, buffer, want) in [
                ("y", &gy, &want_y),
                ("dx", &gdx, &want_dx),
                ("df", &gdf, &want_df),
            ] {
                let got = read_as_f32(gpu, buffer, len, dtype);
                assert_close(&format!("{what} {name}"), &got, want, atol, rtol);
            }
            assert_close(
                &format!("{what} dalpha (only index 2 changes)"),
                &pollster::block_on(gpu.read_f32(&gda, 4)).unwrap(),
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
    let cases = SIZES.into_iter().chain([70_000]);
    for (n, dtype) in cases.flat_map(|n| dtypes(gpu).into_iter().map(move |d| (n, d))) {
        let len = n as usize;
        let (a, b, base) = (
            exact(&cpu::seeded(5, len, -3.0, 3.0), dtype),
            exact(&cpu::seeded(6, len, -3.0, 3.0), dtype),
            exact(&cpu::seeded(7, len, -1.0, 1.0), dtype),
        );
        let (ga, gb) = (
            upload_as(gpu, "a", &a, dtype),
            upload_as(gpu, "b", &b, dtype),
        );
        for accumulate in [false, true] {
            type Launch =
                Box<dyn Fn(&mut wgpu::ComputePass<'_>, &wgpu::Buffer) -> rezero::Result<()>>;
            let mut cases: Vec<(&str, Launch, Vec<f32>)> = Vec::new();
            let mut want = base.clone();
            cpu::elementwise::add(&mut want, &a, &b, accumulate);
            let (ga2, gb2) = (ga.clone(), gb.clone());
            cases.push((
                "add",
                Box::new(move |p, o| ew::add(gpu, p, o, &ga2, &gb2, n, accumulate, dtype)),
                want,
            ));
            let mut want = base.clone();
            cpu::elementwise::scale(&mut want, &a, -0.75, accumulate);
            let ga2 = ga.clone();
            cases.push((
                "scale",
                Box::new(move |p, o| ew::scale(gpu, p, o, &ga2, -0.75, n, accumulate, dtype)),
                want,
            ));
            let mut want = base.clone();
            cpu::elementwise::relu_backward(&mut want, &a, &b, accumulate);
            let (ga2, gb2) = (ga.clone(), gb.clone());
            cases.push((
                "relu_backward",
                Box::new(move |p, o| {
                    ew::relu_backward(gpu, p, o, &ga2, &gb2, n, accumulate, dtype)
                }),
                want,
            ));
            let mut want = base.clone();
            cpu::elementwise::gelu_backward(&mut want, &a, &b, accumulate);
            let (ga2, gb2) = (ga.clone(), gb.clone());
            cases.push((
                "gelu_backward",
                Box::new(move |p, o| {
                    ew::gelu_backward(gpu, p, o, &ga2, &gb2, n, accumulate, dtype)
                }),
                want,
            ));
            if !accumulate {
                let mut want = base.clone();
                cpu::elementwise::relu(&mut want, &a);
                let ga2 = ga.clone();
                cases.push((
                    "relu",
                    Box::new(move |p, o| ew::relu(gpu, p, o, &ga2, n, dtype)),
                    want,
                ));
                let mut want = base.clone();
                cpu::elementwise::gelu(&mut want, &a);
                let ga2 = ga.clone();
                cases.push((
                    "gelu",
                    Box::new(move |p, o| ew::gelu(gpu, p, o, &ga2, n, dtype)),
                    want,
                ));
                let ga2 = ga.clone();
                cases.push((
                    "copy",
                    Box::new(move |p, o| ew::copy(gpu, p, o, &ga2, n, dtype)),
                    a.clone(),
                ));
                if n % 4 == 0 {
                    let ga2 = ga.clone();
                    cases.push((
                        "copy_vec4",
                        Box::new(move |p, o| ew::copy_vec4(gpu, p, o, &ga2, n, dtype)),
                        a.clone(),
                    ));
                }
                cases.push((
                    "fill",
                    Box::new(move |p, o| ew::fill(gpu, p, o, 2.5, n, dtype)),
                    vec![2.5; len],
                ));
            }
            for (name, launch, want) in cases {
                let out = upload_as(gpu, "out", &base, dtype);
                pollster::block_on(gpu.run(|pass| launch(pass, &out))).unwrap();
                let what = format!("{name} {dtype} n={n} accumulate={accumulate}");
                // gelu goes through exp in f32: a few ulps more than the exact ops.
                let atol = if name.starts_with("gelu") { 1e-5 } else { 1e-6 };
                let (atol, rtol) = widen((atol, 2e-6), dtype);
                let got = read_as_f32(gpu, &out, len, dtype);
                assert_close(&what, &got, &want, atol, rtol);
            }
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
                let clip = max_norm.map(|max_norm| optim::GlobalNorm {
                    norm_sq: &gnorm,
                    clip: Some(max_norm),
                    loss_scale: None,
                });
                // SGD runs at half its base rate (a schedule's factor), the others at 1.
                let half = gpu.upload("values", &optim::step_values(0.5, None, step).unwrap());
                let one = gpu.upload("values", &optim::step_values(1.0, None, step).unwrap());
                let betas = Some((adam.beta1, adam.beta2));
                let adam_values = optim::step_values(1.0, betas, step).unwrap();
                let adam_values = gpu.upload("values", &adam_values);
                // SGD and Adagrad leave the gradient as it is; Adam, the last, consumes it.
                let (keep, consume) = (optim::Gradient::keep(&gg), optim::Gradient::consume(&gg));
                pollster::block_on(gpu.run(|pass| {
                    optim::sgd(gpu, pass, &gp_s, &gv, keep, &half, n, &sgd, clip)?;
                    optim::adagrad(gpu, pass, &gp_a, &gs, keep, &one, n, &ada, clip)?;
                    optim::adam(
                        gpu,
                        pass,
                        &gp_m,
                        &gm,
                        &gv2,
                        consume,
                        &adam_values,
                        n,
                        &adam,
                        clip,
                    )
                }))
                .unwrap();
                let left = pollster::block_on(gpu.read_f32(&gg, len)).unwrap();
                assert!(
                    left.iter().all(|&v| v == 0.0),
                    "the consumed gradient is zeroed"
                );
                let scale = cpu::optim::clip_scale(norm_sq, max_norm);
                let sgd_half = optim::Sgd {
                    lr: sgd.lr * 0.5,
                    ..sgd
                };
                cpu::optim::sgd(&mut p_s, &mut v, &g, &sgd_half, scale);
                cpu::optim::adagrad(&mut p_a, &mut s, &g, &ada, scale);
                cpu::optim::adam(&mut p_m, &mut m, &mut v2, &g, &adam, step, scale);
            }
            assert_close(
                &format!("sgd n={n} clip={max_norm:?}"),
                &pollster::block_on(gpu.read_f32(&gp_s, len)).unwrap(),
                &p_s,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("adagrad n={n} clip={max_norm:?}"),
                &pollster::block_on(gpu.read_f32(&gp_a, len)).unwrap(),
                &p_a,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("adam decoupled={decoupled} n={n} clip={max_norm:?}"),
                &pollster::block_on(gpu.read_f32(&gp_m, len)).unwrap(),
                &p_m,
                1e-6,
                1e-5,
            );
            assert_close(
                &format!("adam m n={n}"),
                &pollster::block_on(gpu.read_f32(&gm, len)).unwrap(),
                &m,
                1e-6,
                1e-5,
            );
        }
    }
}
