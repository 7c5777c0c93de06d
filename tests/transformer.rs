//! The Transformer on the tape: every variant runs forward and backward with finite
//! results; a ReZero stack at α = 0 is the identity; every gradient of the whole model
//! agrees with finite differences of the loss computed independently in f64.

mod common;

use common::assert_close;
use common::reference64::{numeric_grad, to64};
use common::transformer64::{param_lengths, transformer_loss64};
use rezero::nn::{BlockVariant, Transformer, TransformerConfig};
use rezero::tape::Tape;

fn config(variant: BlockVariant, alpha_init: f32) -> TransformerConfig {
    TransformerConfig {
        variant,
        layers: 2,
        d_model: 8,
        heads: 2,
        d_ff: 16,
        seq: 6,
        gelu: true,
        alpha_per_sublayer: false,
        alpha_init,
        seed: 3,
    }
}

const IDS: [u32; 12] = [72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33];
const TARGETS: [u32; 12] = [101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10];

fn loss(gpu: &rezero::Gpu, model: &Transformer, backward: bool) -> f32 {
    let mut tape = Tape::new(gpu);
    let logits = model.forward(&mut tape, &IDS, 2).unwrap();
    let loss = tape.cross_entropy(&logits, &TARGETS).unwrap();
    if backward {
        tape.backward(&loss).unwrap();
    }
    pollster::block_on(tape.read(&loss)).unwrap()[0]
}

#[test]
fn every_variant_runs_forward_and_backward() {
    let gpu = require_gpu!();
    for variant in BlockVariant::ALL {
        let model = Transformer::new(gpu, config(variant, 0.0)).unwrap();
        let value = loss(gpu, &model, true);
        assert!(
            value.is_finite() && value > 0.0,
            "{variant:?}: loss {value}"
        );
        for p in model.params() {
            let g = pollster::block_on(gpu.read_f32(&p.grad, p.len())).unwrap();
            assert!(
                g.iter().all(|v| v.is_finite()),
                "{variant:?}: gradient of {} is not finite",
                p.name
            );
        }
        // ln 256 ≈ 5.55: a fresh model is close to uniform over bytes.
        assert!(
            (value - 256f32.ln()).abs() < 1.0,
            "{variant:?}: initial loss {value}"
        );
    }
}

#[test]
fn rezero_at_alpha_zero_is_the_identity() {
    let gpu = require_gpu!();
    let model = Transformer::new(gpu, config(BlockVariant::Rezero, 0.0)).unwrap();
    let mut tape = Tape::new(gpu);
    let x = model.embed(&mut tape, &IDS, 2).unwrap();
    let y = model.stack(&mut tape, &x, 2).unwrap();
    assert_eq!(
        pollster::block_on(tape.read(&x)).unwrap(),
        pollster::block_on(tape.read(&y)).unwrap()
    );
}

/// Every parameter's gradient (all of them, every entry) against central differences of
/// the loss computed independently in f64 (tests/common/transformer64.rs), for every block
/// variant at α = 0.5, and with one α per sublayer and ReLU. Each parameter's gradient must
/// be large enough somewhere that dropping it would fail the comparison.
#[test]
fn every_gradient_of_every_variant_matches_an_f64_reference() {
    let gpu = require_gpu!();
    let per_sublayer = TransformerConfig {
        alpha_per_sublayer: true,
        gelu: false,
        ..config(BlockVariant::Rezero, 0.5)
    };
    let configs = BlockVariant::ALL.map(|v| config(v, 0.5));
    for c in configs.into_iter().chain([per_sublayer]) {
        let what = format!(
            "{} (alpha per sublayer {}, gelu {})",
            c.variant.name(),
            c.alpha_per_sublayer,
            c.gelu
        );
        let model = Transformer::new(gpu, c.clone()).unwrap();
        let gpu_loss = loss(gpu, &model, true);
        let params = model.params();
        let read = |b: &wgpu::Buffer, len: usize| pollster::block_on(gpu.read_f32(b, len)).unwrap();
        let values: Vec<f32> = params
            .iter()
            .flat_map(|p| read(&p.value, p.len()))
            .collect();
        let lengths: Vec<usize> = params.iter().map(|p| p.len()).collect();
        assert_eq!(lengths, param_lengths(&c), "{what}: parameter layout");
        let f64_loss = |flat: &[f64]| transformer_loss64(&c, flat, &IDS, &TARGETS, 2);
        let want_loss = f64_loss(&to64(&values));
        assert!(
            ((gpu_loss as f64) - want_loss).abs() < 1e-5 * want_loss,
            "{what}: loss {gpu_loss} on the GPU, {want_loss} in f64"
        );
        let numeric = numeric_grad(f64_loss, &values);
        let mut at = 0;
        for p in params {
            let want = &numeric[at..at + p.len()];
            at += p.len();
            let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                largest > 10.0 * GRAD_ATOL,
                "{what} {}: largest gradient {largest} too small to check",
                p.name
            );
            let name = format!("{what} d/d{}", p.name);
            assert_close(&name, &read(&p.grad, p.len()), want, GRAD_ATOL, GRAD_RTOL);
        }
    }
}

/// The bound on |backward − f64 finite differences|: f32 rounding through two blocks.
const GRAD_ATOL: f32 = 2e-6;
const GRAD_RTOL: f32 = 1e-3;
