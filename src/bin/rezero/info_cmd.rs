//! `rezero info`: the adapter rezero would use and the limits that matter.

use std::io::Write;

use rezero::gpu::Gpu;
use rezero::kernels::matmul::{CoopSize, describe_cooperative};

pub fn info(gpu: &Gpu) {
    let i = gpu.info();
    let l = gpu.limits();
    out!("adapter        {}", i.name);
    out!("backend        {:?}", i.backend);
    out!("device type    {:?}", i.device_type);
    out!("driver         {} {}", i.driver, i.driver_info);
    out!("vendor/device  {:#06x}/{:#06x}", i.vendor, i.device);
    features(gpu);
    out!(
        "shaders        {} (--checked-shaders turns wgpu's bounds checks on)",
        if gpu.checked_shaders() {
            "with runtime checks"
        } else {
            "without runtime checks"
        }
    );
    let (_, file) = gpu.tuning_table();
    out!(
        "tuning table   {} kernel choices; cache file {}",
        gpu.tuning_in_force().len(),
        file.map_or("none (--no-tuning-cache)".to_string(), |p| p
            .display()
            .to_string())
    );
    out!("limits");
    out!(
        "  workgroup storage          {} bytes",
        l.max_compute_workgroup_storage_size
    );
    out!(
        "  storage binding size       {} bytes ({} MiB)",
        l.max_storage_buffer_binding_size,
        l.max_storage_buffer_binding_size >> 20
    );
    out!(
        "  buffer size                {} bytes ({} MiB)",
        l.max_buffer_size,
        l.max_buffer_size >> 20
    );
    out!(
        "  invocations per workgroup  {}",
        l.max_compute_invocations_per_workgroup
    );
    out!(
        "  workgroup size x/y/z       {}/{}/{}",
        l.max_compute_workgroup_size_x,
        l.max_compute_workgroup_size_y,
        l.max_compute_workgroup_size_z
    );
    out!(
        "  workgroups per dimension   {}",
        l.max_compute_workgroups_per_dimension
    );
    out!(
        "  storage buffers per stage  {}",
        l.max_storage_buffers_per_shader_stage
    );
}

/// The optional features, the cooperative matrices and the subgroup size.
fn features(gpu: &Gpu) {
    let (i, f) = (gpu.info(), gpu.features());
    let has = |feature: wgpu::Features| if f.contains(feature) { "yes" } else { "no" };
    out!(
        "features       timestamp-query {}, shader-f16 {}, subgroups {}",
        has(wgpu::Features::TIMESTAMP_QUERY),
        has(wgpu::Features::SHADER_F16),
        has(wgpu::Features::SUBGROUP)
    );
    let coop: Vec<String> = CoopSize::available(gpu)
        .iter()
        .map(|size| format!("coop{}", size.s()))
        .collect();
    out!(
        "coop matrices  {} (matmul variants here: {})",
        describe_cooperative(gpu.cooperative_matrices()),
        if coop.is_empty() {
            "none".to_string()
        } else {
            coop.join(", ")
        }
    );
    out!(
        "subgroup size  {}..{}, consecutive runs of invocations (probed): {}",
        i.subgroup_min_size,
        i.subgroup_max_size,
        if gpu.subgroups_consecutive() {
            "yes"
        } else {
            "no"
        }
    );
}
