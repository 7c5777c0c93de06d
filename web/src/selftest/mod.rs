//! The self-test: every kernel family, forward and backward, on the device at hand,
//! against its CPU reference in `rezero::cpu`, at small awkward sizes.

mod attention;
mod f16;
mod harness;
mod image;
mod matmul;
mod optim;
mod pointwise;
mod rows;

use rezero::Gpu;

pub use harness::{Tol, compare};

/// One check: a kernel family's case and what went wrong, if anything.
#[derive(Clone, Debug)]
pub struct Check {
    /// The kernel family (`matmul`, `softmax`, …).
    pub family: &'static str,
    /// The case: the pass (forward, backward), variant and sizes.
    pub case: String,
    /// `None` when the kernel agreed with its reference; else what differed, naming the
    /// first failing index, or the error the launcher returned.
    pub failure: Option<String>,
    /// Wall time of the case, launch and readback included (milliseconds).
    pub millis: f64,
}

/// The families `run_all` checks on every device (f16 ones only where the device has
/// `SHADER_F16`, so they are not listed here).
pub const FAMILIES: [&str; 18] = [
    "elementwise",
    "rezero",
    "dropout",
    "embedding",
    "heads",
    "reduce",
    "softmax",
    "cross_entropy",
    "layernorm",
    "bias",
    "matmul",
    "conv2d",
    "batchnorm",
    "pool",
    "shortcut",
    "attention",
    "optim",
    "loss_scale",
];

/// Runs every check, handing each to `report` as it finishes (a page shows progress).
pub async fn run_all(gpu: &Gpu, mut report: impl FnMut(&Check)) -> Vec<Check> {
    let mut run = harness::Runner::new(gpu, &mut report);
    pointwise::run(&mut run).await;
    rows::run(&mut run).await;
    matmul::run(&mut run).await;
    image::run(&mut run).await;
    attention::run(&mut run).await;
    optim::run(&mut run).await;
    if gpu.features().contains(wgpu::Features::SHADER_F16) {
        f16::run(&mut run).await;
    }
    run.into_checks()
}
