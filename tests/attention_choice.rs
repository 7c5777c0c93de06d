//! Which attention kernel runs: the tuner's choice recorded under a name that parses back,
//! tile sizes a caller names checked before anything is recorded, and the one-pass
//! backward offered only where the device has its nine storage buffers.

mod common;

use common::assert_close;
use rezero::cpu;
use rezero::kernels::Grad;
use rezero::kernels::attention::{AttentionShape, attention_forward};

/// The forward kernel runs the adapter's default until a tune measures the shape class,
/// which keeps the winner in the tuning table under a name that parses back to the kernel.
#[test]
fn the_forward_kernel_choice_is_measured_when_asked_and_recorded() {
    use rezero::kernels::attention::AttentionKernel;
    use rezero::kernels::attention_tiled::Tiles;
    use rezero::kernels::attention_tune::{Pass, candidates, default_kernel, tuning_key};
    use rezero::kernels::autotune;
    let Some(_) = common::gpu() else { return };
    // A device of its own: its untuned classes are this test's alone.
    let gpu = &pollster::block_on(rezero::Gpu::new(&Default::default())).unwrap();
    for pass in [Pass::Forward, Pass::Backward] {
        for kernel in candidates(gpu, pass, 64) {
            assert_eq!(AttentionKernel::parse(&kernel.name()), Some(kernel));
        }
        let smallest = AttentionKernel::Tiled(Tiles { br: 16, bc: 16 });
        assert!(candidates(gpu, pass, 64).contains(&smallest));
        assert!(candidates(gpu, pass, 8).contains(&default_kernel(gpu, pass, 8)));
    }
    for bad in [
        "",
        "tiled",
        "tiled:32",
        "tiled:32xq",
        "row",
        "per-head",
        "per-head:16",
    ] {
        assert_eq!(AttentionKernel::parse(bad), None, "{bad}");
    }
    let s = AttentionShape::heads(2, 24, 8);
    let key = tuning_key(Pass::Forward, &s);
    let n = (s.bh * s.t * s.d) as usize;
    let buf = gpu.upload("qkv", &cpu::seeded(3, n, -1.0, 1.0));
    let (o, lse) = (gpu.zeroed_f32("o", n), gpu.zeroed_f32("lse", 48));
    pollster::block_on(
        gpu.run(|pass| attention_forward(gpu, pass, &o, &lse, &buf, &buf, &buf, &s)),
    )
    .unwrap();
    assert_eq!(gpu.tuned(&key), None, "the launcher measured");
    let requests = autotune::take_untuned(gpu);
    assert_eq!(requests.len(), 1);
    let tuned = pollster::block_on(autotune::tune(gpu, &requests)).unwrap();
    let chosen = gpu.tuned(&key).expect("the choice is recorded");
    assert_eq!(chosen, tuned[0].winner);
    assert!(AttentionKernel::parse(&chosen).is_some(), "{chosen}");
    assert_eq!(key, "attention/fwd/g3/d8/t32");
    assert_eq!(tuning_key(Pass::Backward, &s), "attention/bwd/g3/d8/t32");
}

/// Tile sizes a caller names are checked before anything is recorded.
#[test]
fn bad_tile_sizes_are_refused() {
    use rezero::kernels::attention::{AttentionKernel, attention_forward_with};
    use rezero::kernels::attention_tiled::Tiles;
    let gpu = require_gpu!();
    let bad = [(8, 16), (32, 6), (32, 0), (0, 32), (u32::MAX, 32)];
    for (br, bc) in bad {
        let err = Tiles { br, bc }.check(gpu, 64).unwrap_err();
        assert!(
            matches!(err, rezero::Error::Invalid { .. }),
            "{br}x{bc}: {err}"
        );
    }
    // The backward takes 16 or 32 key rows only.
    assert!(Tiles { br: 16, bc: 8 }.check(gpu, 64).is_ok());
    assert!(Tiles { br: 16, bc: 8 }.check_backward(gpu, 64).is_err());
    let s = AttentionShape::heads(1, 4, 8);
    let buf = gpu.zeroed_f32("buf", 64);
    let kernel = AttentionKernel::Tiled(Tiles { br: 8, bc: 8 });
    let err =
        pollster::block_on(gpu.run(|pass| {
            attention_forward_with(gpu, pass, kernel, [&buf, &buf, &buf, &buf, &buf], &s)
        }))
        .unwrap_err();
    assert!(matches!(err, rezero::Error::Invalid { .. }), "{err}");
}

/// A device opened with WebGPU's default limits (8 storage buffers a stage, as an
/// embedding program's may be) is never offered the one-pass backward, which binds 9, and
/// refuses it by name before recording anything; the tiled backward still runs there.
#[test]
fn the_one_pass_backward_needs_nine_storage_buffers() {
    use rezero::kernels::attention::{AttentionKernel, attention_backward_with};
    use rezero::kernels::attention_tiled::Tiles;
    use rezero::kernels::attention_tune::{Pass, candidates};
    let Some(gpu) = common::gpu_with_default_limits() else {
        return;
    };
    assert_eq!(gpu.limits().max_storage_buffers_per_shader_stage, 8);
    let d = 32;
    let kernels = candidates(&gpu, Pass::Backward, d);
    let tiles = Tiles { br: 16, bc: 16 };
    assert!(
        kernels.contains(&AttentionKernel::Tiled(tiles)),
        "{kernels:?}"
    );
    assert!(
        !kernels
            .iter()
            .any(|k| matches!(k, AttentionKernel::PerHead(_))),
        "{kernels:?}"
    );
    let (bh, t) = (2u32, 19u32);
    let s = AttentionShape::heads(bh, t, d);
    let n = (bh * t * d) as usize;
    let inputs: Vec<Vec<f32>> = (31..35)
        .map(|seed| cpu::seeded(seed, n, -1.0, 1.0))
        .collect();
    let (q, k, v, d_o) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
    let (bhu, tu, du) = (bh as usize, t as usize, d as usize);
    let (o, lse) = cpu::attention::attention_forward(q, k, v, bhu, tu, du);
    let want = cpu::attention::attention_backward(q, k, v, d_o, bhu, tu, du);
    let [q, k, v, o, lse, d_o] = [q, k, v, &o, &lse, d_o].map(|x| gpu.upload("in", x));
    let grads = [0, 1, 2].map(|_| gpu.upload("grad", &vec![f32::NAN; n]));
    let delta = gpu.zeroed_f32("delta", (bh * t) as usize);
    let inputs = [&q, &k, &v, &o, &lse, &d_o];
    for kernel in [
        AttentionKernel::PerHead(tiles),
        AttentionKernel::Tiled(tiles),
    ] {
        let outputs = [&grads[0], &grads[1], &grads[2]].map(Grad::write);
        let result =
            pollster::block_on(gpu.run(|pass| {
                attention_backward_with(&gpu, pass, kernel, outputs, &delta, inputs, &s)
            }));
        if let AttentionKernel::PerHead(_) = kernel {
            let err = result.unwrap_err();
            assert!(matches!(err, rezero::Error::Limits { .. }), "{err}");
            assert!(err.to_string().contains("storage buffers"), "{err}");
            let untouched = pollster::block_on(gpu.read_f32(&grads[0], n)).unwrap();
            assert!(
                untouched.iter().all(|g| g.is_nan()),
                "dq written by a refused kernel"
            );
            continue;
        }
        result.unwrap();
        for (i, name) in ["dq", "dk", "dv"].into_iter().enumerate() {
            let got = pollster::block_on(gpu.read_f32(&grads[i], n)).unwrap();
            let want = [&want.0, &want.1, &want.2][i];
            assert_close(&format!("{kernel:?} {name}"), &got, want, 3e-5 * 5.0, 1e-3);
        }
    }
}

/// Where the device has subgroups the tiled forward takes its softmax with subgroup
/// shuffles (`every_forward_kernel_matches_the_reference` checks that one); a device
/// opened without the feature, as an embedding program's may be, gets the plain forward,
/// which must match the reference too.
#[test]
fn the_forward_without_subgroups_matches_the_reference() {
    use rezero::kernels::attention::{AttentionKernel, attention_forward_with};
    use rezero::kernels::attention_tiled::Tiles;
    let gpu = require_gpu!();
    let Some(plain) = common::gpu_with_default_limits() else {
        return;
    };
    let tiles = [Tiles { br: 16, bc: 16 }, Tiles { br: 16, bc: 32 }];
    if gpu.device.features().contains(wgpu::Features::SUBGROUP) {
        assert!(tiles.iter().all(|t| t.subgroup_softmax(gpu)));
    }
    for (bh, t, d) in [(2, 17, 64), (3, 33, 5), (1, 65, 32)] {
        let s = AttentionShape::heads(bh, t, d);
        let n = (bh * t * d) as usize;
        let inputs: Vec<Vec<f32>> = (41..44)
            .map(|seed| cpu::seeded(seed, n, -2.0, 2.0))
            .collect();
        let (bhu, tu, du) = (bh as usize, t as usize, d as usize);
        let (o, lse) =
            cpu::attention::attention_forward(&inputs[0], &inputs[1], &inputs[2], bhu, tu, du);
        // WebGPU's default 16 KiB of workgroup memory: 16x32 does not fit d = 64.
        let fitting: Vec<_> = tiles
            .iter()
            .filter(|t| t.check(&plain, d).is_ok())
            .collect();
        assert!(!fitting.is_empty(), "no tile fits d = {d}");
        for &tiles in fitting {
            assert!(!tiles.subgroup_softmax(&plain));
            let [q, k, v] = [0, 1, 2].map(|i| plain.upload("in", &inputs[i]));
            let go = plain.upload("o", &vec![f32::NAN; n]);
            let glse = plain.zeroed_f32("lse", bhu * tu);
            let kernel = AttentionKernel::Tiled(tiles);

            pollster::block_on(plain.run(|pass| {
                attention_forward_with(&plain, pass, kernel, [&go, &glse, &q, &k, &v], &s)
            }))
            .unwrap();
            let what = format!("plain {tiles:?} bh={bh} t={t} d={d}");
            let atol = 2e-5 * (t as f32).sqrt();
            assert_close(
                &format!("{what} o"),
                &pollster::block_on(plain.read_f32(&go, n)).unwrap(),
                &o,
                atol,
                1e-4,
            );
            let got_lse = pollster::block_on(plain.read_f32(&glse, bhu * tu)).unwrap();
            assert_close(&format!("{what} lse"), &got_lse, &lse, 1e-5, 1e-5);
        }
    }
}
