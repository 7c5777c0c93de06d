//! # rezero
//!
//! Very deep networks trained on any GPU that wgpu reaches, after *ReZero is All You Need:
//! Fast Convergence at Large Depth* (Bachlechner et al., 2020): every residual block computes
//! `x + α·F(x)` with one trainable scalar α per block, initialised to 0.
//!
//! Where things live:
//! - [`gpu`]: the [`Gpu`](gpu::Gpu) context (device selection, or another program's device),
//!   buffers and readback, the buffer pool, the pipeline and bind-group caches, the
//!   [`tuning`](gpu::tuning) table of kernel choices, the per-dispatch
//!   [`profile`](gpu::profile).
//! - [`kernels`]: one module per WGSL file in `shaders/`; the launchers are the embeddable API;
//!   [`autotune`](kernels::autotune) holds what every `Auto` variant shares.
//! - [`cpu`]: plain-loop references of every kernel (ground truth for tests and benches).
//! - [`data`]: MNIST / Fashion-MNIST (IDX) and CIFAR-10 (binary) loaders, seeded epoch order,
//!   byte-level text and the built-in corpus.
//! - [`nn`]: models from tape ops (the deep MLP and the Transformer, each in its variants)
//!   and initialisation.
//! - [`optim`]: SGD, Adagrad, Adam/AdamW, LAMB over parameters, clipping, learning-rate
//!   schedules.
//! - [`tape`]: [`Tensor`](tape::Tensor), [`Param`](tape::Param) and the [`Tape`](tape::Tape)
//!   that records ops and runs backward.
//! - [`train`]: training loops (classifiers, language models) with progress, metrics CSV,
//!   evaluation, safetensors checkpoints, sampling and (with `cli`) SVG plots.
//! - [`analysis`]: the input-output Jacobian and its singular values (dynamical isometry).
//! - [`bench`]: the benchmark cases shared by `rezero bench` and `cargo bench` (with the
//!   default `cli` feature).
//! - [`files`]: writing a file atomically (checkpoints, the tuning cache), capped reads.
//! - [`error`]: the crate's one [`Error`](error::Error) type.

pub mod analysis;
#[cfg(feature = "cli")]
pub mod bench;
pub mod cpu;
pub mod data;
pub mod error;
pub mod files;
pub mod gpu;
pub mod kernels;
pub mod nn;
pub mod optim;
pub mod tape;
pub mod train;

pub use error::{Error, Result};

// The default `cli` feature builds the `rezero` command and what only it needs (argument
// parsing, the progress bar, SVG plots, the benchmarks and their CPU reference);
// `--no-default-features` is the embedder's build: the kernels, tape, models and training
// core alone.
pub use gpu::{Gpu, GpuOptions};
