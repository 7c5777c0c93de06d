//! `rezero train mlp`: deep fully-connected networks on image data, one variant or a
//! comparison of several with the same data order and seed; and the `train` dispatch.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use rezero::Result;
use rezero::data::Images;
use rezero::gpu::Gpu;
use rezero::nn::{Mlp, MlpConfig, MlpVariant};
use rezero::train::checkpoint::mlp_from;
use rezero::train::{ImageRun, ImageSummary, train_images};

use crate::flags::{self, ImageDataArgs, OptimArgs, RunArgs, flag};
use crate::images_cmd;
use crate::start::{ModelSource, start};

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
#[command(
    mut_arg("optimizer", |a| a.default_value("adagrad")),
    mut_arg("lr", |a| a.default_value("0.01")),
    mut_arg("batch", |a| a.default_value("100")),
)]
pub struct MlpArgs {
    /// Block type.
    #[arg(long, value_enum, default_value_t = MlpVariant::Rezero, conflicts_with = "compare")]
    variant: MlpVariant,
    /// Train each of these variants in turn (same data order and seed) and compare them.
    #[arg(long, value_enum, value_delimiter = ',')]
    compare: Vec<MlpVariant>,
    /// Number of blocks.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    depth: u64,
    /// Width of every block.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    width: u64,
    /// Initial α of the ReZero blocks (finite).
    #[arg(long, default_value_t = 0.0, value_parser = flags::finite)]
    alpha_init: f32,
    #[command(flatten)]
    data: ImageDataArgs,
    #[command(flatten)]
    optim: OptimArgs,
    #[command(flatten)]
    run: RunArgs,
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

impl MlpArgs {
    fn model_config(&self, variant: MlpVariant, train: &Images) -> MlpConfig {
        MlpConfig {
            variant,
            depth: self.depth as usize,
            width: self.width as usize,
            inputs: train.features(),
            classes: train.classes,
            alpha_init: self.alpha_init,
            seed: self.run.seed,
        }
    }

    /// The flags that define a run of `variant` (compared on --resume).
    fn flags(&self, variant: MlpVariant) -> Vec<(String, String)> {
        let mut flags = vec![
            flag("--variant", variant.name()),
            flag("--depth", self.depth),
            flag("--width", self.width),
            flag("--alpha-init", self.alpha_init),
            flag("--alpha-lr-mult", self.optim.alpha_lr_mult),
        ];
        flags.extend(self.data.flags(&self.run));
        flags
    }
}

fn run_one(
    gpu: &Gpu,
    args: &MlpArgs,
    variant: MlpVariant,
    (train, test): (&Images, &Images),
    out: PathBuf,
) -> Result<ImageSummary> {
    let config = args.model_config(variant, train);
    let optimizer = args.optim.config(None)?;
    let footprint = config.footprint(args.run.batch as usize, args.run.precision)?;
    footprint.check(gpu, optimizer.method.state_buffers())?;
    let flags = args.flags(variant);
    let source = ModelSource {
        fresh: || Mlp::new(gpu, config.clone()),
        load: |path: &std::path::Path, c: &_| mlp_from(gpu, path, c),
        params: Mlp::params,
    };
    let optimizer = (optimizer, args.optim.alpha_lr_mult);
    let mut begun = start(gpu, args.run.at(&out), &flags, optimizer, source)?;
    let label = format!("{}-{}x{}", variant.name(), args.depth, args.width);
    let run = ImageRun {
        run: args.run.config(label, Some(out), begun.step, flags),
        epochs: args.data.epochs as usize,
        max_steps: args.run.steps,
        augment: None,
        target_accuracy: None,
    };
    pollster::block_on(train_images(
        gpu,
        &begun.model,
        &mut begun.optimizer,
        (train, test),
        &run,
    ))
}

fn train_mlp(gpu: &Gpu, args: &MlpArgs) -> Result<()> {
    let names: Vec<String> = args.compare.iter().map(|v| v.name().to_string()).collect();
    flags::check_compare(&names, &args.run)?;
    let (train, test) = images_cmd::load(&args.data)?;
    let shape = format!("{}x{}", args.depth, args.width);
    if args.compare.is_empty() {
        let folder = args
            .run
            .folder(&format!("mlp-{}-{shape}", args.variant.name()));
        let summary = run_one(gpu, args, args.variant, (&train, &test), folder.clone())?;
        images_cmd::print_summary(&summary);
        eprintln!("run folder: {}", folder.display());
        return images_cmd::outcome(&summary.run);
    }
    let dir = args.run.folder(&format!("mlp-compare-{shape}"));
    let title = format!(
        "{} MLPs, {} blocks of width {}",
        args.data.dataset.name(),
        args.depth,
        args.width
    );
    images_cmd::compare(
        &args.compare,
        MlpVariant::name,
        &dir,
        &title,
        None,
        |v, out| run_one(gpu, args, v, (&train, &test), out),
    )
}
