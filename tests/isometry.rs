//! The Jacobian through the tape: exactly the identity for a ReZero stack at α = 0, and
//! equal to finite differences of an f64 forward pass for a stack with α ≠ 0.

mod common;

use common::assert_close;
use common::reference64::{linear64, numeric_grad, relu64, to64};
use rezero::analysis::isometry::{Spectrum, jacobian, singular_values};
use rezero::nn::{Mlp, MlpConfig, MlpVariant, init};

fn mlp(gpu: &rezero::Gpu, variant: MlpVariant, depth: usize, width: usize, alpha: f32) -> Mlp {
    Mlp::new(
        gpu,
        MlpConfig {
            variant,
            depth,
            width,
            inputs: width,
            classes: 2,
            alpha_init: alpha,
            seed: 9,
        },
    )
    .unwrap()
}

#[test]
fn rezero_at_alpha_zero_is_the_identity() {
    let gpu = require_gpu!();
    let width = 24;
    let model = mlp(gpu, MlpVariant::Rezero, 50, width, 0.0);
    let x = init::normal(1, width, 1.0);
    let (outputs, j) =
        pollster::block_on(jacobian(gpu, &x, |tape, x| model.blocks(tape, x))).unwrap();
    assert_eq!((outputs, j.len()), (width, width * width));
    let identity: Vec<f32> = (0..width * width)
        .map(|i| if i / width == i % width { 1.0 } else { 0.0 })
        .collect();
    assert_close("J", &j, &identity, 0.0, 0.0);
    let spectrum = Spectrum::new(singular_values(width, width, &j).unwrap());
    assert!(
        (spectrum.mean_squared - 1.0).abs() < 1e-9
            && (spectrum.min - 1.0).abs() < 1e-9
            && (spectrum.max - 1.0).abs() < 1e-9
    );
}

#[test]
fn jacobian_matches_finite_differences() {
    let gpu = require_gpu!();
    // More rows than one pass holds is not needed for the check; 3 blocks of width 5.
    let (depth, width) = (3, 5);
    let model = mlp(gpu, MlpVariant::Rezero, depth, width, 0.4);
    let x = init::normal(2, width, 1.0);
    let (_, j) = pollster::block_on(jacobian(gpu, &x, |tape, x| model.blocks(tape, x))).unwrap();
    let weights: Vec<Vec<f64>> = model
        .w
        .iter()
        .map(|p| to64(&pollster::block_on(gpu.read_f32(&p.value, p.len())).unwrap()))
        .collect();
    let zero_bias = vec![0.0; width];
    let forward = |x: &[f64]| -> Vec<f64> {
        let mut h = x.to_vec();
        for w in &weights {
            let f = relu64(&linear64(&h, w, &zero_bias, 1, width, width));
            h = h.iter().zip(&f).map(|(a, b)| a + 0.4 * b).collect();
        }
        h
    };
    for out in 0..width {
        let want = numeric_grad(|v| forward(v)[out], &x);
        assert_close(
            &format!("row {out} of J"),
            &j[out * width..(out + 1) * width],
            &want,
            2e-5,
            1e-3,
        );
    }
}

#[test]
fn plain_deep_stack_is_far_from_isometry() {
    let gpu = require_gpu!();
    let width = 16;
    let model = mlp(gpu, MlpVariant::Plain, 30, width, 0.0);
    let x = init::normal(3, width, 1.0);
    let (_, j) = pollster::block_on(jacobian(gpu, &x, |tape, x| model.blocks(tape, x))).unwrap();
    let spectrum = Spectrum::new(singular_values(width, width, &j).unwrap());
    // ReLU layers zero about half the units each: the spectrum collapses or spreads.
    assert!(
        spectrum.max / spectrum.min.max(1e-30) > 10.0,
        "{spectrum:?}"
    );
    assert!(spectrum.histogram(5).lines().count() == 5);
}

#[test]
fn a_jacobian_holding_nan_or_infinity_is_an_error_not_a_hang() {
    for bad in [f32::NAN, f32::INFINITY] {
        let err = singular_values(2, 2, &[1.0, bad, 0.0, 1.0]).unwrap_err();
        assert!(err.to_string().contains("NaN or infinite"), "{err}");
    }
    assert!(singular_values(2, 2, &[1.0; 3]).is_err(), "a wrong count");
}
