//! Measures what one small dispatch costs end to end: recording (uniform buffer, bind
//! group), submission and execution, for 1000 dispatches in one compute pass.
//!
//! Run: `cargo run --release --example dispatch_cost`

use std::time::Instant;

use rezero::kernels::elementwise;
use rezero::{Gpu, GpuOptions};

fn main() -> rezero::Result<()> {
    let gpu = Gpu::new(&GpuOptions::default())?;
    let (x, y) = (gpu.upload("x", &[1.0f32; 256]), gpu.zeroed_f32("y", 256));
    let dispatches = 1000;
    for round in 0..3 {
        let start = Instant::now();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for _ in 0..dispatches {
                elementwise::relu(&gpu, &mut pass, &y, &x, 256)?;
            }
        }
        let recorded = start.elapsed();
        gpu.queue.submit([encoder.finish()]);
        gpu.sync()?;
        let total = start.elapsed();
        println!(
            "round {round}: {dispatches} dispatches recorded in {:.2} ms, done in {:.2} ms: {:.1} µs each",
            recorded.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e6 / dispatches as f64
        );
    }
    Ok(())
}
