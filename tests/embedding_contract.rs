//! What an embedding program can rely on, family by family: every public launcher family,
//! recorded on shapes the tuning table has never seen into the program's own compute pass
//! on its own device, submits nothing and keeps none of its buffers; every family refuses
//! an undersized buffer with an `Error` before recording; a `Prepared` launch records the
//! same work as the launcher called on a pass, again and again, creating nothing.

mod common;

use rezero::gpu::{Prepared, Recorder};
use rezero::kernels::Grad;
use rezero::kernels::attention::{AttentionShape, attention_forward};
use rezero::kernels::autotune;
use rezero::kernels::batchnorm::{BatchNormConfig, BatchNormShape, batchnorm_train_forward};
use rezero::kernels::bias::{Activation, BiasShape, bias_backward};
use rezero::kernels::conv2d::{Conv2d, ConvVariant, conv2d_forward};
use rezero::kernels::cross_entropy::cross_entropy;
use rezero::kernels::dropout::{Mask, dropout_forward};
use rezero::kernels::elementwise::add;
use rezero::kernels::embedding::embedding_forward;
use rezero::kernels::heads::{HeadLayout, rows_to_heads};
use rezero::kernels::layernorm::{LayerNormShape, layernorm_forward};
use rezero::kernels::matmul::{Matmul, matmul, matmul_activation};
use rezero::kernels::optim::{Adam, Gradient, adam};
use rezero::kernels::pool::global_avg_pool_forward;
use rezero::kernels::reduce::sum_rows;
use rezero::kernels::rezero::{RezeroShape, rezero_backward, rezero_forward};
use rezero::kernels::shortcut::{ShortcutShape, shortcut_forward};
use rezero::kernels::softmax::softmax_forward;
use rezero::{Error, Gpu, cpu};

/// Zero-filled buffers for every family's launch: outputs (written) apart from inputs (read),
/// since one dispatch may not bind a buffer both ways. Zeros are valid data for every
/// kernel here (ids and targets 0, sums of nothing).
struct Buffers {
    out: [wgpu::Buffer; 6],
    input: [wgpu::Buffer; 3],
}

impl Buffers {
    fn new(gpu: &Gpu) -> Buffers {
        let buffer = |label: &str| gpu.zeroed_f32(label, 1 << 14);
        Buffers {
            out: ["o0", "o1", "o2", "o3", "o4", "o5"].map(buffer),
            input: ["i0", "i1", "i2"].map(buffer),
        }
    }
}

/// Records one launch of every public kernel family into `pass`, on shapes of odd sizes
/// that no committed tuning table holds; `x` is the first input of each. Returns each
/// family's name and result.
fn every_family(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    b: &Buffers,
    x: &wgpu::Buffer,
) -> Vec<(&'static str, rezero::Result<()>)> {
    let [o0, o1, o2, o3, o4, o5] = &b.out;
    let [i0, i1, i2] = &b.input;
    let product = Matmul::new(37, 29, 23);
    let conv = Conv2d::new(2, 3, 9, 9, 5, 3).pad(1);
    let bn = BatchNormShape {
        batch: 2,
        channels: 3,
        pixels: 10,
    };
    let heads = HeadLayout {
        batch: 2,
        t: 5,
        heads: 3,
        d: 4,
        stride: 12,
        offset: 0,
    };
    let adam_step = Adam {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
    };
    let shortcut = ShortcutShape {
        batch: 2,
        c_in: 3,
        c_out: 6,
        h: 8,
        w: 8,
        stride: 2,
    };
    let ln = LayerNormShape { rows: 7, cols: 33 };
    let rz = RezeroShape {
        n: 300,
        alpha_index: 0,
    };
    vec![
        ("elementwise", add(gpu, pass, o0, x, i0, 300, false)),
        ("rezero", rezero_forward(gpu, pass, o0, x, i0, i1, 0, 300)),
        (
            "rezero backward",
            rezero_backward(
                gpu,
                pass,
                Grad::write(o0),
                Grad::write(o1),
                Grad::add(o2),
                o3,
                x,
                i0,
                i1,
                rz,
            ),
        ),
        ("reduce", sum_rows(gpu, pass, o0, x, 7, 33, false, false)),
        ("softmax", softmax_forward(gpu, pass, o0, x, 7, 33)),
        (
            "layernorm",
            layernorm_forward(gpu, pass, o0, o1, o2, x, i0, i1, ln, 1e-5),
        ),
        (
            "embedding",
            embedding_forward(gpu, pass, o0, i0, x, 9, 12, 256, false),
        ),
        (
            "cross_entropy",
            cross_entropy(gpu, pass, o0, o1, o2, x, i0, 5, 11),
        ),
        (
            "optim",
            adam(
                gpu,
                pass,
                o0,
                o1,
                o2,
                Gradient::keep(x),
                i0,
                300,
                &adam_step,
                None,
            ),
        ),
        ("heads", rows_to_heads(gpu, pass, o0, x, &heads)),
        (
            "attention",
            attention_forward(
                gpu,
                pass,
                o0,
                o1,
                x,
                i0,
                i1,
                &AttentionShape::heads(2, 17, 8),
            ),
        ),
        (
            "matmul",
            matmul(gpu, pass, o0, x, i0, None, &product).map(drop),
        ),
        (
            "matmul_activation",
            matmul_activation(gpu, pass, o0, o1, x, i0, None, Activation::Gelu, &product).map(drop),
        ),
        (
            "bias",
            bias_backward(
                gpu,
                pass,
                Grad::write(o0),
                None,
                x,
                BiasShape { rows: 9, cols: 13 },
            ),
        ),
        (
            "conv2d",
            conv2d_forward(gpu, pass, o0, x, i0, None, &conv, ConvVariant::Auto, false),
        ),
        (
            "batchnorm",
            batchnorm_train_forward(
                gpu,
                pass,
                o0,
                o1,
                o2,
                o3,
                o4,
                o5,
                x,
                i0,
                i1,
                &bn,
                &BatchNormConfig::default(),
            ),
        ),
        ("pool", global_avg_pool_forward(gpu, pass, o0, x, 6, 10)),
        ("shortcut", shortcut_forward(gpu, pass, o0, x, &shortcut)),
        (
            "dropout",
            dropout_forward(gpu, pass, o0, x, i2, 300, Mask { p: 0.1, site: 0 }),
        ),
    ]
}

/// The queue's count of submissions so far, read by submitting nothing (wgpu counts every
/// submission; `SubmissionIndex` keeps its number private, so it is read from its Debug
/// form, and a change of that form fails here rather than passing unseen).
fn submissions(queue: &wgpu::Queue) -> u64 {
    let text = format!("{:?}", queue.submit([]));
    let number = text
        .strip_prefix("SubmissionIndex { index: ")
        .and_then(|t| t.strip_suffix(" }"))
        .unwrap_or_else(|| panic!("unexpected form of a submission index: {text}"));
    number.parse().unwrap()
}

/// The host program's own device, made with wgpu's API alone, with its adapter's limits.
fn host_device() -> Option<(wgpu::Device, wgpu::Queue, wgpu::AdapterInfo)> {
    common::gpu()?; // the test's hold on this binary's GPU work (see common::gpu)
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).ok()?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    Some((device, queue, adapter.get_info()))
}

#[test]
fn every_family_records_into_the_hosts_pass_without_submitting_or_keeping_buffers() {
    let Some((device, queue, info)) = host_device() else {
        return common::skip("no adapter for a host device");
    };
    let gpu = Gpu::from_device(device.clone(), queue.clone(), info);
    let buffers = Buffers::new(&gpu);
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let before = submissions(&queue);
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for (family, result) in every_family(&gpu, &mut pass, &buffers, &buffers.input[2]) {
            result.unwrap_or_else(|e| panic!("{family}: {e}"));
        }
    }
    assert_eq!(
        submissions(&queue),
        before + 1,
        "the launchers submitted work of their own (only this test's empty submit counts)"
    );
    let (entries, held) = gpu.bind_groups_cached();
    assert_eq!((entries, held), (0, 0), "the host's buffers are kept alive");
    queue.submit([encoder.finish()]);
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    if let Some(error) = pollster::block_on(scope.pop()) {
        panic!("the recorded work is invalid: {error}");
    }
    // Nothing was measured: the classes the launchers met ran their defaults, noted.
    let untuned: Vec<String> = autotune::take_untuned(&gpu)
        .iter()
        .map(|r| r.key())
        .collect();
    for family in ["matmul/", "conv2d/fwd/", "attention/fwd/"] {
        assert!(
            untuned.iter().any(|k| k.starts_with(family)),
            "{family} is not among the untuned classes {untuned:?}"
        );
    }
}

#[test]
fn every_family_refuses_an_undersized_buffer() {
    let gpu = require_gpu!();
    let buffers = Buffers::new(gpu);
    let tiny = gpu.zeroed_f32("tiny", 1);
    let mut prepared = Prepared::new();
    for (family, result) in every_family(gpu, &mut prepared, &buffers, &tiny) {
        match result {
            Err(Error::Shape { .. } | Error::Limits { .. }) => {}
            other => panic!("{family}: a 4-byte input gave {other:?}, not a shape error"),
        }
    }
    assert!(prepared.is_empty(), "{:?} recorded", prepared.entries());
}

/// Runs `record` in its own encoder on `gpu`'s queue and reads `buffer` back.
fn submit_and_read(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    len: usize,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>),
) -> Vec<f32> {
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        record(&mut pass);
    }
    gpu.queue.submit([encoder.finish()]);
    pollster::block_on(gpu.read_f32(buffer, len)).unwrap()
}

#[test]
fn a_prepared_launch_records_the_same_work_again_and_again_creating_nothing() {
    let gpu = require_gpu!();
    let (m, n, k) = (6u32, 10u32, 7u32);
    let a = cpu::seeded(1, (m * k) as usize, -1.0, 1.0);
    let w = cpu::seeded(2, (k * n) as usize, -1.0, 1.0);
    let x = cpu::seeded(3, (m * n) as usize, -1.0, 1.0);
    let (ga, gw, gx, galpha) = (
        gpu.upload("a", &a),
        gpu.upload("w", &w),
        gpu.upload("x", &x),
        gpu.upload("alpha", &[0.25f32]),
    );
    let (f, y) = (
        gpu.zeroed_f32("f", (m * n) as usize),
        gpu.zeroed_f32("y", (m * n) as usize),
    );
    let desc = Matmul::new(m, n, k);
    let mut layer = Prepared::new();
    matmul(gpu, &mut layer, &f, &ga, &gw, None, &desc).unwrap();
    rezero_forward(gpu, &mut layer, &y, &gx, &f, &galpha, 0, m * n).unwrap();
    assert_eq!(layer.len(), 2);
    let mut want = vec![0.0; (m * n) as usize];
    cpu::matmul::matmul(&mut want, &a, &w, None, &desc);
    let f_want = want.clone();
    cpu::rezero::rezero_forward(&mut want, &x, &f_want, 0.25);

    let created = gpu.bind_groups_created();
    for round in 0..3 {
        let got = submit_and_read(gpu, &y, (m * n) as usize, |pass| layer.record(pass));
        common::assert_close(
            &format!("prepared round {round}"),
            &got,
            &want,
            common::atol_for(k as usize),
            1e-5,
        );
    }
    assert_eq!(
        gpu.bind_groups_created(),
        created,
        "record made bind groups"
    );

    // The launchers called on a pass record the same work: identical results.
    let direct = submit_and_read(gpu, &y, (m * n) as usize, |pass| {
        matmul(gpu, pass, &f, &ga, &gw, None, &desc).unwrap();
        rezero_forward(gpu, pass, &y, &gx, &f, &galpha, 0, m * n).unwrap();
    });
    let prepared = submit_and_read(gpu, &y, (m * n) as usize, |pass| layer.record(pass));
    assert_eq!(direct, prepared);
}
