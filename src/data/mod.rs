//! Image data sets (MNIST, Fashion-MNIST, CIFAR-10) loaded from their usual files,
//! normalised as is usual for each, and shuffled mini-batches with a seed.
//! `scripts/fetch-data.sh` obtains the files.

pub mod augment;
pub mod cifar;
pub mod idx;
pub mod text;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};

/// The data sets rezero reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum DatasetName {
    Mnist,
    FashionMnist,
    #[cfg_attr(feature = "cli", value(name = "cifar10", alias = "cifar-10"))]
    Cifar10,
}

impl std::str::FromStr for DatasetName {
    type Err = Error;
    fn from_str(s: &str) -> Result<DatasetName> {
        match s {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" => Ok(DatasetName::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetName::Cifar10),
            _ => Err(Error::Invalid {
                what: "dataset".into(),
                why: format!("'{s}' is not one of mnist, fashion-mnist, cifar10"),
            }),
        }
    }
}

impl DatasetName {
    pub fn name(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Cifar10 => "cifar10",
        }
    }

    /// Per-channel (mean, std) of the training pixels scaled to [0, 1].
    fn normalisation(self) -> &'static [(f32, f32)] {
        match self {
            DatasetName::Mnist => &[(0.1307, 0.3081)],
            DatasetName::FashionMnist => &[(0.2860, 0.3530)],
            DatasetName::Cifar10 => &[(0.4914, 0.2470), (0.4822, 0.2435), (0.4465, 0.2616)],
        }
    }
}

/// A split of an image data set, normalised: images [count, channels, height, width].
#[derive(Clone, Debug)]
pub struct Images {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    /// Per channel: the normalised value of a black pixel (what padding fills with).
    pub background: Vec<f32>,
}

impl Images {
    /// Values per image.
    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The images and labels at `indices`, concatenated: ([n, features], [n]).
    pub fn gather(&self, indices: &[usize]) -> (Vec<f32>, Vec<u32>) {
        let f = self.features();
        let mut x = Vec::with_capacity(indices.len() * f);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            x.extend_from_slice(&self.images[i * f..(i + 1) * f]);
            y.push(self.labels[i]);
        }
        (x, y)
    }

    /// Keeps the first `n` examples (for quick runs).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.count);
        self.images.truncate(n * self.features());
        self.labels.truncate(n);
        self.count = n;
    }

    fn from_bytes(
        name: DatasetName,
        pixels: &[u8],
        labels: Vec<u8>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Images {
        let plane = height * width;
        let norm = name.normalisation();
        let images = pixels.iter().enumerate().map(|(i, &p)| {
            let (mean, std) = norm[(i / plane) % channels];
            (p as f32 / 255.0 - mean) / std
        });
        Images {
            images: images.collect(),
            labels: labels.into_iter().map(u32::from).collect(),
            count: pixels.len() / (channels * plane),
            channels,
            height,
            width,
            classes: 10,
            background: norm.iter().map(|(mean, std)| -mean / std).collect(),
        }
    }
}

/// The example order of one epoch: a shuffle seeded by (seed, epoch), the same for every
/// run with that seed.
pub fn epoch_order(count: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    order.shuffle(&mut rng);
    order
}

/// `dir/name` if it exists, else `dir/name.gz`, else a clear error; one that exists but
/// is not a regular file (a directory, a pipe) is named as what it is.
fn find(dir: &Path, name: &str, set: DatasetName) -> Result<PathBuf> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if present(&candidate)? {
            return Ok(candidate);
        }
    }
    Err(Error::Data {
        path: dir.join(format!("{name}[.gz]")),
        why: format!(
            "not found; `scripts/fetch-data.sh {} {}` downloads it",
            set.name(),
            dir.display()
        ),
    })
}

fn load_idx(set: DatasetName, dir: &Path, prefix: &str) -> Result<Images> {
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"), set)?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"), set)?;
    let (count, rows, cols, pixels) = idx::read_images(&images_path)?;
    let labels = idx::read_labels(&labels_path)?;
    if labels.len() != count {
        return Err(Error::Data {
            path: labels_path,
            why: format!(
                "{} labels for the {count} images of {}",
                labels.len(),
                images_path.display()
            ),
        });
    }
    if let Some(i) = labels.iter().position(|&l| l > 9) {
        return Err(Error::Data {
            path: labels_path,
            why: format!("label {i} is {}, expected 0..9", labels[i]),
        });
    }
    Ok(Images::from_bytes(set, &pixels, labels, 1, rows, cols))
}

fn load_cifar(dir: &Path, files: &[&str]) -> Result<Images> {
    let sub = dir.join("cifar-10-batches-bin");
    let dir = if sub.is_dir() { sub } else { dir.to_path_buf() };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for file in files {
        let path = dir.join(file);
        if !present(&path)? {
            return Err(Error::Data { path, why: "not found; `scripts/fetch-data.sh cifar10 DIR` downloads CIFAR-10 (binary version)".into() });
        }
        let (p, l) = cifar::read_batch(&path)?;
        pixels.extend(p);
        labels.extend(l);
    }
    Ok(Images::from_bytes(
        DatasetName::Cifar10,
        &pixels,
        labels,
        3,
        32,
        32,
    ))
}

/// Whether `path` is a regular file: false if nothing is there, an error naming what is
/// there if it is something else (a directory, a pipe that would block a reader).
fn present(path: &Path) -> Result<bool> {
    match crate::files::check_regular_file(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, "read", e)),
    }
}

/// (train, test) splits of `set` from the files in `dir`.
pub fn load(set: DatasetName, dir: &Path) -> Result<(Images, Images)> {
    let (train, test) = match set {
        DatasetName::Mnist | DatasetName::FashionMnist => {
            (load_idx(set, dir, "train")?, load_idx(set, dir, "t10k")?)
        }
        DatasetName::Cifar10 => {
            let train: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
            let train: Vec<&str> = train.iter().map(String::as_str).collect();
            (
                load_cifar(dir, &train)?,
                load_cifar(dir, &["test_batch.bin"])?,
            )
        }
    };
    // A model is built for the training images: test images of another size would only
    // fail after training, with a shape error.
    let size = |i: &Images| (i.channels, i.height, i.width);
    if size(&train) != size(&test) {
        return Err(Error::data(
            dir,
            format!(
                "the training images are {:?} (channels, height, width) but the test images \
                 are {:?}",
                size(&train),
                size(&test)
            ),
        ));
    }
    Ok((train, test))
}

/// (train, test) splits of `set` from `dir` (default `data/NAME`, where
/// `scripts/fetch-data.sh` puts it), each cut to its first `limit` examples if given.
pub fn load_limited(
    set: DatasetName,
    dir: Option<&Path>,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<(Images, Images)> {
    let default = PathBuf::from("data").join(set.name());
    let (mut train, mut test) = load(set, dir.unwrap_or(&default))?;
    if let Some(n) = train_limit {
        train.truncate(n);
    }
    if let Some(n) = test_limit {
        test.truncate(n);
    }
    Ok((train, test))
}
