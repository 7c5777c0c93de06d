//! What the page shows as JSON: the adapter (name, limits, features), the kernel each
//! family runs at the demo's shapes, and the self-test's checks. Written by hand: a few
//! flat objects do not need a serialisation framework.

use rezero::Gpu;
use rezero::kernels::attention_tune::{Pass, default_kernel};
use rezero::kernels::matmul::{Matmul, default_variant};

use crate::demo::DemoConfig;
use crate::selftest::Check;

/// `text` as a JSON string literal.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{"key": value, …}` from keys and already-encoded values.
fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}: {v}", quote(k)))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// The adapter, its limits and features, and the kernel choices at the demo's shapes.
pub fn adapter_json(gpu: &Gpu) -> String {
    let (info, limits) = (gpu.info(), gpu.limits());
    let features: Vec<String> = gpu
        .features()
        .iter_names()
        .map(|(name, _)| quote(name))
        .collect();
    let limits = object(&[
        (
            "workgroup storage bytes",
            limits.max_compute_workgroup_storage_size.to_string(),
        ),
        (
            "storage binding bytes",
            limits.max_storage_buffer_binding_size.to_string(),
        ),
        ("buffer bytes", limits.max_buffer_size.to_string()),
        (
            "invocations per workgroup",
            limits.max_compute_invocations_per_workgroup.to_string(),
        ),
        (
            "workgroups per dimension",
            limits.max_compute_workgroups_per_dimension.to_string(),
        ),
        (
            "storage buffers per stage",
            limits.max_storage_buffers_per_shader_stage.to_string(),
        ),
    ]);
    object(&[
        ("name", quote(&info.name)),
        ("backend", quote(&format!("{:?}", info.backend))),
        ("device type", quote(&format!("{:?}", info.device_type))),
        (
            "driver",
            quote(format!("{} {}", info.driver, info.driver_info).trim()),
        ),
        ("features", format!("[{}]", features.join(", "))),
        (
            "subgroup sizes",
            quote(&format!(
                "{}..{}",
                info.subgroup_min_size, info.subgroup_max_size
            )),
        ),
        ("limits", limits),
        ("kernels", kernel_choices(gpu)),
    ])
}

/// The variant each family runs at the demo's shapes, as `Auto` picks it here.
fn kernel_choices(gpu: &Gpu) -> String {
    let demo = DemoConfig::new(rezero::nn::BlockVariant::Rezero, 1e-3);
    let (rows, d) = ((demo.batch * demo.seq) as u32, demo.d_model as u32);
    let head = (demo.d_model / (demo.d_model / 32).max(1)) as u32;
    let choice = |m, n, k| default_variant(gpu, &Matmul::new(m, n, k)).name();
    object(&[
        ("matmul (projections)", quote(&choice(rows, d, d))),
        ("matmul (feed-forward)", quote(&choice(rows, 4 * d, d))),
        ("matmul (logits)", quote(&choice(rows, 256, d))),
        (
            "attention forward",
            quote(&default_kernel(gpu, Pass::Forward, head).name()),
        ),
        (
            "attention backward",
            quote(&default_kernel(gpu, Pass::Backward, head).name()),
        ),
        (
            "row kernels' workgroup",
            gpu.row_workgroup_size().to_string(),
        ),
        (
            "subgroup attention",
            (gpu.subgroups_consecutive()).to_string(),
        ),
    ])
}

/// One check as JSON.
pub fn check_json(check: &Check) -> String {
    object(&[
        ("family", quote(check.family)),
        ("case", quote(&check.case)),
        ("passed", check.failure.is_none().to_string()),
        (
            "failure",
            check.failure.as_deref().map_or("null".into(), quote),
        ),
        ("millis", format!("{:.3}", check.millis)),
    ])
}

/// Every check as a JSON array.
pub fn checks_json(checks: &[Check]) -> String {
    let items: Vec<String> = checks.iter().map(check_json).collect();
    format!("[{}]", items.join(",\n"))
}
