//! Shared by the test binaries: one device per binary, tolerant comparisons that name the
//! first failing index.
#![allow(dead_code)]

pub mod cli;
pub mod launches;
pub mod modes;
pub mod precision;
pub mod reference64;
pub mod transformer64;

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

use rezero::gpu::Exclusive;
use rezero::{Gpu, GpuOptions};

/// Whether `CI` is set to something other than empty, `0` or `false` (as CI services set it):
/// then a test that finds no GPU adapter fails instead of skipping.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// Ends a test that cannot run here: fails it in CI, else says so on the real standard
/// error (libtest does not capture it), one line a test, `SKIPPED <test>: <why>`, which
/// `.ci/run` counts into its summary line.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if ci() {
        panic!("CI is set, and {test} cannot run: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {why} (with CI=true this fails)"
    );
}

thread_local! {
    /// The shared device's hold (`Gpu::exclusive`), taken by a test's first `gpu()` and let
    /// go when the test's thread ends, after the test's own buffers are dropped.
    static HELD: RefCell<Option<Exclusive<'static>>> = const { RefCell::new(None) };
}

/// The device shared by this test binary. With no adapter, the test is skipped (visibly,
/// see `skip`), unless `CI` is set: then it fails. `REZERO_TEST_CHECKED_SHADERS=1` builds
/// its shaders with wgpu's runtime checks (CI runs the kernel tests in both modes).
///
/// On wgpu's GL backend the test holds the device for its whole run: there every GL call
/// takes the adapter's one context lock with a 6-second timeout, and llvmpipe compiles
/// and runs a dispatch inside `queue.submit`, so a second test thread creating a buffer
/// meanwhile panics ("Could not lock adapter context"). Elsewhere tests run in parallel.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    let options = GpuOptions {
        checked_shaders: std::env::var_os("REZERO_TEST_CHECKED_SHADERS").is_some_and(|v| v == "1"),
        ..Default::default()
    };
    let opened =
        GPU.get_or_init(|| pollster::block_on(Gpu::new(&options)).map_err(|e| e.to_string()));
    match opened {
        Ok(gpu) => {
            HELD.with_borrow_mut(|held| {
                if held.is_none() {
                    *held = Some(gpu.exclusive());
                }
            });
            Some(gpu)
        }
        Err(why) => {
            skip(&format!("no GPU adapter ({why})"));
            None
        }
    }
}

/// A device opened with WebGPU's default limits (as an embedding program's may be: 8
/// storage buffers a stage, 16 KiB of workgroup memory), wrapped with `Gpu::from_device`.
/// None (the test skipped) without an adapter, unless `CI` is set: then it fails.
pub fn gpu_with_default_limits() -> Option<Gpu> {
    gpu()?; // holds the shared device, and with it this binary's GL work
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let options = wgpu::RequestAdapterOptions::default();
    let adapter = match pollster::block_on(instance.request_adapter(&options)) {
        Ok(adapter) => adapter,
        Err(e) => {
            skip(&format!(
                "no adapter for a device of WebGPU's default limits ({e})"
            ));
            return None;
        }
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

/// A product's variant, shape and options, to name it in a failure.
pub fn matmul_label(desc: &rezero::kernels::matmul::Matmul) -> String {
    format!(
        "{:?} {}x{}x{} batch {} ta {} tb {} acc {}",
        desc.variant,
        desc.m,
        desc.n,
        desc.k,
        desc.batch,
        desc.trans_a,
        desc.trans_b,
        desc.accumulate,
    )
}

/// Absolute tolerance for sums of `len` products of O(1) values in f32, against a
/// reference summed in another order: rounding errors of random sign add up like a random
/// walk, so the bound grows like √len (a linear bound allowed ±0.21 at 210k elements).
pub fn atol_for(len: usize) -> f32 {
    1e-5 * (len as f32).sqrt().max(1.0)
}

/// The first tile of each register block and slab depth (TM, TN, BK) among `blocks` that
/// fits `gpu`: what a gradient check runs to cover every code shape of the blocked kernels
/// without compiling every tile (a cold pipeline costs seconds on software Vulkan).
pub fn one_per_register_block<'a>(
    gpu: &Gpu,
    blocks: impl Iterator<Item = &'a rezero::kernels::matmul::Block>,
) -> impl Iterator<Item = rezero::kernels::matmul::Block> {
    let mut seen = Vec::new();
    let fits: Vec<_> = blocks.filter(|b| b.check(gpu).is_ok()).copied().collect();
    fits.into_iter().filter(move |b| {
        let shape = (b.tm, b.tn, b.bk);
        let new = !seen.contains(&shape);
        seen.push(shape);
        new
    })
}

/// The shared device, if it has f16 (a visible skip where it has not, failing in CI).
#[allow(dead_code)] // not every test binary asks
pub fn f16_gpu() -> Option<&'static rezero::Gpu> {
    let gpu = gpu()?;
    if !gpu.features().contains(wgpu::Features::SHADER_F16) {
        skip("the adapter lacks SHADER_F16");
        return None;
    }
    Some(gpu)
}
