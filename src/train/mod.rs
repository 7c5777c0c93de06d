//! Training: one core ([`core`]: the step, divergence, checkpoints, the run's summary) that
//! the image loop ([`images`]: deep MLPs and ResNets by epoch) and the language-model loop
//! ([`lm`]: Transformers by step) run on; run folders ([`run_dir`]), checkpoints, progress
//! and its rates ([`rate`]), plots and sampling.

pub mod checkpoint;
pub mod core;
pub mod divergence;
#[cfg(feature = "cli")]
pub mod heatmap;
pub mod images;
pub mod lm;
mod loss_sum;
#[cfg(feature = "cli")]
pub mod plot;
pub mod progress;
pub mod rate;
mod run_config;
pub mod run_dir;
pub mod summary;

pub use self::core::{Divergence, RunConfig, RunSummary};
pub use images::{ImageModel, ImageRun, ImageSummary, evaluate, train_images};
