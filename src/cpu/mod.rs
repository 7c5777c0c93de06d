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

/// The spacing of f16 values just above 1 (2⁻¹⁰): rounding to f16 moves a normal value by
/// at most half of it, relatively; two roundings of nearly equal values differ by at most
/// one spacing.
pub const F16_EPSILON: f32 = 0.000_976_562_5;

/// `values` rounded to the nearest f16 (ties to even; ±inf beyond f16's range), as f32:
/// what an f16 kernel's reference computes on.
pub fn round_f16(values: &[f32]) -> Vec<f32> {
    values
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect()
}

/// `values` as f16 (rounded to nearest, ties to even): an f16 buffer's contents.
pub fn to_f16(values: &[f32]) -> Vec<half::f16> {
    values.iter().map(|&v| half::f16::from_f32(v)).collect()
}

/// `*out = v`, or `*out += v` when `accumulate`: how a backward writes a gradient.
pub fn put(out: &mut f32, v: f32, accumulate: bool) {
    *out = if accumulate { *out + v } else { v };
}
