//! Data loaders on small files made in the real formats: values, normalisation, and clear
//! errors for missing, truncated and malformed files.

use std::path::PathBuf;

use rezero::Error;
use rezero::data::{self, DatasetName, cifar, idx};

/// A fresh directory under the system temp dir, named after the test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rezero-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_idx_set(dir: &std::path::Path, gz: bool, train: usize, test: usize) {
    let ext = if gz { ".gz" } else { "" };
    for (prefix, count) in [("train", train), ("t10k", test)] {
        let pixels: Vec<u8> = (0..count * 28 * 28).map(|i| (i % 256) as u8).collect();
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        idx::write_images(
            &dir.join(format!("{prefix}-images-idx3-ubyte{ext}")),
            count,
            28,
            28,
            &pixels,
        )
        .unwrap();
        idx::write_labels(
            &dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")),
            &labels,
        )
        .unwrap();
    }
}

#[test]
fn idx_raw_and_gz_load_and_normalise() {
    for gz in [false, true] {
        let dir = temp_dir(&format!("idx-{gz}"));
        write_idx_set(&dir, gz, 7, 3);
        let (train, test) = data::load(DatasetName::FashionMnist, &dir).unwrap();
        assert_eq!(
            (train.count, test.count, train.features(), train.classes),
            (7, 3, 784, 10)
        );
        assert_eq!(train.labels[..4], [0, 1, 2, 3]);
        // pixel 5 of image 0 is 5: (5/255 - 0.2860) / 0.3530
        let want = (5.0 / 255.0 - 0.2860) / 0.3530;
        assert!(
            (train.images[5] - want).abs() < 1e-6,
            "{} vs {want}",
            train.images[5]
        );
        let (x, y) = train.gather(&[6, 1]);
        assert_eq!((x.len(), y), (2 * 784, vec![6, 1]));
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn missing_truncated_and_wrong_files_name_the_file() {
    let dir = temp_dir("bad-idx");
    let err = data::load(DatasetName::Mnist, &dir).unwrap_err();
    assert!(
        matches!(&err, Error::Data { why, .. } if why.contains("fetch-data.sh")),
        "{err}"
    );

    write_idx_set(&dir, false, 4, 2);
    let images = dir.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 10]).unwrap();
    let err = data::load(DatasetName::Mnist, &dir).unwrap_err();
    assert!(
        matches!(&err, Error::Data { path, why } if path == &images && why.contains("the file holds")),
        "{err}"
    );

    let mut wrong = bytes.clone();
    wrong[3] = 0x01; // label magic in an image file
    std::fs::write(&images, &wrong).unwrap();
    let err = data::load(DatasetName::Mnist, &dir).unwrap_err();
    assert!(err.to_string().contains("magic number"), "{err}");

    std::fs::write(&images, &bytes).unwrap();
    idx::write_labels(&dir.join("train-labels-idx1-ubyte"), &[1, 2, 3]).unwrap();
    let err = data::load(DatasetName::Mnist, &dir).unwrap_err();
    assert!(
        err.to_string().contains("3 labels for the 4 images"),
        "{err}"
    );

    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        b"\x1f\x8bnot gzip at all",
    )
    .unwrap();
    idx::write_labels(&dir.join("train-labels-idx1-ubyte"), &[1, 2, 3, 4]).unwrap();
    let err = data::load(DatasetName::Mnist, &dir).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cifar_batches_load_normalise_and_validate() {
    let dir = temp_dir("cifar");
    let write = |name: &str, count: usize| {
        let pixels: Vec<u8> = (0..count * 3072)
            .map(|i| (i / 1024 % 3 * 100) as u8)
            .collect();
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        cifar::write_batch(&dir.join(name), &pixels, &labels).unwrap();
    };
    for i in 1..=5 {
        write(&format!("data_batch_{i}.bin"), 2);
    }
    write("test_batch.bin", 3);
    let (train, test) = data::load(DatasetName::Cifar10, &dir).unwrap();
    assert_eq!(
        (train.count, test.count, train.channels, train.features()),
        (10, 3, 3, 3072)
    );
    // The green plane of the first image holds 100: (100/255 - 0.4822) / 0.2435
    let want = (100.0 / 255.0 - 0.4822) / 0.2435;
    assert!((train.images[1024] - want).abs() < 1e-5);

    std::fs::write(dir.join("test_batch.bin"), vec![0u8; 3073 + 5]).unwrap();
    let err = data::load(DatasetName::Cifar10, &dir).unwrap_err();
    assert!(err.to_string().contains("whole number"), "{err}");
    let mut record = vec![0u8; 3073];
    record[0] = 12;
    std::fs::write(dir.join("test_batch.bin"), record).unwrap();
    let err = data::load(DatasetName::Cifar10, &dir).unwrap_err();
    assert!(err.to_string().contains("label 12"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn epoch_order_is_a_seeded_permutation() {
    let a = data::epoch_order(100, 7, 0);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_eq!(
        a,
        data::epoch_order(100, 7, 0),
        "same seed and epoch, same order"
    );
    assert_ne!(a, data::epoch_order(100, 7, 1), "a new order each epoch");
    assert_ne!(
        a,
        data::epoch_order(100, 8, 0),
        "a new order for another seed"
    );
}

#[test]
fn train_and_test_images_of_different_sizes_are_refused_at_load() {
    let dir = temp_dir("sizes");
    write_idx_set(&dir, true, 4, 2);
    // Test images of 14×14 beside 28×28 training images.
    let pixels = vec![7u8; 2 * 14 * 14];
    idx::write_images(&dir.join("t10k-images-idx3-ubyte.gz"), 2, 14, 14, &pixels).unwrap();
    let err = data::load(DatasetName::FashionMnist, &dir).unwrap_err();
    assert!(matches!(err, Error::Data { .. }), "{err}");
    assert!(
        err.to_string().contains("(1, 28, 28)") && err.to_string().contains("(1, 14, 14)"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
