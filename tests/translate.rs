//! Every pipeline a launcher can request, through every backend's shader compiler. The
//! configurations are what the launchers themselves ask for (a `KernelList` dry run):
//! every launch of `common::launches` at every row workgroup size, and every matmul,
//! convolution and attention variant and tuning candidate pinned, on this adapter as it is
//! and posing as a GPU with and without subgroups (the GPU candidates and defaults).
//! naga translates each, with its override constants, to SPIR-V (checked by `spirv-val`),
//! MSL 2.4, HLSL shader model 6.0 (6.2 with f16) and GLSL 4.50 (checked by
//! `glslangValidator`; f16 and cooperative-matrix shaders only where wgpu offers them), as wgpu
//! builds our shaders by default: without runtime bounds checks. Every compute entry
//! point of every shader must be among them. `.ci/run` installs both validators; outside
//! CI a missing one is a visible skip.

#[path = "translate/backends.rs"]
mod backends;
mod common;
#[path = "translate/configs.rs"]
mod configs;

use std::collections::{BTreeMap, BTreeSet};

use rezero::gpu::KernelConfig;

/// `shader/entry` of every compute entry point of every shader, from naga's parse.
fn entry_points() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for shader in rezero::kernels::shaders() {
        let module = naga::front::wgsl::parse_str(shader.wgsl()).unwrap();
        for entry in &module.entry_points {
            all.insert(format!("{}/{}", shader.name(), entry.name));
        }
    }
    all
}

/// Each of `share` through every backend: a line for each that fails.
fn translate_all(worker: usize, share: &[(&String, &KernelConfig)]) -> Vec<String> {
    let tools = backends::Tools::find(worker);
    let failed = share.iter().filter_map(|(name, config)| {
        let outcome = backends::translate(&tools, config);
        outcome.err().map(|why| format!("{name}: {why}"))
    });
    failed.collect()
}

#[test]
fn every_configuration_translates_for_every_backend() {
    let Some(gpu) = common::gpu() else { return };
    if let Some(missing) = backends::Tools::find(0).missing() {
        common::skip(&format!(
            "{missing} is not installed (Debian: spirv-tools, glslang-tools)"
        ));
        return;
    }
    // One entry per distinct configuration, by its name.
    let mut unique: BTreeMap<String, KernelConfig> = BTreeMap::new();
    for config in configs::every_configuration(gpu) {
        unique.entry(config.name()).or_insert(config);
    }
    let requested: BTreeSet<String> = unique
        .values()
        .map(|c| format!("{}/{}", c.shader.name(), c.entry))
        .collect();
    let mut never: Vec<_> = entry_points().difference(&requested).cloned().collect();
    // The subgroup forward's module holds the plain forward's source (for its helpers),
    // whose entry point launchers build from the plain module alone.
    never.retain(|e| {
        !e.starts_with("attention_tiled_subgroups") || !e.ends_with("/attention_forward_tiled")
    });
    // The f16 convolution modules are built per output type, and each entry point is built
    // only from the module whose output type it writes: the forward and backward-to-input
    // from `*_f16_out16` (f16 out), the weight and bias gradients from `*_f16` (f32 out);
    // the split-K finish (f32 in and out) only from the f32 module.
    let other_output = [
        "conv2d_f16/conv2d_direct",
        "conv2d_f16/conv2d_weight_finish",
        "conv2d_f16_out16/conv2d_weight_finish",
        "conv2d_f16_out16/conv2d_bias_backward",
        "conv2d_reg_f16/conv2d_forward_reg",
        "conv2d_reg_f16/conv2d_backward_input_reg",
        "conv2d_reg_f16_out16/conv2d_backward_weight_reg",
    ];
    never.retain(|e| !other_output.contains(&e.as_str()));
    // An adapter without f16 (wgpu's GL fallback) requests no f16 configuration: its
    // modules go untranslated here, visibly.
    if !gpu.features().contains(wgpu::Features::SHADER_F16) {
        let f16: BTreeSet<&str> = rezero::kernels::shaders()
            .iter()
            .filter(|s| s.wgsl().contains("enable f16;"))
            .map(|s| s.name())
            .collect();
        never.retain(|e| !f16.contains(e.split('/').next().unwrap_or("")));
        common::skip("the adapter lacks SHADER_F16: the f16 configurations are not translated");
    }
    assert!(
        never.is_empty(),
        "entry points no launch requested: {never:?}"
    );

    // Two workers, as the validators are separate processes (about 0.1 s a configuration).
    let configs: Vec<_> = unique.iter().collect();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = configs
            .chunks(configs.len().div_ceil(2))
            .enumerate()
            .map(|(worker, share)| scope.spawn(move || translate_all(worker, share)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    eprintln!(
        "translated {} configurations of {} entry points to SPIR-V, MSL, HLSL and GLSL",
        unique.len(),
        requested.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} configurations failed:\n{}",
        failures.len(),
        unique.len(),
        failures.join("\n")
    );
}

/// The tensor-core matmul's configurations (both matrix sizes, neither of which the
/// adapter here need list) through naga's SPIR-V writer and `spirv-val`, and at 8x8 MSL.
/// The writer would panic on a cooperative store whose stride is an expression it has not
/// emitted yet (naga 30), which `shaders/matmul_coop.wgsl` avoids by binding every stride
/// with `let` first: this is the test that catches a regression. A `spirv-val` too old to
/// know the capability (Debian 12's) passes here unless `REZERO_REQUIRE_COOP=1`, as in
/// CI's Debian 13 root.
#[test]
fn cooperative_matrices_pass_spirv_val() {
    let tools = backends::Tools::find(9);
    if tools.missing() == Some("spirv-val") {
        common::skip("spirv-val is not installed (Debian: spirv-tools)");
        return;
    }
    let configs = configs::cooperative();
    assert_eq!(
        configs.len(),
        24,
        "4 modules x 2 workgroups x 3 activations"
    );
    for config in &configs {
        if let Err(why) = backends::translate(&tools, config) {
            panic!("{}: {why}", config.name());
        }
    }
}
