//! Shared by the test binaries: one device per binary, tolerant comparisons that name the
//! first failing index.
#![allow(dead_code)]

pub mod cli;
pub mod modes;
pub mod reference64;

use std::sync::OnceLock;

use rezero::{Gpu, GpuOptions};

/// The device shared by this test binary. With no adapter, the test is skipped, unless
/// `CI` is set: then the run fails. `REZERO_TEST_CHECKED_SHADERS=1` builds its shaders with
/// wgpu's runtime checks (CI runs the kernel tests in both modes).
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    let options = GpuOptions {
        checked_shaders: std::env::var_os("REZERO_TEST_CHECKED_SHADERS").is_some_and(|v| v == "1"),
        ..Default::default()
    };
    GPU.get_or_init(|| match Gpu::new(&options) {
        Ok(gpu) => Some(gpu),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and there is no GPU adapter: {e}")
        }
        Err(e) => {
            eprintln!("skipping GPU tests: {e}");
            None
        }
    })
    .as_ref()
}

/// A device opened with WebGPU's default limits (as an embedding program's may be: 8
/// storage buffers a stage, 16 KiB of workgroup memory), wrapped with `Gpu::from_device`.
/// None without an adapter, unless `CI` is set: then it panics.
pub fn gpu_with_default_limits() -> Option<Gpu> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let options = wgpu::RequestAdapterOptions::default();
    let adapter = match pollster::block_on(instance.request_adapter(&options)) {
        Ok(adapter) => adapter,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and there is no adapter: {e}")
        }
        Err(_) => return None,
    };
    let descriptor = wgpu::DeviceDescriptor {
        required_limits: wgpu::Limits::default(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&descriptor)).unwrap();
    Some(Gpu::from_device(device, queue, adapter.get_info()))
}

/// `let gpu = require_gpu!();` at the top of a test: skips it without an adapter (never in CI).
#[macro_export]
macro_rules! require_gpu {
    () => {
        match common::gpu() {
            Some(gpu) => gpu,
            None => return,
        }
    };
}

/// Panics at the first index where |got − want| > atol + rtol·|want| (or either is NaN).
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} != expected {}",
        got.len(),
        want.len()
    );
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let bound = atol + rtol * w.abs();
        let diff = (g - w).abs();
        if diff.is_nan() || diff > bound {
            panic!(
                "{what}: first mismatch at index {i}: got {g}, expected {w} (|diff| {} > {bound})",
                (g - w).abs()
            );
        }
    }
}

/// Absolute tolerance for sums of `len` products of O(1) values in f32.
pub fn atol_for(len: usize) -> f32 {
    2e-6 * (len as f32).sqrt().max(1.0) + 1e-6 * len as f32
}
