//! `rezero train mlp`: deep fully-connected networks on image data, one variant or a
//! comparison of several with the same data order and seed.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use rezero::data::{self, DatasetName, Images};
use rezero::gpu::Gpu;
use rezero::nn::{Mlp, MlpConfig, MlpVariant};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::train::plot::{plot_svg, read_curve};
use rezero::train::{RunConfig, Summary, progress::format_duration, run_dir, train_classifier};
use rezero::{Error, Result};

#[derive(Subcommand)]
pub enum TrainCommand {
    /// A deep MLP (plain, residual, layernorm or rezero blocks) on MNIST, Fashion-MNIST or CIFAR-10.
    Mlp(MlpArgs),
    /// A byte-level Transformer language model on the built-in corpus or any file.
    Lm(crate::lm_cmd::LmArgs),
    /// A CIFAR-style ResNet (standard, rezero or rezero-nobn blocks) on CIFAR-10, Fashion-MNIST or MNIST.
    Resnet(crate::resnet_cmd::ResnetArgs),
}

#[derive(Args)]
pub struct MlpArgs {
    /// Block type: plain, residual, layernorm or rezero.
    #[arg(long, default_value = "rezero")]
    variant: MlpVariant,
    /// Train each of these variants in turn (same data order and seed) and compare them.
    #[arg(long, value_delimiter = ',')]
    compare: Vec<MlpVariant>,
    /// Number of blocks.
    #[arg(long, default_value_t = 64)]
    depth: usize,
    /// Width of every block.
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// mnist, fashion-mnist or cifar10.
    #[arg(long, default_value = "fashion-mnist")]
    dataset: DatasetName,
    /// Directory with the data set's files (default: data/DATASET; see scripts/fetch-data.sh).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// sgd, adagrad, adam or adamw.
    #[arg(long, default_value = "adagrad")]
    optimizer: String,
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// Decoupled for adamw, L2 otherwise; never on α, biases or norm gains.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Clip the global gradient norm to this.
    #[arg(long)]
    clip: Option<f32>,
    /// constant, step:M1,M2[@GAMMA] or cosine:TOTAL (steps).
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Stop after this many steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Seeds the initialisation and the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Initial α of the ReZero blocks.
    #[arg(long, default_value_t = 0.0)]
    alpha_init: f32,
    /// Read the loss back every this many steps (the only readback in a step).
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    /// Use only the first N training examples.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on only the first N test examples.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Run directory: metrics.csv, eval.csv, summary.txt (one subdirectory per variant with --compare).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Time every dispatch of training step N (from 1) and print where its time went,
    /// by kernel entry point.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    profile: Option<u64>,
}

/// `rezero train` alone runs the main job: a small ReZero Transformer on the built-in corpus.
pub fn train(gpu: &Gpu, command: Option<&TrainCommand>) -> Result<()> {
    match command {
        Some(TrainCommand::Mlp(args)) => train_mlp(gpu, args),
        Some(TrainCommand::Lm(args)) => crate::lm_cmd::train_lm_command(gpu, args),
        Some(TrainCommand::Resnet(args)) => crate::resnet_cmd::train_resnet_command(gpu, args),
        None => crate::lm_cmd::train_lm_command(gpu, &crate::lm_cmd::LmArgs::main_job()),
    }
}

fn load(args: &MlpArgs) -> Result<(Images, Images)> {
    data::load_limited(
        args.dataset,
        args.data_dir.as_deref(),
        args.train_limit,
        args.test_limit,
    )
}

fn run_one(
    gpu: &Gpu,
    args: &MlpArgs,
    variant: MlpVariant,
    train: &Images,
    test: &Images,
    out: Option<PathBuf>,
) -> Result<Summary> {
    let model = Mlp::new(
        gpu,
        MlpConfig {
            variant,
            depth: args.depth,
            width: args.width,
            inputs: train.features(),
            classes: train.classes,
            alpha_init: args.alpha_init,
            seed: args.seed,
        },
    )?;
    let config = OptimizerConfig {
        method: Method::parse(&args.optimizer)?,
        lr: args.lr,
        weight_decay: args.weight_decay,
        clip: args.clip,
        schedule: Schedule::parse(&args.schedule, args.warmup)?,
    };
    let mut optimizer = Optimizer::new(gpu, &model.params(), config)?;
    let _lock = out
        .as_deref()
        .map(|dir| run_dir::claim(dir, false))
        .transpose()?;
    let run = RunConfig {
        label: format!("{}-{}x{}", variant.name(), args.depth, args.width),
        epochs: args.epochs,
        max_steps: args.steps,
        batch: args.batch,
        seed: args.seed,
        log_every: args.log_every.max(1),
        out,
        show_progress: !args.quiet,
        profile_step: args.profile,
    };
    train_classifier(gpu, &model, &mut optimizer, train, test, &run)
}

/// A loss for a table: four decimals, or scientific when it has blown up.
fn loss_text(v: f32) -> String {
    if v.abs() >= 1e5 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_summary(s: &Summary) {
    out!(
        "{}: {} steps in {}, final train loss {}, test loss {}, test accuracy {:.2}%, memory: activations {:.1} MiB peak, parameters+gradients+optimizer {:.1} MiB{}",
        s.label,
        s.steps,
        format_duration(std::time::Duration::from_secs_f64(s.wall_seconds)),
        loss_text(s.final_train_loss),
        loss_text(s.test_loss),
        100.0 * s.test_accuracy,
        mib(s.peak_activation_bytes),
        mib(s.param_bytes),
        if s.diverged {
            " (DIVERGED: the loss became NaN or infinite)"
        } else {
            ""
        }
    );
}

fn train_mlp(gpu: &Gpu, args: &MlpArgs) -> Result<()> {
    if args.epochs == 0 {
        return Err(Error::Invalid {
            what: "--epochs".into(),
            why: "must be at least 1".into(),
        });
    }
    let (train, test) = load(args)?;
    if args.compare.is_empty() {
        let summary = run_one(gpu, args, args.variant, &train, &test, args.out.clone())?;
        print_summary(&summary);
        return Ok(());
    }
    let mut summaries = Vec::new();
    for &variant in &args.compare {
        let out = args.out.as_ref().map(|dir| dir.join(variant.name()));
        let summary = run_one(gpu, args, variant, &train, &test, out)?;
        print_summary(&summary);
        summaries.push(summary);
    }
    if let Some(dir) = &args.out {
        let runs: Vec<PathBuf> = args.compare.iter().map(|v| dir.join(v.name())).collect();
        let curves = runs
            .iter()
            .map(|r| read_curve(r, "metrics.csv", "loss"))
            .collect::<Result<Vec<_>>>()?;
        let svg = dir.join("loss.svg");
        let title = format!(
            "{} MLPs, {} blocks of width {}",
            args.dataset.name(),
            args.depth,
            args.width
        );
        plot_svg(&curves, "training loss", &title, &svg)?;
        eprintln!("loss curves: {}", svg.display());
    }
    out!(
        "\n{:<22} {:>8} {:>16} {:>10} {:>14} {:>10}",
        "variant",
        "steps",
        "final train loss",
        "test loss",
        "test accuracy",
        "wall time"
    );
    for s in &summaries {
        out!(
            "{:<22} {:>8} {:>16} {:>10} {:>13.2}% {:>10}{}",
            s.label,
            s.steps,
            loss_text(s.final_train_loss),
            loss_text(s.test_loss),
            100.0 * s.test_accuracy,
            format_duration(std::time::Duration::from_secs_f64(s.wall_seconds)),
            if s.diverged { "  diverged" } else { "" }
        );
    }
    Ok(())
}
