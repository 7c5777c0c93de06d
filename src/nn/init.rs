//! Weight initialisation from a seed: Xavier-normal with a gain, and the normal samples
//! behind it (Box-Muller, so no extra crate).

use rand::{RngExt, SeedableRng};

/// `len` samples of N(0, std²) from `seed`.
pub fn normal(seed: u64, len: usize, std: f32) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            let u1: f64 = rng.random_range(f64::EPSILON..1.0);
            let u2: f64 = rng.random_range(0.0..1.0);
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * std
        })
        .collect()
}

/// Xavier-normal weights [fan_out, fan_in]: std = gain · √(2 / (fan_in + fan_out)).
/// With gain √2 and a square matrix this is He's √(2 / fan_in), right for ReLU.
pub fn xavier_normal(seed: u64, fan_out: usize, fan_in: usize, gain: f32) -> Vec<f32> {
    let std = gain * (2.0 / (fan_in + fan_out) as f32).sqrt();
    normal(seed, fan_out * fan_in, std)
}

#[cfg(test)]
mod tests {
    #[test]
    fn normal_has_the_asked_moments() {
        let x = super::normal(3, 200_000, 2.0);
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.02, "std {}", var.sqrt());
    }
}
