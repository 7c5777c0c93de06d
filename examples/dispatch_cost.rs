//! What one small dispatch costs, three ways in the same process, in alternating rounds of
//! 1000 relu dispatches in one compute pass: the launcher called on the pass (sizes checked,
//! pipeline, uniform and bind group from the `Gpu`'s caches), the launcher on a `Gpu` with
//! no bind-group cache (what `Gpu::from_device` gives an embedder: a bind group a call),
//! and a `Prepared` launch recorded (set pipeline, set bind group, dispatch). Each is timed
//! recording alone and recording plus submission and execution.
//!
//! Run: `cargo run --release --example dispatch_cost`

use rezero::kernels::Dtype;
use std::time::Instant;

use rezero::gpu::Prepared;
use rezero::kernels::elementwise;
use rezero::{Gpu, GpuOptions};

const DISPATCHES: usize = 1000;

/// (recording, recording + submission + execution), in µs a dispatch.
fn time(gpu: &Gpu, record: impl Fn(&mut wgpu::ComputePass<'_>)) -> rezero::Result<(f64, f64)> {
    let start = Instant::now();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        record(&mut pass);
    }
    let recorded = start.elapsed();
    gpu.queue.submit([encoder.finish()]);
    pollster::block_on(gpu.sync())?;
    let total = start.elapsed();
    let each = |d: std::time::Duration| d.as_secs_f64() * 1e6 / DISPATCHES as f64;
    Ok((each(recorded), each(total)))
}

fn main() -> rezero::Result<()> {
    let gpu = pollster::block_on(Gpu::new(&GpuOptions::default()))?;
    let uncached = pollster::block_on(Gpu::new(&GpuOptions::default()))?;
    uncached.set_bind_group_cache_limits(0, 0);
    let (x, y) = (gpu.upload("x", &[1.0f32; 256]), gpu.zeroed_f32("y", 256));
    let (ux, uy) = (
        uncached.upload("x", &[1.0f32; 256]),
        uncached.zeroed_f32("y", 256),
    );
    let mut prepared = Prepared::new();
    elementwise::relu(&gpu, &mut prepared, &y, &x, 256, Dtype::F32)?;
    println!(
        "{DISPATCHES} relu dispatches of 256 floats in one pass, µs a dispatch (adapter: {})",
        gpu.info().name
    );
    for round in 0..5 {
        let launcher = time(&gpu, |pass| {
            for _ in 0..DISPATCHES {
                elementwise::relu(&gpu, pass, &y, &x, 256, Dtype::F32).unwrap();
            }
        })?;
        let no_cache = time(&uncached, |pass| {
            for _ in 0..DISPATCHES {
                elementwise::relu(&uncached, pass, &uy, &ux, 256, Dtype::F32).unwrap();
            }
        })?;
        let record = time(&gpu, |pass| {
            for _ in 0..DISPATCHES {
                prepared.record(pass);
            }
        })?;
        println!(
            "round {round}: launcher {:.2} recording / {:.2} in all; launcher, no bind-group \
             cache {:.2} / {:.2}; prepared record {:.2} / {:.2}",
            launcher.0, launcher.1, no_cache.0, no_cache.1, record.0, record.1
        );
    }
    Ok(())
}
