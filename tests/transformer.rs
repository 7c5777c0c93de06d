//! The Transformer on the tape: every variant runs forward and backward with finite
//! results; a ReZero stack at α = 0 is the identity; the whole model's gradient agrees
//! with finite differences of its own loss.

mod common;

use rezero::nn::{BlockVariant, Transformer, TransformerConfig};
use rezero::tape::{Param, Tape};

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

#[test]
fn whole_model_gradient_matches_finite_differences() {
    let gpu = require_gpu!();
    for variant in [
        BlockVariant::Rezero,
        BlockVariant::PostNorm,
        BlockVariant::PreNorm,
    ] {
        let model = Transformer::new(gpu, config(variant, 0.5)).unwrap();
        loss(gpu, &model, true);
        let check = |p: &Param, index: usize| {
            let analytic = pollster::block_on(gpu.read_f32(&p.grad, p.len())).unwrap()[index];
            let values = pollster::block_on(gpu.read_f32(&p.value, p.len())).unwrap();
            let h = 1e-3f32;
            let at = |delta: f32| {
                let mut v = values.clone();
                v[index] += delta;
                gpu.write(&p.value, &v);
                loss(gpu, &model, false)
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            gpu.write(&p.value, &values);
            let bound = 2e-3 + 5e-2 * numeric.abs();
            assert!(
                (analytic - numeric).abs() <= bound,
                "{variant:?} {}[{index}]: backward {analytic}, finite differences {numeric}",
                p.name
            );
        };
        let b = &model.blocks[1];
        for (p, index) in [
            (&model.tokens, 72 * 8 + 3),
            (&model.positions, 2 * 8 + 1),
            (&b.qkv.w, 5),
            (&b.qkv.w, 8 * 8 + 2),
            (&b.qkv.w, 16 * 8 + 7),
            (&b.proj.w, 9),
            (&b.ff1.w, 4),
            (&b.ff2.b, 6),
            (&model.out.w, 101 * 8),
        ] {
            check(p, index);
        }
        if let Some(alphas) = &model.alphas {
            check(alphas, 0);
            check(alphas, 1);
        }
    }
}
