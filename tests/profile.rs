//! The per-dispatch profile: every dispatch of a training step timed, grouped by entry
//! point with its own work count, inside passes and pass by pass.

mod common;

use rezero::nn::{Mlp, MlpConfig, MlpVariant};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::tape::Tape;
use rezero::{Gpu, GpuOptions};

/// Runs one step of a small ReZero MLP under a profile started by `start`.
fn profiled_step(gpu: &Gpu, start: impl Fn(&Gpu) -> rezero::Result<()>) -> rezero::gpu::Profile {
    let model = Mlp::new(
        gpu,
        MlpConfig {
            variant: MlpVariant::Rezero,
            depth: 3,
            width: 32,
            inputs: 32,
            classes: 4,
            alpha_init: 0.0,
            seed: 1,
        },
    )
    .unwrap();
    let config = OptimizerConfig {
        method: Method::Adagrad { eps: 1e-10 },
        lr: 0.01,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let params = model.params();
    let mut optimizer = Optimizer::new(gpu, &params, config).unwrap();
    let mut tape = Tape::new(gpu);
    let x = rezero::cpu::seeded(3, 8 * 32, -1.0, 1.0);
    let y: Vec<u32> = (0..8).map(|i| i % 4).collect();
    start(gpu).unwrap();
    let xt = tape.input(&x, &[8, 32]).unwrap();
    let logits = model.forward(&mut tape, &xt).unwrap();
    let loss = tape.cross_entropy(&logits, &y).unwrap();
    tape.backward(&loss).unwrap();
    optimizer.step_on_tape(&mut tape, &params).unwrap();
    tape.reset();
    pollster::block_on(gpu.finish_profile()).unwrap()
}

#[test]
fn every_dispatch_of_a_step_is_timed_and_grouped() {
    let Some(shared) = common::gpu() else { return };
    if !shared.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
        // Nothing to time with: a failure in CI (whose adapters have them), else a skip.
        return common::skip(&format!(
            "the adapter '{}' has no timestamp queries",
            shared.info().name
        ));
    }
    // Devices of their own: a profile sees every dispatch of its device.
    let gpu = pollster::block_on(Gpu::new(&GpuOptions::default())).unwrap();
    let inside = profiled_step(&gpu, Gpu::start_profile);
    let calls: usize = inside.rows.iter().map(|r| r.calls).sum();
    assert_eq!(calls, inside.dispatches);
    assert!(inside.total_seconds > 0.0);
    let row = |name: &str| inside.rows.iter().find(|r| r.entry.starts_with(name));
    // Three blocks' linear layers, the input projection and the classifier: 5 forward
    // products, 5 + 5 backward (the first's input gradient is skipped or not: at least 9).
    let products: usize = inside
        .rows
        .iter()
        .filter(|r| r.entry.starts_with("matmul_"))
        .map(|r| r.calls)
        .sum();
    assert!(products >= 14, "{:?}", inside.rows);
    let matmul = inside
        .rows
        .iter()
        .find(|r| r.entry.starts_with("matmul_"))
        .unwrap();
    assert!(matmul.flops.unwrap() > 0.0 && matmul.rate().unwrap().0 == "GFLOP/s");
    assert_eq!(row("adagrad").unwrap().rate().unwrap().0, "GB/s");
    assert!(row("rezero_forward").is_some() && row("cross_entropy_rows").is_some());
    // Rows come slowest first, and the table ends with the total.
    assert!(inside.rows.windows(2).all(|w| w[0].seconds >= w[1].seconds));
    let lines = inside.lines(inside.total_seconds, None, false);
    assert!(
        lines
            .last()
            .unwrap()
            .contains(&format!("{} dispatches", inside.dispatches))
    );
    let json = inside.lines(inside.total_seconds, Some(inside.total_seconds), true);
    assert!(json.iter().all(|l| l.starts_with('{') && l.ends_with('}')));

    // Pass by pass (adapters that cannot time inside a pass): each tape op gets a pass,
    // and every dispatch is still accounted for.
    let per_pass = profiled_step(&gpu, Gpu::start_profile_per_pass);
    assert_eq!(per_pass.dispatches, inside.dispatches);
    assert!(per_pass.total_seconds > 0.0);

    // A second start is refused; finishing twice too.
    gpu.start_profile().unwrap();
    assert!(gpu.start_profile().is_err());
    pollster::block_on(gpu.finish_profile()).unwrap();
    assert!(pollster::block_on(gpu.finish_profile()).is_err());
}
