//! The tuning table: choices kept across runs in a cache file per adapter and driver,
//! corrupt or foreign files ignored; `Auto` runs the table's choice or a default and never
//! measures on its own; an explicit tune measures what it met.

mod common;

use std::path::PathBuf;

use rezero::gpu::tuning::{DeviceId, TuningTable, format, parse};
use rezero::kernels::autotune;
use rezero::kernels::matmul::{Matmul, MatmulVariant, default_variant, matmul, tuning_key};
use rezero::{Gpu, GpuOptions};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rezero-tuning-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn device() -> DeviceId {
    DeviceId {
        adapter: "Test GPU 9000".into(),
        driver: "driver 1.2.3".into(),
    }
}

#[test]
fn tables_round_trip_and_bad_text_is_refused() {
    let mut entries = std::collections::BTreeMap::new();
    entries.insert(
        "matmul/nn/v4/m64/n64/k64/b1".to_string(),
        "reg8x4".to_string(),
    );
    entries.insert(
        "matmul/nt/s/m8/n8/k8/b1".to_string(),
        "blocked:64x64x16:8x8".to_string(),
    );
    let text = format(&device(), &entries);
    assert_eq!(parse(&text).unwrap(), (device(), entries));
    for (bad, why) in [
        ("", "first line"),
        ("rezero tuning 2\nadapter\tx\ndriver\ty\n", "first line"),
        ("rezero tuning 1\ndriver\ty\n", "adapter"),
        ("rezero tuning 1\nadapter\tx\n", "driver"),
        (
            "rezero tuning 1\nadapter\tx\ndriver\ty\nno tab here\n",
            "line 4",
        ),
        ("rezero tuning 1\nadapter\tx\ndriver\ty\nk\t\n", "line 4"),
        (
            "rezero tuning 1\nadapter\tx\ndriver\ty\nk\ta\tb\n",
            "line 4",
        ),
    ] {
        let err = parse(bad).unwrap_err();
        assert!(err.contains(why), "{bad:?}: {err}");
    }
}

#[test]
fn a_cache_file_keeps_choices_and_corrupt_or_foreign_ones_are_ignored() {
    let dir = scratch("file");
    let path = dir.join(device().file_name());
    assert!(
        device().file_name().starts_with("test-gpu-9000-"),
        "{}",
        device().file_name()
    );

    let mut table = TuningTable::open(device(), Some(&dir));
    assert!(table.get("k").is_none() && !path.exists());
    table.set("k", "reg8x4");
    assert!(path.exists());
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(
        TuningTable::open(device(), Some(&dir)).get("k"),
        Some("reg8x4")
    );

    // Another driver: another file name, so the old choices are not used.
    let newer = DeviceId {
        driver: "driver 2.0".into(),
        ..device()
    };
    assert_ne!(newer.file_name(), device().file_name());
    assert!(
        TuningTable::open(newer.clone(), Some(&dir))
            .get("k")
            .is_none()
    );
    // A file copied from another device under this one's name is ignored.
    std::fs::copy(&path, dir.join(newer.file_name())).unwrap();
    assert!(TuningTable::open(newer, Some(&dir)).get("k").is_none());

    // Corrupt, truncated, binary or oversized files are ignored, never an error.
    let text = std::fs::read_to_string(&path).unwrap();
    let oversized = format!("{text}{}", "x\ty\n".repeat(300_000));
    for bad in [
        &text[..10],
        "\u{0}\u{1}garbage",
        "rezero tuning 1\nadapter\tTest GPU 9000\n",
        oversized.as_str(),
    ] {
        std::fs::write(&path, bad).unwrap();
        assert!(TuningTable::open(device(), Some(&dir)).get("k").is_none());
    }
    // A directory where the file should be, and a cache dir that cannot be made: the
    // table still works for this process.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let mut table = TuningTable::open(device(), Some(&dir));
    table.set("k", "naive");
    assert_eq!(table.get("k"), Some("naive"));
    let blocked = dir.join("a-file");
    std::fs::write(&blocked, "not a directory").unwrap();
    let mut table = TuningTable::open(device(), Some(&blocked.join("sub")));
    table.set("k", "naive");
    assert_eq!(table.get("k"), Some("naive"));
}

#[test]
fn auto_runs_the_table_or_a_default_and_measures_only_when_asked() {
    let Some(_) = common::gpu() else { return };
    let dir = scratch("gpu");
    let options = GpuOptions {
        tuning_cache: Some(dir.clone()),
        ..Default::default()
    };
    let desc = Matmul::new(48, 40, 36);
    let key = tuning_key(&desc);
    let run = |gpu: &Gpu| {
        let (a, b, c) = (
            gpu.zeroed_f32("a", 48 * 36),
            gpu.zeroed_f32("b", 36 * 40),
            gpu.zeroed_f32("c", 48 * 40),
        );
        let mut used = MatmulVariant::Auto;
        pollster::block_on(gpu.run(|pass| {
            used = matmul(gpu, pass, &c, &a, &b, None, &desc)?;
            Ok(())
        }))
        .unwrap();
        used
    };
    // A class the table lacks runs the adapter's default, measured nothing, and is noted.
    let first = pollster::block_on(Gpu::new(&options)).unwrap();
    let default = default_variant(&first, &desc);
    assert_eq!(run(&first), default);
    assert_eq!(first.tuned(&key), None, "a launcher measured");
    assert_eq!(first.untuned_keys(), vec![key.clone()]);
    // Asked, the tune measures it and keeps the winner (in the cache file too).
    let requests = autotune::take_untuned(&first);
    let tuned = pollster::block_on(autotune::tune(&first, &requests)).unwrap();
    assert_eq!(tuned.len(), 1);
    assert_eq!(tuned[0].key, key);
    assert!(tuned[0].times.len() >= 2, "{:?}", tuned[0].times);
    let chosen = tuned[0].winner.clone();
    assert_eq!(first.tuned(&key), Some(chosen.clone()));
    assert!(first.untuned_keys().is_empty());
    assert_eq!(run(&first).name(), chosen);
    drop(first);
    // A new device (a new run) reads the choice back.
    let second = pollster::block_on(Gpu::new(&options)).unwrap();
    assert_eq!(second.tuned(&key), Some(chosen.clone()));
    assert_eq!(run(&second).name(), chosen);
    // A choice this device cannot run (a tile larger than its workgroup memory), or one
    // that is not a variant at all, gives way to the default, and the class is untuned.
    for bad in ["blocked:256x256x64:8x8", "no-such-kernel"] {
        second.set_tuned(&key, bad);
        assert_eq!(run(&second), default_variant(&second, &desc));
        assert_eq!(second.untuned_keys(), vec![key.clone()], "{bad}");
        autotune::take_untuned(&second);
    }
}

#[test]
fn the_committed_tables_parse() {
    let text = include_str!("../tuning/devices.tuning");
    let tables: Vec<&str> = text
        .split("rezero tuning 1\n")
        .filter(|t| !t.trim().is_empty())
        .collect();
    assert!(!tables.is_empty());
    for body in tables {
        let (device, entries) = parse(&format!("rezero tuning 1\n{body}")).unwrap();
        assert!(!device.adapter.is_empty());
        for (key, choice) in entries {
            let ok = if key.starts_with("matmul/") {
                choice.parse::<MatmulVariant>().is_ok()
            } else {
                choice
                    .parse::<rezero::kernels::conv2d::ConvVariant>()
                    .is_ok()
            };
            assert!(ok, "{}: {key} -> {choice}", device.adapter);
        }
    }
}
