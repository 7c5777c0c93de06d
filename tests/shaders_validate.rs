//! Every shader the launchers build (with the preludes it includes) parses and validates
//! with naga, every WGSL file in shaders/ goes into one of them, and each shader's uniform
//! struct has the size of the Rust struct its launchers pass.

use std::path::Path;

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    // Subgroup operations only in the shaders named for them (the tensor-core matmul's
    // launcher requires subgroups too): the others must run on devices without them. f16
    // and cooperative matrices only where the shader enables them.
    use naga::valid::Capabilities;
    let mut capabilities = Capabilities::default();
    let subgroup_module = name.trim_end_matches("_f16").ends_with("_subgroups");
    if subgroup_module || name.starts_with("matmul_coop") {
        capabilities |= Capabilities::SUBGROUP;
    }
    if source.contains("enable f16;") {
        capabilities |= Capabilities::SHADER_FLOAT16;
    }
    if source.contains("enable wgpu_cooperative_matrix;") {
        capabilities |= Capabilities::COOPERATIVE_MATRIX;
    }
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
    if let Err(e) = validator.validate(&module) {
        panic!("{name}: {}", e.emit_to_string(source));
    }
}

#[test]
fn every_shader_parses_and_validates() {
    let shaders = rezero::kernels::shaders();
    for shader in &shaders {
        validate(shader.name(), shader.wgsl());
    }
    // Every file is compiled: it is the source of a shader, or a prelude included in one.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            shaders.iter().any(|s| s.wgsl().contains(text.as_str())),
            "{} is not built by any launcher",
            path.display()
        );
        files += 1;
    }
    assert!(
        files >= 30,
        "found only {files} shader files in {}",
        dir.display()
    );
    // Pipelines are cached by shader name: each module (each element type too) has its own.
    let mut names: Vec<_> = shaders.iter().map(|s| s.name()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "two shader modules share a name");
}

/// Bytes of the shader's one uniform variable, from naga's layout of the parsed module.
fn uniform_bytes(name: &str, source: &str) -> usize {
    let module = naga::front::wgsl::parse_str(source).unwrap();
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let uniforms: Vec<_> = module
        .global_variables
        .iter()
        .filter(|(_, v)| v.space == naga::AddressSpace::Uniform)
        .collect();
    assert_eq!(uniforms.len(), 1, "{name}: one uniform variable");
    layouter[uniforms[0].1.ty].size as usize
}

#[test]
fn every_uniform_struct_has_the_size_of_its_rust_struct() {
    for shader in rezero::kernels::shaders() {
        assert_eq!(
            uniform_bytes(shader.name(), shader.wgsl()),
            shader.uniform_bytes(),
            "{}: the WGSL Params and the Rust Params differ in size",
            shader.name()
        );
    }
}
