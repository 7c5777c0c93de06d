//! naga's four writers over one kernel configuration, with its override constants applied
//! as wgpu applies them, and the two validators this machine has over what they write:
//! `spirv-val` for SPIR-V and `glslangValidator` for GLSL. No Metal or DirectX compiler
//! runs on Linux, so MSL and HLSL are checked as far as naga's writers check them.

use std::path::PathBuf;
use std::process::Command;

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::{Module, ShaderStage};
use rezero::gpu::KernelConfig;

/// The validators, found on the PATH, and a scratch directory for their input files.
pub struct Tools {
    spirv_val: bool,
    glslang: bool,
    scratch: PathBuf,
}

fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Tools {
    /// The validators, with a scratch directory of their own named by `worker`.
    pub fn find(worker: usize) -> Tools {
        let name = format!("rezero-translate-{}-{worker}", std::process::id());
        let scratch = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&scratch).unwrap();
        Tools {
            spirv_val: runs("spirv-val"),
            glslang: runs("glslangValidator"),
            scratch,
        }
    }

    /// The first validator that is not installed, if one is not.
    pub fn missing(&self) -> Option<&'static str> {
        match (self.spirv_val, self.glslang) {
            (false, _) => Some("spirv-val"),
            (_, false) => Some("glslangValidator"),
            _ => None,
        }
    }

    /// Runs `tool` with `args` and then `file`, holding `bytes`; the tool's output if it fails.
    fn check(&self, tool: &str, args: &[&str], file: &str, bytes: &[u8]) -> Result<(), String> {
        let path = self.scratch.join(file);
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new(tool).args(args).arg(&path).output().unwrap();
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        Err(format!("{tool}: {}", text.trim()))
    }
}

impl Drop for Tools {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The module of `config`'s shader with its override constants applied (the entry point's
/// reachable part), validated as wgpu validates it.
fn specialise(config: &KernelConfig) -> Result<(Module, ModuleInfo), String> {
    let source = config.shader.wgsl();
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut validator = Validator::new(ValidationFlags::all(), Capabilities::all());
    let info = validator
        .validate(&module)
        .map_err(|e| e.emit_to_string(source))?;
    let constants: naga::back::PipelineConstants = config
        .constants
        .iter()
        .map(|&(name, value)| (name.to_string(), value))
        .collect();
    let entry = Some((ShaderStage::Compute, config.entry));
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, entry, &constants)
            .map_err(|e| format!("override constants: {e}"))?;
    Ok((module.into_owned(), info.into_owned()))
}

/// Whether `REZERO_REQUIRE_COOP=1`: the cooperative-matrix checks must run here.
pub fn require_coop() -> bool {
    std::env::var_os("REZERO_REQUIRE_COOP").is_some_and(|v| v == "1")
}

/// What a shader needs of the device, as its `enable` directives say.
struct Needs {
    f16: bool,
    coop: bool,
    /// 16x16 cooperative matrices, which Metal's simdgroup matrices do not have.
    coop16: bool,
}

impl Needs {
    fn of(config: &KernelConfig) -> Needs {
        let source = config.shader.wgsl();
        Needs {
            f16: source.contains("enable f16;"),
            coop: source.contains("enable wgpu_cooperative_matrix;"),
            coop16: source.contains("coop_mat16x16"),
        }
    }
}

/// Translates `config` to each language whose wgpu backend can run it, and validates the
/// SPIR-V and the GLSL. wgpu offers f16 on Vulkan, Metal and DX12 (shader model 6.2), not
/// on GL; cooperative matrices on Vulkan (SPIR-V 1.6, `VK_KHR_cooperative_matrix`) and, at
/// 8x8, on Metal.
pub fn translate(tools: &Tools, config: &KernelConfig) -> Result<(), String> {
    let (module, info) = specialise(config)?;
    let needs = Needs::of(config);
    let entry = config.entry.to_string();
    let (version, env) = if needs.coop {
        ((1, 6), "vulkan1.3")
    } else {
        ((1, 3), "vulkan1.1")
    };
    let words = spirv(&module, &info, &entry, version)?;
    let file = format!("{}.spv", config.entry);
    let checked = tools.check(
        "spirv-val",
        &["--target-env", env],
        &file,
        bytemuck::cast_slice(&words),
    );
    match checked {
        // Debian 12's spirv-val predates VK_KHR_cooperative_matrix (capability 6022):
        // naga's writer has run; the validation is `cooperative_matrices_pass_spirv_val`'s,
        // which CI runs in a Debian 13 root with REZERO_REQUIRE_COOP=1.
        Err(why) if needs.coop && why.contains("Invalid capability operand: 6022") => {
            if require_coop() {
                return Err(why);
            }
        }
        other => other?,
    }
    if !needs.coop16 {
        metal(&module, &info, &entry)?;
    }
    if needs.coop {
        return Ok(());
    }
    hlsl(&module, &info, &entry, needs.f16)?;
    if needs.f16 {
        return Ok(());
    }
    let text = gl(&module, &info, &entry)?;
    tools.check(
        "glslangValidator",
        &[],
        &format!("{}.comp", config.entry),
        text.as_bytes(),
    )
}

fn spirv(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
    lang_version: (u8, u8),
) -> Result<Vec<u32>, String> {
    // SPIR-V 1.3 (Vulkan 1.1), which the subgroup operations need; what wgpu writes for
    // a device with subgroups. Cooperative matrices: 1.6.
    let options = spv::Options {
        lang_version,
        force_loop_bounding: false,
        ..Default::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    spv::write_vec(module, info, &options, Some(&pipeline)).map_err(|e| format!("SPIR-V: {e}"))
}

/// Each (group, binding) of the module's resources, in declaration order.
fn bindings(module: &Module) -> Vec<(naga::ResourceBinding, bool)> {
    let mut list = Vec::new();
    for (_, var) in module.global_variables.iter() {
        if let Some(binding) = var.binding {
            let writable = match var.space {
                naga::AddressSpace::Storage { access } => {
                    access.contains(naga::StorageAccess::STORE)
                }
                _ => false,
            };
            list.push((binding, writable));
        }
    }
    list
}

fn metal(module: &Module, info: &ModuleInfo, entry: &str) -> Result<(), String> {
    // Buffer slots in binding order, then the array-length buffer after them, as wgpu lays
    // out a pipeline's resources on Metal.
    let list = bindings(module);
    let resources = list
        .iter()
        .enumerate()
        .map(|(slot, &(binding, mutable))| {
            let target = msl::BindTarget {
                buffer: Some(slot as u8),
                mutable,
                ..Default::default()
            };
            (binding, target)
        })
        .collect();
    let resources = msl::EntryPointResources {
        resources,
        immediates_buffer: None,
        sizes_buffer: Some(list.len() as u8),
    };
    let options = msl::Options {
        lang_version: (2, 4),
        per_entry_point_map: [(entry.to_string(), resources)].into_iter().collect(),
        fake_missing_bindings: false,
        force_loop_bounding: false,
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
        ..Default::default()
    };
    msl::write_string(module, info, &options, &pipeline)
        .map(drop)
        .map_err(|e| format!("MSL: {e}"))
}

fn hlsl(module: &Module, info: &ModuleInfo, entry: &str, f16: bool) -> Result<(), String> {
    let binding_map = bindings(module)
        .into_iter()
        .map(|(binding, _)| {
            let target = hlsl::BindTarget {
                space: binding.group as u8,
                register: binding.binding,
                ..Default::default()
            };
            (binding, target)
        })
        .collect();
    let options = hlsl::Options {
        // Native 16-bit types need shader model 6.2, which wgpu's DX12 backend asks for
        // where it offers SHADER_F16.
        shader_model: if f16 {
            hlsl::ShaderModel::V6_2
        } else {
            hlsl::ShaderModel::V6_0
        },
        binding_map,
        fake_missing_bindings: false,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
    };
    let mut text = String::new();
    hlsl::Writer::new(&mut text, &options, &pipeline)
        .write(module, info, None)
        .map(drop)
        .map_err(|e| format!("HLSL: {e}"))
}

fn gl(module: &Module, info: &ModuleInfo, entry: &str) -> Result<String, String> {
    let binding_map = bindings(module)
        .into_iter()
        .enumerate()
        .map(|(slot, (binding, _))| (binding, slot as u8))
        .collect();
    let options = glsl::Options {
        version: glsl::Version::Desktop(450),
        binding_map,
        ..Default::default()
    };
    let pipeline = glsl::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
        multiview: None,
    };
    let mut text = String::new();
    let policies = naga::proc::BoundsCheckPolicies::default(); // unchecked, as we build
    glsl::Writer::new(&mut text, module, info, &options, &pipeline, policies)
        .and_then(|mut w| w.write().map(drop))
        .map_err(|e| format!("GLSL: {e}"))?;
    Ok(text)
}
