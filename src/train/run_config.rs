//! `RunConfig`: what every training loop needs to know about its run.

use std::path::PathBuf;

use super::progress::Display;
use crate::kernels::Dtype;

/// What every training loop needs to know about its run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Name shown in progress, summaries and tables.
    pub label: String,
    pub batch: usize,
    /// Seeds the data order (the model has its own seed).
    pub seed: u64,
    /// Read the loss back and write a metrics row every this many steps (≥ 1).
    pub log_every: u64,
    /// The run folder (metrics.csv, eval.csv, summary.txt, model.safetensors), claimed for
    /// the run; `None` writes nothing.
    pub out: Option<PathBuf>,
    /// Steps already taken: a resumed run continues after them and appends to its CSVs.
    pub start_step: u64,
    pub display: Display,
    /// Profile this step (counted from 1) and print where its time went.
    pub profile_step: Option<u64>,
    /// Go on past a finite loss that explodes (NaN and infinity still stop the run).
    pub allow_divergence: bool,
    /// The flags that define the run (model, data, data order), saved in its checkpoints
    /// so that `--resume` can compare them.
    pub flags: Vec<(String, String)>,
    /// Keep every checkpoint written (`checkpoints/step-N.safetensors`), besides the
    /// rolling `model.safetensors`, so that the run can be studied along the way.
    pub keep_checkpoints: bool,
    /// Before the first step, measure the kernel choices of the step's shapes that the
    /// tuning table lacks (`--tune`); otherwise they run the adapter's defaults.
    pub tune: bool,
    /// The activations' type: f32, or f16 for mixed precision (f32 master weights and
    /// optimizer state, dynamic loss scaling; `metrics.csv` gains the loss scale and the
    /// skipped steps).
    pub precision: Dtype,
}

impl RunConfig {
    /// A run of `label` with batch `batch`, no folder, no progress, a loss read every step.
    pub fn quiet(label: &str, batch: usize) -> RunConfig {
        RunConfig {
            label: label.to_string(),
            batch,
            seed: 0,
            log_every: 1,
            out: None,
            start_step: 0,
            display: Display::Off,
            profile_step: None,
            allow_divergence: false,
            flags: Vec::new(),
            keep_checkpoints: false,
            tune: false,
            precision: Dtype::F32,
        }
    }
}
