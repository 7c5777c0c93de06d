//! What an embedding program can rely on, family by family: every public launcher, forward
//! and backward, recorded on shapes the tuning table has never seen into the program's own
//! compute pass on its own device, submits nothing and keeps none of its buffers; every
//! launcher refuses each buffer it binds when that buffer is undersized, with an `Error`
//! and before recording anything; a `Prepared` launch records the same work as the
//! launcher called on a pass, again and again.

mod common;

use common::launches::{Buffers, ONE_ELEMENT, launches};
use rezero::gpu::Prepared;
use rezero::kernels::Dtype;
use rezero::kernels::autotune;
use rezero::kernels::matmul::{Matmul, matmul};
use rezero::kernels::rezero::{RezeroShape, rezero_forward};
use rezero::{Error, Gpu, cpu};

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
            launch(&gpu, &mut pass, &buffers, Dtype::F32)
                .unwrap_or_else(|e| panic!("{family}: {e}"));
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
        launch(gpu, &mut prepared, &full, Dtype::F32).unwrap_or_else(|e| panic!("{family}: {e}"));
        let bound: Vec<usize> = (0..slots)
            .filter(|&s| {
                let slot = full.slots().nth(s).unwrap();
                prepared.buffers().any(|b| b == slot)
            })
            .collect();
        assert!(!bound.is_empty(), "{family} binds none of the buffers");
        for slot in bound {
            let mut refused = Prepared::new();
            let result = launch(gpu, &mut refused, &undersized[slot], Dtype::F32);
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
    rezero_forward(
        gpu,
        &mut layer,
        &y,
        &gx,
        &f,
        &galpha,
        RezeroShape::new(m * n, 0),
    )
    .unwrap();
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
        rezero_forward(gpu, pass, &y, &gx, &f, &galpha, RezeroShape::new(m * n, 0)).unwrap();
    });
    poison();
    let prepared = submit_and_read(gpu, &y, (m * n) as usize, |pass| layer.record(pass));
    assert_eq!(direct, prepared);
}
