//! Embedding rezero's kernels in a wgpu program that owns its device, buffers and encoder:
//! y = x + α · (a · w), prepared once and recorded into the host's own compute pass.
//!
//! Run: `cargo run --release --example embed`

use rezero::Gpu;
use rezero::gpu::Prepared;
use rezero::kernels::matmul::{Matmul, matmul};
use rezero::kernels::rezero::{RezeroShape, rezero_forward};
use wgpu::util::DeviceExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The host program's device, made with wgpu's own API.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;

    // The host's buffers: a [2, 4], w [4, 3], x and y [2, 3], alpha [1].
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let buffer = |data: &[f32]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(data),
            usage,
        })
    };
    let a = buffer(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let w = buffer(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    let x = buffer(&[0.5; 6]);
    let alpha = buffer(&[0.1]);
    let f = buffer(&[0.0; 6]);
    let y = buffer(&[0.0; 6]);

    // rezero wraps the device (adding only its pipeline and uniform caches; it keeps none
    // of the host's buffers) and checks every size here, once: nothing is submitted,
    // waited for or measured.
    let gpu = Gpu::from_device(device.clone(), queue.clone(), adapter.get_info());
    let mut layer = Prepared::new();
    matmul(&gpu, &mut layer, &f, &a, &w, None, &Matmul::new(2, 3, 4))?; // f = a · w
    rezero_forward(&gpu, &mut layer, &y, &x, &f, &alpha, RezeroShape::new(6, 0))?; // y = x + α·f, α = alpha[0]

    // Each frame (here, one): the host records the prepared dispatches into its own pass,
    // which only sets each pipeline and bind group and dispatches, and submits it itself.
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        layer.record(&mut pass);
    }
    queue.submit([encoder.finish()]);

    let y = pollster::block_on(gpu.read_f32(&y, 6))?;
    println!("y = x + 0.1 · (a · w) = {y:?}");
    Ok(())
}
