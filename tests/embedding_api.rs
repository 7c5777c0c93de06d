//! Embedding: a program that made its own wgpu device, buffers and command encoder records
//! our matmul and rezero kernels into its own compute pass.

mod common;

use common::{assert_close, atol_for};
use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::matmul::{Matmul, matmul};
use rezero::kernels::rezero::{RezeroShape, rezero_forward};
use wgpu::util::DeviceExt;

#[test]
fn kernels_record_into_a_foreign_device_and_encoder() {
    // The host program's own device, set up with nothing but wgpu's API.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        match pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        {
            Ok(a) => a,
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("CI is set and there is no adapter: {e}")
            }
            Err(_) => return,
        };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    let (m, n, k) = (5u32, 8u32, 12u32);
    let a = cpu::seeded(1, (m * k) as usize, -1.0, 1.0);
    let w = cpu::seeded(2, (k * n) as usize, -1.0, 1.0);
    let x = cpu::seeded(3, (m * n) as usize, -1.0, 1.0);
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let make = |label, data: &[f32]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage,
        })
    };
    let (ga, gw, gx, galpha) = (
        make("a", &a),
        make("w", &w),
        make("x", &x),
        make("alpha", &[0.5]),
    );
    let (gf, gy) = (
        make("f", &vec![0.0; (m * n) as usize]),
        make("y", &vec![0.0; (m * n) as usize]),
    );

    // rezero wraps the host's device; the host keeps its encoder and submits it itself.
    let ours = Gpu::from_device(device.clone(), queue.clone(), adapter.get_info());
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("host"),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("host pass"),
            timestamp_writes: None,
        });
        matmul(&ours, &mut pass, &gf, &ga, &gw, None, &Matmul::new(m, n, k)).unwrap();
        rezero_forward(
            &ours,
            &mut pass,
            &gy,
            &gx,
            &gf,
            &galpha,
            RezeroShape::new(m * n, 0),
        )
        .unwrap();
    }
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: gy.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_buffer_to_buffer(&gy, 0, &staging, 0, gy.size());
    queue.submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let got: Vec<f32> = bytemuck::cast_slice(&staging.get_mapped_range(..).unwrap()).to_vec();

    let mut f = vec![0.0; (m * n) as usize];
    cpu::matmul::matmul(&mut f, &a, &w, None, &Matmul::new(m, n, k));
    let mut want = vec![0.0; (m * n) as usize];
    cpu::rezero::rezero_forward(&mut want, &x, &f, 0.5);
    assert_close(
        "y = x + 0.5 · (a · w) on the host's device",
        &got,
        &want,
        atol_for(k as usize),
        1e-5,
    );
}
