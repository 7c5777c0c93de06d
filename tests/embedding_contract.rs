//! What an embedding program can rely on, family by family: every public launcher, forward
//! and backward, recorded on shapes the tuning table has never seen into the program's own
//! compute pass on its own device, submits nothing and keeps none of its buffers; every
//! launcher refuses each buffer it binds when that buffer is undersized, with an `Error`
//! and before recording anything; a `Prepared` launch records the same work as the
//! launcher called on a pass, again and again.

mod common;

use rezero::gpu::{Prepared, Recorder};
use rezero::kernels::attention::{AttentionShape, attention_backward, attention_forward};
use rezero::kernels::autotune;
use rezero::kernels::batchnorm::{
    BatchNormConfig, BatchNormShape, batchnorm_backward, batchnorm_train_forward,
};
use rezero::kernels::bias::{Activation, BiasShape, bias_activation_backward, bias_backward};
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use rezero::kernels::cross_entropy::cross_entropy;
use rezero::kernels::dropout::{Mask, dropout_backward, dropout_forward};
use rezero::kernels::elementwise as ew;
use rezero::kernels::embedding::{EmbeddingShape, embedding_backward, embedding_forward};
use rezero::kernels::heads::{HeadLayout, heads_to_rows, rows_to_heads};
use rezero::kernels::layernorm::{LayerNormShape, layernorm_backward, layernorm_forward};
use rezero::kernels::matmul::{Matmul, matmul, matmul_activation};
use rezero::kernels::optim::{Adam, Gradient, adam};
use rezero::kernels::rezero::{RezeroShape, rezero_backward, rezero_forward};
use rezero::kernels::shortcut::{ShortcutShape, shortcut_backward, shortcut_forward};
use rezero::kernels::{Grad, NormSaved, pool, reduce, softmax};
use rezero::{Error, Gpu, cpu};

/// Buffers for every launch: outputs (written) apart from inputs (read), since one dispatch
/// may not bind a buffer both ways; zero-filled, which is valid data for every kernel here
/// (ids and targets 0, offsets 0, sums of nothing). One slot may be made undersized.
struct Buffers {
    out: [wgpu::Buffer; 8],
    input: [wgpu::Buffer; 6],
}

impl Buffers {
    /// Every buffer 64 KiB, except slot `tiny` (outputs first, then inputs): 4 bytes.
    fn new(gpu: &Gpu, tiny: Option<usize>) -> Buffers {
        let make = |slot: usize| {
            let len = if tiny == Some(slot) { 1 } else { 1 << 14 };
            gpu.zeroed_f32(&format!("slot {slot}"), len)
        };
        Buffers {
            out: std::array::from_fn(make),
            input: std::array::from_fn(|i| make(8 + i)),
        }
    }

    fn slots(&self) -> impl Iterator<Item = &wgpu::Buffer> {
        self.out.iter().chain(&self.input)
    }
}

/// The (launch, slot) pairs that need one element there, which the smallest buffer wgpu
/// binds (4 bytes) holds: a sum's output, the mean loss, the dropout step's key.
const ONE_ELEMENT: [(&str, usize); 4] = [
    ("sum_all", 0),
    ("cross_entropy", 0),
    ("dropout_forward", 9),
    ("dropout_backward", 9),
];

/// One launch of a launcher family, on shapes of odd sizes that no committed tuning table
/// holds.
type Launch = fn(&Gpu, &mut dyn Recorder, &Buffers) -> rezero::Result<()>;

const LN: LayerNormShape = LayerNormShape { rows: 7, cols: 33 };
const HEADS: HeadLayout = HeadLayout {
    batch: 2,
    t: 5,
    heads: 3,
    d: 4,
    stride: 12,
    offset: 0,
};
const BN: BatchNormShape = BatchNormShape {
    batch: 2,
    channels: 3,
    pixels: 10,
};
const SHORTCUT: ShortcutShape = ShortcutShape {
    batch: 2,
    c_in: 3,
    c_out: 6,
    h: 8,
    w: 8,
    stride: 2,
};
const ADAM: Adam = Adam {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.0,
    decoupled: false,
};
const MASK: Mask = Mask { p: 0.1, site: 0 };
const EMBEDDING: EmbeddingShape = EmbeddingShape {
    tokens: 9,
    dim: 12,
    vocab: 256,
};
const BIAS: BiasShape = BiasShape { rows: 9, cols: 13 };

fn product() -> Matmul {
    Matmul::new(37, 29, 23)
}

fn conv() -> Conv2d {
    Conv2d::new(2, 3, 9, 9, 5, 3).pad(1)
}

fn attention() -> AttentionShape {
    AttentionShape::heads(2, 17, 8)
}

fn saved(i: &[wgpu::Buffer; 6]) -> NormSaved<'_> {
    NormSaved {
        x: &i[1],
        mean: &i[2],
        rstd: &i[3],
        gain: &i[4],
    }
}

/// Every public launcher family, forward and backward, by name.
fn launches() -> Vec<(&'static str, Launch)> {
    vec![
        ("add", |g, p, b| {
            ew::add(g, p, &b.out[0], &b.input[0], &b.input[1], 300, false)
        }),
        ("fill", |g, p, b| ew::fill(g, p, &b.out[0], 1.0, 300)),
        ("rezero_forward", |g, p, b| {
            rezero_forward(
                g,
                p,
                &b.out[0],
                &b.input[0],
                &b.input[1],
                &b.input[2],
                3,
                300,
            )
        }),
        ("rezero_backward", |g, p, b| {
            let [dx, df, da] = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
            let shape = RezeroShape {
                n: 300,
                alpha_index: 3,
            };
            let [dy, f, alpha] = [&b.input[0], &b.input[1], &b.input[2]];
            rezero_backward(g, p, dx, df, da, &b.out[3], dy, f, alpha, shape)
        }),
        ("sum_rows", |g, p, b| {
            reduce::sum_rows(g, p, &b.out[0], &b.input[0], 7, 33, false, false)
        }),
        ("sum_all", |g, p, b| {
            reduce::sum_all(g, p, &b.out[0], &b.out[1], &b.input[0], 300, true, false)
        }),
        ("softmax_forward", |g, p, b| {
            softmax::softmax_forward(g, p, &b.out[0], &b.input[0], 7, 33)
        }),
        ("softmax_backward", |g, p, b| {
            softmax::softmax_backward(g, p, &b.out[0], &b.input[0], &b.input[1], 7, 33, false)
        }),
        ("softmax_causal", |g, p, b| {
            softmax::softmax_causal_forward(g, p, &b.out[0], &b.input[0], 10, 5, 0.5)
        }),
        ("layernorm_forward", |g, p, b| {
            let [y, mean, rstd] = [&b.out[0], &b.out[1], &b.out[2]];
            layernorm_forward(
                g,
                p,
                y,
                mean,
                rstd,
                &b.input[0],
                &b.input[1],
                &b.input[2],
                LN,
                1e-5,
            )
        }),
        ("layernorm_backward", |g, p, b| {
            let [dx, dgain, dbias] = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
            let (scratch, dy) = (&b.out[3], &b.input[0]);
            layernorm_backward(g, p, dx, dgain, dbias, scratch, dy, saved(&b.input), LN)
        }),
        ("embedding_forward", |g, p, b| {
            embedding_forward(g, p, &b.out[0], &b.input[0], &b.input[1], 9, 12, 256, false)
        }),
        ("embedding_backward", |g, p, b| {
            let [dout, order, offsets] = [&b.input[0], &b.input[1], &b.input[2]];
            embedding_backward(
                g,
                p,
                Grad::write(&b.out[0]),
                dout,
                order,
                offsets,
                EMBEDDING,
            )
        }),
        ("cross_entropy", |g, p, b| {
            let [loss, dlogits, rows] = [&b.out[0], &b.out[1], &b.out[2]];
            cross_entropy(g, p, loss, dlogits, rows, &b.input[0], &b.input[1], 5, 11)
        }),
        ("adam", |g, p, b| {
            let grad = Gradient::keep(&b.input[0]);
            adam(
                g,
                p,
                &b.out[0],
                &b.out[1],
                &b.out[2],
                grad,
                &b.input[1],
                300,
                &ADAM,
                None,
            )
        }),
        ("rows_to_heads", |g, p, b| {
            rows_to_heads(g, p, &b.out[0], &b.input[0], &HEADS)
        }),
        ("heads_to_rows", |g, p, b| {
            heads_to_rows(g, p, &b.out[0], &b.input[0], &HEADS, false)
        }),
        ("attention_forward", |g, p, b| {
            let [q, k, v] = [&b.input[0], &b.input[1], &b.input[2]];
            attention_forward(g, p, &b.out[0], &b.out[1], q, k, v, &attention())
        }),
        ("attention_backward", |g, p, b| {
            let grads = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
            let i = &b.input;
            let inputs = [&i[0], &i[1], &i[2], &i[3], &i[4], &i[5]];
            attention_backward(g, p, grads, &b.out[3], inputs, &attention())
        }),
        ("matmul", |g, p, b| {
            matmul(g, p, &b.out[0], &b.input[0], &b.input[1], None, &product()).map(drop)
        }),
        ("matmul_activation", |g, p, b| {
            let (a, w, bias) = (&b.input[0], &b.input[1], Some(&b.input[2]));
            let gelu = Activation::Gelu;
            matmul_activation(g, p, &b.out[0], &b.out[1], a, w, bias, gelu, &product()).map(drop)
        }),
        ("bias_backward", |g, p, b| {
            bias_backward(g, p, Grad::write(&b.out[0]), None, &b.input[0], BIAS)
        }),
        ("bias_activation_backward", |g, p, b| {
            let [dx, db] = [&b.out[0], &b.out[1]].map(Grad::write);
            let gelu = Activation::Gelu;
            bias_activation_backward(g, p, dx, db, None, &b.input[0], &b.input[1], gelu, BIAS)
        }),
        ("conv2d_forward", |g, p, b| {
            let (x, w, bias) = (&b.input[0], &b.input[1], Some(&b.input[2]));
            conv::conv2d_forward(
                g,
                p,
                &b.out[0],
                x,
                w,
                bias,
                &conv(),
                ConvVariant::Auto,
                false,
            )
        }),
        ("conv2d_backward_input", |g, p, b| {
            let (dy, w) = (&b.input[0], &b.input[1]);
            conv::conv2d_backward_input(g, p, &b.out[0], dy, w, &conv(), ConvVariant::Auto, false)
        }),
        ("conv2d_backward_weight", |g, p, b| {
            let (dw, scratch, dy, x) = (&b.out[0], &b.out[1], &b.input[0], &b.input[1]);
            let auto = ConvVariant::Auto;
            conv::conv2d_backward_weight(g, p, dw, scratch, dy, x, &conv(), auto, false)
        }),
        ("conv2d_backward_bias", |g, p, b| {
            conv::conv2d_backward_bias(g, p, &b.out[0], &b.input[0], &conv(), false)
        }),
        ("batchnorm_train_forward", |g, p, b| {
            let o = &b.out;
            let (x, gamma, beta) = (&b.input[0], &b.input[1], &b.input[2]);
            let config = BatchNormConfig::default();
            batchnorm_train_forward(
                g, p, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], x, gamma, beta, &BN, &config,
            )
        }),
        ("batchnorm_backward", |g, p, b| {
            let [dx, dgamma, dbeta] = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
            let (scratch, dy, config) = (&b.out[3], &b.input[0], BatchNormConfig::default());
            batchnorm_backward(
                g,
                p,
                dx,
                dgamma,
                dbeta,
                scratch,
                dy,
                saved(&b.input),
                &BN,
                &config,
            )
        }),
        ("global_avg_pool_forward", |g, p, b| {
            pool::global_avg_pool_forward(g, p, &b.out[0], &b.input[0], 6, 10)
        }),
        ("global_avg_pool_backward", |g, p, b| {
            pool::global_avg_pool_backward(g, p, &b.out[0], &b.input[0], 6, 10, false)
        }),
        ("shortcut_forward", |g, p, b| {
            shortcut_forward(g, p, &b.out[0], &b.input[0], &SHORTCUT)
        }),
        ("shortcut_backward", |g, p, b| {
            shortcut_backward(g, p, &b.out[0], &b.input[0], &SHORTCUT, false)
        }),
        ("dropout_forward", |g, p, b| {
            dropout_forward(g, p, &b.out[0], &b.input[0], &b.input[1], 300, MASK)
        }),
        ("dropout_backward", |g, p, b| {
            dropout_backward(
                g,
                p,
                Grad::write(&b.out[0]),
                &b.input[0],
                &b.input[1],
                300,
                MASK,
            )
        }),
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
    let Some(_) = common::gpu() else { return }; // the test's hold on this binary's GPU
    let Some((device, queue, info)) = host_device() else {
        return common::skip("no adapter for a host device");
    };
    let gpu = Gpu::from_device(device.clone(), queue.clone(), info);
    let buffers = Buffers::new(&gpu, None);
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let before = submissions(&queue);
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for (family, launch) in launches() {
            launch(&gpu, &mut pass, &buffers).unwrap_or_else(|e| panic!("{family}: {e}"));
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
    for family in [
        "matmul/",
        "conv2d/fwd/",
        "conv2d/bwd_weight/",
        "attention/bwd/",
    ] {
        assert!(
            untuned.iter().any(|k| k.starts_with(family)),
            "{family} is not among the untuned classes {untuned:?}"
        );
    }
}

#[test]
fn every_family_refuses_each_undersized_buffer_it_binds() {
    let gpu = require_gpu!();
    let full = Buffers::new(gpu, None);
    let slots = full.slots().count();
    let undersized: Vec<Buffers> = (0..slots).map(|s| Buffers::new(gpu, Some(s))).collect();
    for (family, launch) in launches() {
        let mut prepared = Prepared::new();
        launch(gpu, &mut prepared, &full).unwrap_or_else(|e| panic!("{family}: {e}"));
        let bound: Vec<usize> = (0..slots)
            .filter(|&s| {
                let slot = full.slots().nth(s).unwrap();
                prepared.buffers().any(|b| b == slot)
            })
            .collect();
        assert!(!bound.is_empty(), "{family} binds none of the buffers");
        for slot in bound {
            let mut refused = Prepared::new();
            let result = launch(gpu, &mut refused, &undersized[slot]);
            if ONE_ELEMENT.contains(&(family, slot)) {
                result.unwrap_or_else(|e| panic!("{family}: slot {slot} needs one element: {e}"));
                continue;
            }
            match result {
                Err(Error::Shape { .. }) => assert!(refused.is_empty(), "{family}"),
                other => panic!("{family}: a 4-byte buffer in slot {slot} gave {other:?}"),
            }
        }
    }
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
fn a_prepared_launch_records_the_same_work_again_and_again() {
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

    // Each run starts from NaN in f and y, so a record that did nothing would show.
    let poison = || {
        gpu.write(&f, &vec![f32::NAN; (m * n) as usize]);
        gpu.write(&y, &vec![f32::NAN; (m * n) as usize]);
    };
    for round in 0..3 {
        poison();
        let got = submit_and_read(gpu, &y, (m * n) as usize, |pass| layer.record(pass));
        common::assert_close(
            &format!("prepared round {round}"),
            &got,
            &want,
            common::atol_for(k as usize),
            1e-5,
        );
    }
    // What it binds, and so keeps alive: the matmul's C, A, B (A again in the bias slot),
    // C again as `pre`, then the residual's y, x, f and alpha.
    let bound: Vec<&wgpu::Buffer> = layer.buffers().collect();
    for buffer in [&f, &ga, &gw, &y, &gx, &galpha] {
        assert!(bound.contains(&buffer), "{buffer:?} is not bound");
    }

    // The launchers called on a pass record the same work: identical results.
    poison();
    let direct = submit_and_read(gpu, &y, (m * n) as usize, |pass| {
        matmul(gpu, pass, &f, &ga, &gw, None, &desc).unwrap();
        rezero_forward(gpu, pass, &y, &gx, &f, &galpha, 0, m * n).unwrap();
    });
    poison();
    let prepared = submit_and_read(gpu, &y, (m * n) as usize, |pass| layer.record(pass));
    assert_eq!(direct, prepared);
}
