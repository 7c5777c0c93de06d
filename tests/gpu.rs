//! The GPU context: adapter facts, readback checks, the buffer pool, the pipeline cache.

mod common;

use rezero::Error;
use rezero::gpu::BufferPool;
use rezero::kernels::Dtype;
use rezero::kernels::elementwise;

#[test]
fn device_reports_adapter_and_uses_adapter_limits() {
    let gpu = require_gpu!();
    assert!(!gpu.info().name.is_empty());
    // The adapter's own limits, not WebGPU's defaults (16 KiB of workgroup storage, 128 MiB bindings).
    assert!(gpu.limits().max_compute_workgroup_storage_size >= 16384);
    assert!(gpu.limits().max_storage_buffer_binding_size >= 128 << 20);
}

#[test]
fn upload_read_round_trip_and_short_buffer_error() {
    let gpu = require_gpu!();
    let data: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
    let buf = gpu.upload("data", &data);
    assert_eq!(pollster::block_on(gpu.read_f32(&buf, 37)).unwrap(), data);
    let err = pollster::block_on(gpu.read_f32(&buf, 38)).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "read", .. }), "{err}");
    // An untyped float literal is uploaded as f32 (4 bytes each), never as f64.
    let literal = gpu.upload("literal", &[1.0, -2.0]);
    assert_eq!(literal.size(), 8);
    assert_eq!(
        pollster::block_on(gpu.read_f32(&literal, 2)).unwrap(),
        [1.0, -2.0]
    );
}

#[test]
fn pool_reuses_buffers_by_size_class_and_counts_bytes() {
    let gpu = require_gpu!();
    let mut pool = BufferPool::new();
    let a = pool.take_f32(gpu, 1000); // 4000 bytes -> 4096 class
    let b = pool.take_f32(gpu, 600); // 2400 bytes -> 4096 class
    assert_eq!((pool.allocations(), pool.bytes_held()), (2, 8192));
    pool.give(a);
    pool.give(b);
    for _ in 0..5 {
        // A steady-state loop: same sizes every step, no new allocations.
        let x = pool.take_f32(gpu, 1024);
        let y = pool.take_f32(gpu, 700);
        pool.give(x);
        pool.give(y);
    }
    assert_eq!(pool.allocations(), 2);
    let big = pool.take_f32(gpu, 5000);
    assert_eq!(big.size(), 32768);
    assert_eq!(
        (
            pool.allocations(),
            pool.bytes_held(),
            pool.peak_bytes_held()
        ),
        (3, 8192 + 32768, 8192 + 32768)
    );
    pool.give(big);
    pool.trim();
    assert_eq!(pool.bytes_held(), 0);
}

#[test]
fn pipelines_are_cached_and_shader_errors_are_pipeline_errors() {
    let gpu = require_gpu!();
    let broken = rezero::gpu::Shader::new(
        "broken",
        "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
        0,
    );
    // SAFETY: the pipelines built here are never dispatched.
    let err = unsafe { gpu.pipeline(&rezero::gpu::Kernel::new(broken, "main")) }.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Pipeline {
                shader: "broken",
                ..
            }
        ),
        "{err}"
    );
    let ok = rezero::gpu::Shader::new("ok", "@compute @workgroup_size(1) fn main() {}", 0);
    // SAFETY: as above.
    let first = unsafe { gpu.pipeline(&rezero::gpu::Kernel::new(ok, "main")) }.unwrap();
    let second = unsafe { gpu.pipeline(&rezero::gpu::Kernel::new(ok, "main")) }.unwrap();
    assert_eq!(
        first, second,
        "the second request should come from the cache"
    );
}

#[test]
fn bind_groups_are_reused_and_the_cache_is_bounded() {
    // A device of its own: the counters must not see other tests' dispatches.
    let Some(_) = common::gpu() else { return };
    let gpu = pollster::block_on(rezero::Gpu::new(&rezero::GpuOptions::default())).unwrap();
    let x = gpu.upload("x", &[1.0f32; 256]);
    let y = gpu.zeroed_f32("y", 256);
    let relu = |y: &wgpu::Buffer| {
        pollster::block_on(gpu.run(|pass| elementwise::relu(&gpu, pass, y, &x, 256, Dtype::F32)))
    };
    relu(&y).unwrap();
    let first = gpu.bind_groups_created();
    for _ in 0..5 {
        relu(&y).unwrap();
    }
    assert_eq!(
        gpu.bind_groups_created(),
        first,
        "same dispatch, same bind group"
    );
    relu(&gpu.zeroed_f32("y2", 256)).unwrap();
    assert_eq!(
        gpu.bind_groups_created(),
        first + 1,
        "another buffer, another group"
    );

    // Bounded by the bytes of the buffers it keeps alive: 1 KiB each, at most 8 KiB.
    gpu.set_bind_group_cache_limits(1000, 8 << 10);
    for _ in 0..20 {
        relu(&gpu.zeroed_f32("fresh", 256)).unwrap();
        let (entries, held) = gpu.bind_groups_cached();
        assert!(held <= 8 << 10, "{entries} entries hold {held} bytes");
    }
    // ... and by entries.
    gpu.set_bind_group_cache_limits(3, u64::MAX);
    assert!(gpu.bind_groups_cached().0 <= 3);
    gpu.clear_bind_groups();
    assert_eq!(gpu.bind_groups_cached(), (0, 0));
}
