//! Bounded-time fuzzing of the file loaders: a few hundred seeded mutations of a valid IDX
//! image file (raw and gzip), IDX label file, CIFAR-10 batch and checkpoint, each handed to
//! its loader, which must return a value or a clean error: never panic, never hold more
//! than a bounded amount of memory. Inputs that never end (devices) are refused at once.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rezero::data::{cifar, idx};
use rezero::train::checkpoint;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rezero-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A valid safetensors checkpoint of two F32 tensors, built without a GPU.
fn checkpoint_bytes() -> Vec<u8> {
    use safetensors::{Dtype, tensor::TensorView};
    let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    let b = vec![1.0f32; 3];
    let views = vec![
        (
            "w".to_string(),
            TensorView::new(Dtype::F32, vec![3, 4], bytemuck::cast_slice(&a)).unwrap(),
        ),
        (
            "b".to_string(),
            TensorView::new(Dtype::F32, vec![3], bytemuck::cast_slice(&b)).unwrap(),
        ),
    ];
    let meta = HashMap::from([("model".to_string(), "mlp".to_string())]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

/// One random mutation: flipped bytes, a header field set to an extreme, a truncation,
/// random bytes appended, or a slice repeated.
fn mutate(rng: &mut rand::rngs::StdRng, valid: &[u8]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => {
            let at = rng.random_range(0..bytes.len().clamp(1, 24)) & !3;
            let extreme: u32 = [0, 1, u32::MAX, 0x8000_0000, 0x0000_0803][rng.random_range(0..5)];
            for (k, b) in extreme.to_be_bytes().iter().enumerate() {
                if at + k < bytes.len() {
                    bytes[at + k] = *b;
                }
            }
        }
        2 => bytes.truncate(rng.random_range(0..bytes.len())),
        3 => bytes.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        _ => {
            let start = rng.random_range(0..bytes.len());
            let piece = bytes[start..].to_vec();
            bytes.extend(piece);
        }
    }
    bytes
}

/// Peak resident memory of this process so far (Linux), in bytes.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn fuzz(dir: &Path, name: &str, valid: &[u8], load: impl Fn(&Path) -> bool, rounds: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(name.len() as u64 * 7919);
    let path = dir.join(name);
    std::fs::write(&path, valid).unwrap();
    assert!(load(&path), "{name}: the valid file loads");
    for round in 0..rounds {
        let bytes = mutate(&mut rng, valid);
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&path)));
        assert!(
            outcome.is_ok(),
            "{name}: round {round} panicked on {} bytes",
            bytes.len()
        );
    }
}

#[test]
fn loaders_survive_mutated_and_endless_files() {
    let dir = scratch();
    let mut images = Vec::new();
    let pixels: Vec<u8> = (0..5 * 28 * 28).map(|i| (i % 251) as u8).collect();
    idx::write_images(&dir.join("seed-images"), 5, 28, 28, &pixels).unwrap();
    images.extend(std::fs::read(dir.join("seed-images")).unwrap());
    idx::write_labels(&dir.join("seed-labels"), &[1, 2, 3, 4, 5]).unwrap();
    let labels = std::fs::read(dir.join("seed-labels")).unwrap();
    let batch_pixels: Vec<u8> = (0..4 * 3072).map(|i| (i % 199) as u8).collect();
    cifar::write_batch(&dir.join("seed-batch"), &batch_pixels, &[0, 3, 9, 1]).unwrap();
    let batch = std::fs::read(dir.join("seed-batch")).unwrap();

    fuzz(
        &dir,
        "images",
        &images,
        |p| idx::read_images(p).is_ok(),
        150,
    );
    fuzz(
        &dir,
        "images.gz",
        &gz(&images),
        |p| idx::read_images(p).is_ok(),
        150,
    );
    fuzz(
        &dir,
        "labels",
        &labels,
        |p| idx::read_labels(p).is_ok(),
        100,
    );
    fuzz(
        &dir,
        "batch.bin",
        &batch,
        |p| cifar::read_batch(p).is_ok(),
        100,
    );
    fuzz(
        &dir,
        "model.safetensors",
        &checkpoint_bytes(),
        |p| checkpoint::load(p).is_ok(),
        150,
    );

    // A gzip bomb: a small file that would decompress far past any IDX file.
    let bomb = gz(&vec![0u8; 300 << 20]);
    std::fs::write(dir.join("bomb.gz"), &bomb).unwrap();
    let err = idx::read_images(&dir.join("bomb.gz"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than"), "{err}");
    // Inputs that never end: refused before anything is read.
    if Path::new("/dev/zero").exists() {
        for load in [
            |p: &Path| idx::read_images(p).err().map(|e| e.to_string()),
            |p: &Path| cifar::read_batch(p).err().map(|e| e.to_string()),
            |p: &Path| checkpoint::load(p).err().map(|e| e.to_string()),
            |p: &Path| {
                rezero::data::text::TextSplits::from_file(p, 8)
                    .err()
                    .map(|e| e.to_string())
            },
        ] {
            let err = load(Path::new("/dev/zero")).expect("refused");
            assert!(err.contains("not a regular file"), "{err}");
        }
    }
    if let Some(peak) = peak_memory() {
        assert!(peak < 2 << 30, "peak memory {peak} bytes");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
