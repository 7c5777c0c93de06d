//! The flag groups every training command shares, declared once: the optimizer, the run
//! (folder, resume, length, logging, seed) and the image data. Each command sets its own
//! defaults with `mut_arg`; numeric flags are checked as they are parsed (NaN, infinity,
//! negative or zero values are refused where they mean nothing).

use std::path::PathBuf;

use clap::Args;
use rezero::data::DatasetName;
use rezero::kernels::Dtype;
use rezero::optim::{Method, OptimizerConfig, OptimizerName, Schedule};
use rezero::train::RunConfig;
use rezero::train::progress::Display;
use rezero::{Error, Result};

/// A finite number.
pub fn finite(text: &str) -> std::result::Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("{v} is not a finite number")),
        Err(e) => Err(e.to_string()),
    }
}

/// A finite number ≥ 0.
pub fn non_negative(text: &str) -> std::result::Result<f32, String> {
    finite(text).and_then(|v| (v >= 0.0).then_some(v).ok_or(format!("{v} is negative")))
}

/// A finite number > 0.
pub fn positive(text: &str) -> std::result::Result<f32, String> {
    finite(text).and_then(|v| (v > 0.0).then_some(v).ok_or(format!("{v} is not above 0")))
}

/// A finite number in [0, 1).
pub fn fraction(text: &str) -> std::result::Result<f32, String> {
    non_negative(text).and_then(|v| (v < 1.0).then_some(v).ok_or(format!("{v} is not below 1")))
}

/// The optimizer and its learning-rate schedule.
#[derive(Args, Clone, Debug)]
pub struct OptimArgs {
    /// The update rule.
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam)]
    pub optimizer: OptimizerName,
    /// Learning rate (finite, ≥ 0).
    #[arg(long, default_value_t = 1e-3, value_parser = non_negative)]
    pub lr: f32,
    /// SGD momentum, in [0, 1) (the other optimizers have none).
    #[arg(long, default_value_t = 0.9, value_parser = fraction)]
    pub momentum: f32,
    /// Weight decay: decoupled for adamw, L2 otherwise; never on α, biases or norm gains.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub weight_decay: f32,
    /// Clip the global gradient norm to this (> 0).
    #[arg(long, value_parser = positive)]
    pub clip: Option<f32>,
    /// constant, step:M1,M2[@GAMMA] or cosine:TOTAL, counted in steps.
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Multiplies the learning rate of every α (finite, ≥ 0; the paper's setting is 1).
    #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
    pub alpha_lr_mult: f32,
}

impl OptimArgs {
    /// The optimizer's configuration; `epoch_steps` is Some(steps in an epoch) for a
    /// command whose `--schedule` counts epochs.
    pub fn config(&self, epoch_steps: Option<u64>) -> Result<OptimizerConfig> {
        self.config_with_warmup(epoch_steps, self.warmup)
    }

    /// [`OptimArgs::config`] with `warmup` steps of warm-up instead of `--warmup`'s (for
    /// comparisons that give warm-up to some variants only).
    pub fn config_with_warmup(
        &self,
        epoch_steps: Option<u64>,
        warmup: u64,
    ) -> Result<OptimizerConfig> {
        let unit = if epoch_steps.is_some() {
            "epochs"
        } else {
            "steps"
        };
        let schedule = Schedule::parse(&self.schedule, warmup).map_err(|e| match e {
            Error::Invalid { what, why } => Error::Invalid {
                what: format!("--schedule ({what}, counted in {unit})"),
                why,
            },
            other => other,
        })?;
        Ok(OptimizerConfig {
            method: Method::of(self.optimizer, self.momentum),
            lr: self.lr,
            weight_decay: self.weight_decay,
            clip: self.clip,
            schedule: match epoch_steps {
                Some(n) => schedule.epochs_to_steps(n),
                None => schedule,
            },
        })
    }
}

/// The run: its folder, its length, logging and seed.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Run folder: metrics.csv, eval.csv, summary.txt and model.safetensors (one
    /// subfolder per variant with --compare). Default: runs/NAME, or the next free
    /// runs/NAME-2, ... A folder that holds a run is never taken over without --resume.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint (weights, optimizer state, step), with
    /// the same data order. Every flag that defines the model, the data and its order must
    /// be the run's own.
    #[arg(long)]
    pub resume: bool,
    /// Stop at this step (counted over resumed runs too).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: Option<u64>,
    /// Examples in a training batch.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Read the loss back and write a metrics row every this many steps (the only
    /// readback in a step).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_every: u64,
    /// Seeds the initialisation and the data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress display.
    #[arg(long)]
    pub quiet: bool,
    /// Go on past a loss that explodes (over 100x the first, or over 1e6) instead of
    /// stopping the run as diverged; a NaN or infinite loss still stops it.
    #[arg(long)]
    pub allow_divergence: bool,
    /// Time every dispatch of training step N (from 1) and print where its time went,
    /// by kernel entry point.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub profile: Option<u64>,
    /// Keep every checkpoint (one per evaluation or epoch) in RUN/checkpoints/, besides the
    /// rolling model.safetensors (for `rezero isometry --run`).
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// Before the first step, time the candidate kernels of every matmul, attention and
    /// convolution shape the step meets that the tuning table lacks, and keep the fastest
    /// (in the tuning cache); an evaluation's other shapes are timed after the first one.
    /// Without it those run a fixed default for the adapter.
    #[arg(long)]
    pub tune: bool,
    /// f32, or f16: mixed precision as PyTorch's autocast and GradScaler do it (f16
    /// activations and products with f32 sums; f32 master weights, optimizer state and
    /// checkpoints; dynamic loss scaling, its scale and skipped steps in metrics.csv).
    /// Needs a device with SHADER_F16. A run may resume at the other precision.
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    pub precision: Dtype,
}

/// `f32` or `f16`.
fn parse_precision(text: &str) -> std::result::Result<Dtype, String> {
    text.parse::<Dtype>().map_err(|e| e.to_string())
}

impl RunArgs {
    /// Where `start` begins a run in `out`: the folder, whether to resume it, and the
    /// precision.
    pub fn at<'a>(&self, out: &'a std::path::Path) -> (&'a std::path::Path, bool, Dtype) {
        (out, self.resume, self.precision)
    }

    /// The core's configuration for a run labelled `label` in `out`, from `start_step`.
    pub fn config(
        &self,
        label: String,
        out: Option<PathBuf>,
        start_step: u64,
        flags: Vec<(String, String)>,
    ) -> RunConfig {
        RunConfig {
            label,
            batch: self.batch as usize,
            seed: self.seed,
            log_every: self.log_every,
            out,
            start_step,
            display: Display::for_stderr(self.quiet),
            profile_step: self.profile,
            allow_divergence: self.allow_divergence,
            flags,
            keep_checkpoints: self.keep_checkpoints,
            tune: self.tune,
            precision: self.precision,
        }
    }

    /// `--out`, or `runs/NAME` (the next free `runs/NAME-2`, ... unless resuming).
    pub fn folder(&self, name: &str) -> PathBuf {
        let base = PathBuf::from("runs").join(name);
        match &self.out {
            Some(out) => out.clone(),
            None if self.resume => base,
            None => rezero::train::run_dir::fresh_default(&base),
        }
    }
}

/// An image data set and how much of it to use.
#[derive(Args, Clone, Debug)]
pub struct ImageDataArgs {
    /// The image data set.
    #[arg(long, value_enum, default_value_t = DatasetName::FashionMnist)]
    pub dataset: DatasetName,
    /// Folder with the data set's files (default: data/DATASET; see scripts/fetch-data.sh).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Passes over the training data.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    /// Use only the first N training examples.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub train_limit: Option<u64>,
    /// Evaluate on only the first N test examples.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub test_limit: Option<u64>,
}

impl ImageDataArgs {
    /// The flags that define the data and its order, for `--resume` to compare.
    pub fn flags(&self, run: &RunArgs) -> Vec<(String, String)> {
        let limit = |l: Option<u64>| l.map_or("all".to_string(), |n| n.to_string());
        vec![
            flag("--dataset", self.dataset.name()),
            flag("--train-limit", limit(self.train_limit)),
            flag("--batch", run.batch),
            flag("--seed", run.seed),
        ]
    }
}

/// A (flag, value) pair for a checkpoint's record of its run.
pub fn flag(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// Errors if a comparison names an entry twice (`names`: its entries' folder names), or
/// if it is given with `--resume`.
pub fn check_compare(names: &[String], run: &RunArgs) -> Result<()> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(Error::Invalid {
                what: "--compare".into(),
                why: format!("names {name} twice"),
            });
        }
    }
    if run.resume && !names.is_empty() {
        return Err(Error::Invalid {
            what: "--resume".into(),
            why: "resumes one run; it does not combine with --compare".into(),
        });
    }
    Ok(())
}
