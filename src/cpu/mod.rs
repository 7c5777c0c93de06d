//! Plain-loop CPU reference of every kernel: the ground truth for tests and benchmarks.
//! Sums are accumulated in f64 so the reference is more accurate than the GPU.

pub mod attention;
pub mod batchnorm;
pub mod bias;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod heads;
pub mod layernorm;
pub mod matmul;
pub mod optim;
pub mod reduce;
pub mod rezero;
pub mod softmax;

use rand::{RngExt, SeedableRng};

/// `len` seeded values uniform in [lo, hi): the inputs of tests and benchmarks.
pub fn seeded(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// `len` seeded integers in [0, below).
pub fn seeded_ids(seed: u64, len: usize, below: u32) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(0..below)).collect()
}

/// `*out = v`, or `*out += v` when `accumulate`: how a backward writes a gradient.
pub fn put(out: &mut f32, v: f32, accumulate: bool) {
    *out = if accumulate { *out + v } else { v };
}
