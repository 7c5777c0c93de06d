//! Every shader the launchers build (with the tile prelude where it is included) parses
//! and validates with naga, and every WGSL file in shaders/ is one of them.

use std::path::Path;

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    );
    if let Err(e) = validator.validate(&module) {
        panic!("{name}: {}", e.emit_to_string(source));
    }
}

#[test]
fn every_shader_parses_and_validates() {
    let shaders = rezero::kernels::shaders();
    for shader in &shaders {
        validate(shader.name, shader.wgsl);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap();
        if stem != "tile" {
            // (the tile prelude calls hooks its includers define: validated with them)
            assert!(
                shaders.iter().any(|s| s.name == stem),
                "{} is not built by any launcher",
                path.display()
            );
        }
        files += 1;
    }
    assert_eq!(
        files,
        shaders.len() + 1,
        "one file per family plus the prelude"
    );
}
