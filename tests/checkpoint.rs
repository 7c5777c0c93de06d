//! Checkpoints: an MLP saved and loaded gives the same parameters; bad files and
//! mismatched shapes get clear errors; no temporary file is left behind; a diverged model
//! never replaces a good checkpoint.

mod common;

use std::collections::HashMap;

use rezero::Error;
use rezero::nn::{Mlp, MlpConfig, MlpVariant};
use rezero::tape::Param;
use rezero::train::checkpoint::{self, load_mlp, save_mlp};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rezero-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn mlp_round_trip() {
    let gpu = require_gpu!();
    let dir = temp_dir("round-trip");
    for variant in MlpVariant::ALL {
        let model = Mlp::new(
            gpu,
            MlpConfig {
                variant,
                depth: 3,
                width: 8,
                inputs: 5,
                classes: 4,
                alpha_init: 0.25,
                seed: 7,
            },
        )
        .unwrap();
        let path = dir.join(format!("{}.safetensors", variant.name()));
        pollster::block_on(save_mlp(gpu, &model, &path)).unwrap();
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(
            files,
            1 + MlpVariant::ALL.iter().position(|&v| v == variant).unwrap()
        );
        let loaded = load_mlp(gpu, &path).unwrap();
        assert_eq!(loaded.config.variant, variant);
        assert_eq!(
            (
                loaded.config.depth,
                loaded.config.width,
                loaded.config.alpha_init
            ),
            (3, 8, 0.25)
        );
        for (a, b) in model.params().iter().zip(loaded.params()) {
            assert_eq!(a.name, b.name);
            assert_eq!(
                pollster::block_on(gpu.read_f32(&a.value, a.len())).unwrap(),
                pollster::block_on(gpu.read_f32(&b.value, b.len())).unwrap(),
                "{}",
                a.name
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_files_and_shapes_are_data_errors() {
    let gpu = require_gpu!();
    let dir = temp_dir("bad");
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"\x08\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    let err = checkpoint::load(&garbage).unwrap_err();
    assert!(
        matches!(&err, Error::Data { path, .. } if path == &garbage),
        "{err}"
    );

    let p = Param::new(gpu, "w", &[2, 3], &[1.0; 6], true).unwrap();
    let path = dir.join("w.safetensors");
    pollster::block_on(checkpoint::save(gpu, &path, &[&p], HashMap::new())).unwrap();
    let loaded = checkpoint::load(&path).unwrap();
    assert_eq!(loaded.tensors["w"], (vec![2, 3], vec![1.0; 6]));
    let wrong = Param::new(gpu, "w", &[3, 2], &[0.0; 6], true).unwrap();
    let err = loaded.restore(gpu, &path, &[&wrong]).unwrap_err();
    assert!(
        err.to_string()
            .contains("has shape [2, 3], the model wants [3, 2]"),
        "{err}"
    );
    let other = Param::new(gpu, "v", &[1], &[0.0], true).unwrap();
    assert!(
        loaded
            .restore(gpu, &path, &[&other])
            .unwrap_err()
            .to_string()
            .contains("no tensor named v")
    );
    let err = load_mlp(gpu, &path).unwrap_err();
    assert!(err.to_string().contains("metadata has no 'model'"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn non_finite_values_never_replace_a_good_checkpoint() {
    let gpu = require_gpu!();
    let dir = temp_dir("diverged");
    let path = dir.join("model.safetensors");
    let good = Param::new(gpu, "w", &[2, 2], &[1.0, 2.0, 3.0, 4.0], true).unwrap();
    pollster::block_on(checkpoint::save(gpu, &path, &[&good], HashMap::new())).unwrap();
    let before = std::fs::read(&path).unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let diverged = Param::new(gpu, "w", &[2, 2], &[1.0, bad, 3.0, 4.0], true).unwrap();
        let err = pollster::block_on(checkpoint::save(gpu, &path, &[&diverged], HashMap::new()))
            .unwrap_err();
        assert!(matches!(err, Error::Diverged { .. }), "{err}");
        assert!(
            err.to_string().contains("not saved: w holds") && err.to_string().contains("kept"),
            "{err}"
        );
        let again = pollster::block_on(checkpoint::save(gpu, &path, &[&diverged], HashMap::new()));
        assert!(!checkpoint::saved_unless_diverged(again).unwrap());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the good checkpoint is unchanged"
        );
    }
    // A rename that fails (a folder where the file goes) leaves no temporary file behind.
    let blocked = dir.join("blocked.safetensors");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("inside"), b"x").unwrap();
    assert!(pollster::block_on(checkpoint::save(gpu, &blocked, &[&good], HashMap::new())).is_err());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
