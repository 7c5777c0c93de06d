//! Fused causal attention against the materialised CPU reference on awkward shapes, its
//! backward against the reference and against finite differences, and the tile limit.

mod common;

use common::assert_close;
use common::reference64::{attention64, numeric_grad};
use rezero::cpu;
use rezero::kernels::Grad;
use rezero::kernels::attention::{
    AttentionKernel, AttentionShape, attention_backward, attention_backward_with,
    attention_forward, tile_storage_bytes,
};
use rezero::kernels::attention_tune::{Pass, candidates};

struct Run {
    o: Vec<f32>,
    lse: Vec<f32>,
    grads: (Vec<f32>, Vec<f32>, Vec<f32>),
}

/// The forward (as `Auto` picks) and the backward through `backward`, or as `Auto` picks.
fn run(
    gpu: &rezero::Gpu,
    [q, k, v, d_o]: [&[f32]; 4],
    s: AttentionShape,
    backward: Option<AttentionKernel>,
) -> Run {
    let n = (s.bh * s.t * s.d) as usize;
    let rows = (s.bh * s.t) as usize;
    let (gq, gk, gv, gdo) = (
        gpu.upload("q", q),
        gpu.upload("k", k),
        gpu.upload("v", v),
        gpu.upload("do", d_o),
    );
    let (go, glse, gdelta) = (
        gpu.zeroed_f32("o", n),
        gpu.zeroed_f32("lse", rows),
        gpu.zeroed_f32("delta", rows),
    );
    let (gdq, gdk, gdv) = (
        gpu.zeroed_f32("dq", n),
        gpu.zeroed_f32("dk", n),
        gpu.zeroed_f32("dv", n),
    );
    pollster::block_on(gpu.run(|pass| {
        attention_forward(gpu, pass, &go, &glse, &gq, &gk, &gv, &s)?;
        let grads = [&gdq, &gdk, &gdv].map(Grad::write);
        let inputs = [&gq, &gk, &gv, &go, &glse, &gdo];
        match backward {
            Some(kernel) => attention_backward_with(gpu, pass, kernel, grads, &gdelta, inputs, &s),
            None => attention_backward(gpu, pass, grads, &gdelta, inputs, &s),
        }
    }))
    .unwrap();
    Run {
        o: pollster::block_on(gpu.read_f32(&go, n)).unwrap(),
        lse: pollster::block_on(gpu.read_f32(&glse, rows)).unwrap(),
        grads: (
            pollster::block_on(gpu.read_f32(&gdq, n)).unwrap(),
            pollster::block_on(gpu.read_f32(&gdk, n)).unwrap(),
            pollster::block_on(gpu.read_f32(&gdv, n)).unwrap(),
        ),
    }
}

#[test]
fn forward_and_backward_match_the_reference() {
    let gpu = require_gpu!();
    for (bh, t, d) in [
        (1, 1, 32),
        (3, 3, 64),
        (1, 17, 128),
        (3, 33, 32),
        (1, 65, 64),
        (2, 70, 5),
        (1, 130, 16),
    ] {
        let s = AttentionShape::heads(bh, t, d);
        let n = (bh * t * d) as usize;
        let (q, k, v, d_o) = (
            cpu::seeded(1, n, -1.0, 1.0),
            cpu::seeded(2, n, -1.0, 1.0),
            cpu::seeded(3, n, -1.0, 1.0),
            cpu::seeded(4, n, -1.0, 1.0),
        );
        let got = run(gpu, [&q, &k, &v, &d_o], s, None);
        let (o, lse) =
            cpu::attention::attention_forward(&q, &k, &v, bh as usize, t as usize, d as usize);
        let (dq, dk, dv) = cpu::attention::attention_backward(
            &q,
            &k,
            &v,
            &d_o,
            bh as usize,
            t as usize,
            d as usize,
        );
        let what = format!("attention bh={bh} t={t} d={d}");
        let atol = 2e-5 * (t as f32).sqrt().max(1.0);
        assert_close(&format!("{what} o"), &got.o, &o, atol, 1e-4);
        assert_close(&format!("{what} lse"), &got.lse, &lse, 1e-5, 1e-5);
        assert_close(&format!("{what} dq"), &got.grads.0, &dq, atol, 1e-3);
        assert_close(&format!("{what} dk"), &got.grads.1, &dk, atol, 1e-3);
        assert_close(&format!("{what} dv"), &got.grads.2, &dv, atol, 1e-3);
    }
}

/// Every backward kernel by name (one row an invocation, tiled and one workgroup per head,
/// each tile size that fits) against central differences of the forward in f64.
#[test]
fn every_backward_kernel_matches_finite_differences() {
    let gpu = require_gpu!();
    // d = 5: the pipelines of every_backward_kernel_matches_the_reference's (3, 33, 5), already built
    let (bh, t, d) = (2usize, 5usize, 5usize);
    let s = AttentionShape::heads(bh as u32, t as u32, d as u32);
    let n = bh * t * d;
    let (q, k, v, d_o) = (
        cpu::seeded(5, n, -1.0, 1.0),
        cpu::seeded(6, n, -1.0, 1.0),
        cpu::seeded(7, n, -1.0, 1.0),
        cpu::seeded(8, n, -1.0, 1.0),
    );
    let kernels = candidates(gpu, Pass::Backward, d as u32);
    assert!(
        kernels
            .iter()
            .any(|k| matches!(k, AttentionKernel::Tiled(_)))
            && kernels
                .iter()
                .any(|k| matches!(k, AttentionKernel::PerHead(_))),
        "every backward kernel should fit d = {d}: {kernels:?}"
    );
    // L = Σ dO ⊙ attention(q, k, v), the forward in f64 from the materialised formula
    let loss = |q: &[f64], k: &[f64], v: &[f64]| -> f64 {
        let scale = 1.0 / (d as f64).sqrt();
        let mut total = 0.0;
        for h in 0..bh {
            let off = h * t * d;
            for i in 0..t {
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..d)
                            .map(|c| q[off + i * d + c] * k[off + j * d + c])
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for c in 0..d {
                    let o: f64 = (0..=i)
                        .map(|j| (s[j] - m).exp() / z * v[off + j * d + c])
                        .sum();
                    total += d_o[off + i * d + c] as f64 * o;
                }
            }
        }
        total
    };
    let to64 = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let (q64, k64, v64) = (to64(&q), to64(&k), to64(&v));
    let want = [
        numeric_grad(|x| loss(x, &k64, &v64), &q),
        numeric_grad(|x| loss(&q64, x, &v64), &k),
        numeric_grad(|x| loss(&q64, &k64, x), &v),
    ];
    for kernel in kernels {
        let got = run(gpu, [&q, &k, &v, &d_o], s, Some(kernel));
        let got = [&got.grads.0, &got.grads.1, &got.grads.2];
        for (name, (got, want)) in ["dq", "dk", "dv"].iter().zip(got.into_iter().zip(&want)) {
            assert_close(&format!("{kernel:?} {name}"), got, want, 2e-5, 1e-3);
        }
    }
}

/// Every forward kernel (one row an invocation, and the tiled one with each tile size that
/// fits) against the reference, on lengths that end mid-tile and odd head dimensions.
#[test]
fn every_forward_kernel_matches_the_reference() {
    let gpu = require_gpu!();
    check_every_forward_kernel(gpu, FORWARD_SHAPES);
}

/// (bh, t, d): lengths that end mid-tile, odd head dimensions, the largest.
const FORWARD_SHAPES: &[(u32, u32, u32)] = &[
    (1, 1, 32),
    (2, 17, 64),
    (1, 65, 128),
    (3, 33, 5),
    (2, 130, 16),
    (1, 64, 64),
];

/// The subgroup forward assumes subgroups cut from consecutive local invocations, which no
/// API promises: it runs only where the device's probe found that (on lavapipe, subgroups
/// of 8 are), and a device not probed runs the plain forward, which matches the reference.
#[test]
fn the_subgroup_forward_runs_only_where_the_probe_passed() {
    use rezero::gpu::KernelList;
    use rezero::kernels::attention::{AttentionKernel, attention_forward_with};
    use rezero::kernels::attention_tiled::Tiles;
    let gpu = require_gpu!();
    let subgroups = gpu.features().contains(wgpu::Features::SUBGROUP);
    if subgroups && gpu.info().name.contains("llvmpipe") {
        assert!(gpu.subgroups_consecutive(), "lavapipe's probe");
    }
    assert!(subgroups || !gpu.subgroups_consecutive());
    if !subgroups {
        return; // nothing to probe (and on GL, a second device would contend for its lock)
    }
    let fresh = unprobed_device_with_subgroups(gpu);
    let s = AttentionShape::heads(2, 17, 16);
    let [o, lse, q, k, v] = ["o", "lse", "q", "k", "v"].map(|b| fresh.zeroed_f32(b, 2 * 17 * 16));
    let shader = |g: &rezero::Gpu| {
        let mut list = KernelList::default();
        let kernel = AttentionKernel::Tiled(Tiles { br: 16, bc: 16 });
        attention_forward_with(g, &mut list, kernel, [&o, &lse, &q, &k, &v], &s).unwrap();
        list.kernels[0].shader.name()
    };
    assert!(!fresh.subgroups_consecutive());
    assert_eq!(shader(&fresh), "attention_tiled", "a device never probed");
    check_every_forward_kernel(&fresh, &[(3, 33, 5), (2, 130, 16)]);
    let consecutive = pollster::block_on(fresh.probe_subgroups()).unwrap();
    assert_eq!(
        consecutive,
        gpu.subgroups_consecutive(),
        "the same adapter probed twice"
    );
    let expected = match consecutive {
        true => "attention_tiled_subgroups",
        false => "attention_tiled",
    };
    assert_eq!(shader(&fresh), expected, "after the probe");
}

/// A second device on the test device's adapter, with its features (subgroups included),
/// given to `Gpu::from_device`, which runs no probe.
fn unprobed_device_with_subgroups(gpu: &rezero::Gpu) -> rezero::Gpu {
    let backends = wgpu::Backends::from(gpu.info().backend);
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .find(|a| a.get_info().name == gpu.info().name)
        .expect("the test device's adapter");
    let desc = wgpu::DeviceDescriptor {
        required_features: gpu.features(),
        required_limits: gpu.limits(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
    rezero::Gpu::from_device(device, queue, adapter.get_info())
}

fn check_every_forward_kernel(gpu: &rezero::Gpu, shapes: &[(u32, u32, u32)]) {
    use rezero::kernels::attention::attention_forward_with;
    use rezero::kernels::attention_tune::{Pass, candidates};
    for &(bh, t, d) in shapes {
        let s = AttentionShape::heads(bh, t, d);
        let n = (bh * t * d) as usize;
        let (q, k, v) = (
            cpu::seeded(11, n, -2.0, 2.0),
            cpu::seeded(12, n, -2.0, 2.0),
            cpu::seeded(13, n, -1.0, 1.0),
        );
        let (o, lse) =
            cpu::attention::attention_forward(&q, &k, &v, bh as usize, t as usize, d as usize);
        let mut tried = 0;
        for kernel in candidates(gpu, Pass::Forward, d) {
            let (gq, gk, gv) = (
                gpu.upload("q", &q),
                gpu.upload("k", &k),
                gpu.upload("v", &v),
            );
            let (go, glse) = (
                gpu.upload("o", &vec![f32::NAN; n]),
                gpu.zeroed_f32("lse", (bh * t) as usize),
            );
            let buffers = [&go, &glse, &gq, &gk, &gv];
            pollster::block_on(
                gpu.run(|pass| attention_forward_with(gpu, pass, kernel, buffers, &s)),
            )
            .unwrap();
            let what = format!("{kernel:?} bh={bh} t={t} d={d}");
            let atol = 2e-5 * (t as f32).sqrt().max(1.0);
            assert_close(
                &format!("{what} o"),
                &pollster::block_on(gpu.read_f32(&go, n)).unwrap(),
                &o,
                atol,
                1e-4,
            );
            let got_lse = pollster::block_on(gpu.read_f32(&glse, (bh * t) as usize)).unwrap();
            assert_close(&format!("{what} lse"), &got_lse, &lse, 1e-5, 1e-5);
            tried += 1;
        }
        assert!(tried >= 2, "no tiled kernel fits head dimension {d}");
    }
}

/// Every backward kernel (one row an invocation, and the tiled one with each tile size that
/// fits) against the reference, on lengths that end mid-tile and the head dimensions of
/// real models; d = 128 may have no tile that fits a 32 KiB device.
#[test]
fn every_backward_kernel_matches_the_reference() {
    let gpu = require_gpu!();
    for (bh, t, d) in [
        (1, 1, 32),
        (2, 17, 64),
        (1, 65, 32),
        (3, 33, 5),
        (1, 40, 128),
    ] {
        let s = AttentionShape::heads(bh, t, d);
        let (n, rows) = ((bh * t * d) as usize, (bh * t) as usize);
        let inputs: Vec<Vec<f32>> = (21..25)
            .map(|seed| cpu::seeded(seed, n, -1.5, 1.5))
            .collect();
        let (q, k, v, d_o) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
        let (o, lse) =
            cpu::attention::attention_forward(q, k, v, bh as usize, t as usize, d as usize);
        let want =
            cpu::attention::attention_backward(q, k, v, d_o, bh as usize, t as usize, d as usize);
        let uploaded = [q, k, v, &o, &lse, d_o].map(|x| gpu.upload("in", x));
        let tiled = candidates(gpu, Pass::Backward, d).len() - 1;
        assert!(
            tiled > 0 || d > 64,
            "no tiled backward fits head dimension {d}"
        );
        for kernel in candidates(gpu, Pass::Backward, d) {
            let grads = [0, 1, 2].map(|_| gpu.upload("grad", &vec![f32::NAN; n]));
            let delta = gpu.zeroed_f32("delta", rows);
            let outputs = [&grads[0], &grads[1], &grads[2]].map(Grad::write);
            let [a, b, c, e, f, g] = &uploaded;
            let inputs = [a, b, c, e, f, g];
            pollster::block_on(gpu.run(|pass| {
                attention_backward_with(gpu, pass, kernel, outputs, &delta, inputs, &s)
            }))
            .unwrap();
            let atol = 3e-5 * (t as f32).sqrt().max(1.0);
            for (i, name) in ["dq", "dk", "dv"].into_iter().enumerate() {
                let got = pollster::block_on(gpu.read_f32(&grads[i], n)).unwrap();
                let what = format!("{kernel:?} bh={bh} t={t} d={d} {name}");
                let want = [&want.0, &want.1, &want.2][i];
                assert_close(&what, &got, want, atol, 1e-3);
            }
            assert!(kernel == AttentionKernel::Rows || tiled > 0);
        }
    }
}

#[test]
fn the_tile_fits_the_device_and_bad_shapes_are_rejected() {
    let gpu = require_gpu!();
    let limit = gpu.limits().max_compute_workgroup_storage_size as u64;
    // The smallest tile of the largest head dimension fits every device with 16 KiB.
    assert!(tile_storage_bytes(8, 128) <= 16 * 1024 && tile_storage_bytes(8, 128) <= limit);
    let buf = gpu.zeroed_f32("buf", 4096);
    let too_wide = AttentionShape::heads(1, 4, 256);
    let err = pollster::block_on(
        gpu.run(|pass| attention_forward(gpu, pass, &buf, &buf, &buf, &buf, &buf, &too_wide)),
    )
    .unwrap_err();
    assert!(matches!(err, rezero::Error::Unsupported { .. }), "{err}");
    let empty = AttentionShape::heads(1, 0, 32);
    let err = pollster::block_on(
        gpu.run(|pass| attention_forward(gpu, pass, &buf, &buf, &buf, &buf, &buf, &empty)),
    )
    .unwrap_err();
    assert!(matches!(err, rezero::Error::Empty { .. }), "{err}");
}

#[test]
fn heads_move_between_row_and_head_layouts() {
    use rezero::kernels::heads::{HeadLayout, heads_to_rows, rows_to_heads};
    let gpu = require_gpu!();
    for (batch, t, heads, d) in [(1u32, 1u32, 1u32, 1u32), (2, 3, 4, 5), (3, 17, 2, 8)] {
        let dm = heads * d;
        for (offset, stride) in [(0, dm), (dm, 3 * dm), (2 * dm, 3 * dm)] {
            let l = HeadLayout {
                batch,
                t,
                heads,
                d,
                stride,
                offset,
            };
            let rows_len = (batch * t * stride) as usize;
            let heads_len = (batch * heads * t * d) as usize;
            let x = cpu::seeded(40, rows_len, -1.0, 1.0);
            let h = cpu::seeded(41, heads_len, -1.0, 1.0);
            let (gx, gh, gout_h) = (
                gpu.upload("x", &x),
                gpu.upload("h", &h),
                gpu.zeroed_f32("out_h", heads_len),
            );
            let gout_r = gpu.upload("out_r", &x);
            pollster::block_on(gpu.run(|pass| {
                rows_to_heads(gpu, pass, &gout_h, &gx, &l)?;
                heads_to_rows(gpu, pass, &gout_r, &gh, &l, true)
            }))
            .unwrap();
            let what = format!("{l:?}");
            assert_eq!(
                pollster::block_on(gpu.read_f32(&gout_h, heads_len)).unwrap(),
                cpu::heads::rows_to_heads(&x, &l),
                "{what}"
            );
            let mut want = x.clone();
            cpu::heads::heads_to_rows(&mut want, &h, &l, true);
            assert_eq!(
                pollster::block_on(gpu.read_f32(&gout_r, rows_len)).unwrap(),
                want,
                "{what}"
            );
        }
    }
}

#[test]
fn tape_causal_attention_matches_finite_differences() {
    use rezero::tape::{Param, Tape};
    let gpu = require_gpu!();
    let (batch, t, heads, d) = (2usize, 4usize, 2usize, 3usize);
    let (rows, dm) = (batch * t, heads * d);
    let x0 = cpu::seeded(50, rows * 3 * dm, -1.0, 1.0);
    let w = cpu::seeded(51, rows * dm, -1.0, 1.0);
    let p = Param::new(gpu, "qkv", &[rows, 3 * dm], &x0, true).unwrap();
    let mut tape = Tape::new(gpu);
    let qkv = tape.param(&p);
    let out = tape.causal_attention(&qkv, batch, heads).unwrap();
    assert_eq!(out.shape(), &[rows, dm]);
    let got_out = pollster::block_on(tape.read(&out)).unwrap();
    tape.backward_with(&out, &w).unwrap();
    tape.flush();
    // The forward in f64: for each (b, h) the causal softmax of q·kᵀ/√d times v.
    let forward = |x: &[f64]| attention64(x, batch, t, heads, dm);
    let x64: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
    let want_out: Vec<f32> = forward(&x64).iter().map(|&v| v as f32).collect();
    assert_close("attention output", &got_out, &want_out, 1e-5, 1e-4);
    let numeric = numeric_grad(
        |x| forward(x).iter().zip(&w).map(|(y, &w)| y * w as f64).sum(),
        &x0,
    );
    assert_close(
        "d/dqkv",
        &pollster::block_on(gpu.read_f32(&p.grad, p.len())).unwrap(),
        &numeric,
        2e-5,
        1e-3,
    );
}
