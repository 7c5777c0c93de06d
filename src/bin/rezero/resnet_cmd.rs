//! `rezero train resnet`: CIFAR-style ResNets (standard, rezero, rezero-nobn) on CIFAR-10,
//! Fashion-MNIST or MNIST, one variant or a comparison of several with the same seed and
//! data order (epochs to a target test accuracy, and the accuracy curves).

use std::path::PathBuf;

use clap::Args;
use rezero::data::augment::Augment;
use rezero::data::{DatasetName, Images};
use rezero::gpu::Gpu;
use rezero::nn::resnet::ShortcutKind;
use rezero::nn::{Resnet, ResnetConfig, ResnetVariant};
use rezero::train::checkpoint::resnet_from;
use rezero::train::{ImageRun, ImageSummary, train_images};
use rezero::{Error, Result};

use crate::flags::{self, ImageDataArgs, OptimArgs, RunArgs, flag};
use crate::images_cmd;
use crate::start::{ModelSource, start};

/// The side the images are padded to: 28×28 digits become 32×32, like CIFAR-10.
const IMAGE_SIZE: usize = 32;

#[derive(Args)]
#[command(
    mut_arg("optimizer", |a| a.default_value("sgd")),
    mut_arg("lr", |a| a.default_value("0.1")),
    mut_arg("weight_decay", |a| a.default_value("0.0001")
        .help("L2 on convolution and classifier weights (never on α, biases or BatchNorm).")),
    mut_arg("schedule", |a| a.help("constant, step:E1,E2[@GAMMA] or cosine:TOTAL, counted in \
        epochs (the CIFAR recipe: --epochs 160 --schedule step:80,120).")),
    mut_arg("batch", |a| a.default_value("128")),
    mut_arg("log_every", |a| a.default_value("20")),
    mut_arg("dataset", |a| a.default_value("cifar10")
        .help("The data set (28×28 images are padded to 32×32).")),
)]
pub struct ResnetArgs {
    /// 6n + 2 layers: 20, 32, 44, 56 or 110.
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// Block type.
    #[arg(long, value_enum, default_value_t = ResnetVariant::Rezero, conflicts_with = "compare")]
    variant: ResnetVariant,
    /// Shortcut of the downsampling blocks: projection (1×1 convolution) or identity
    /// (subsampled, zero-padded channels, no parameters).
    #[arg(long, value_enum, default_value_t = ShortcutKind::Projection)]
    shortcut: ShortcutKind,
    /// Train each of these variants in turn (same seed and data order) and compare them.
    #[arg(long, value_enum, value_delimiter = ',')]
    compare: Vec<ResnetVariant>,
    /// With --compare: the test accuracy whose first epoch is reported (90 or 0.9 = 90%).
    #[arg(long, value_parser = flags::positive)]
    target_acc: Option<f32>,
    /// Random crops of the image padded by 4 pixels, and horizontal flips (not for MNIST digits).
    #[arg(long)]
    augment: bool,
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

fn load(args: &ResnetArgs) -> Result<(Images, Images)> {
    let (train, test) = images_cmd::load(&args.data)?;
    let pad = |images: Images| {
        images.pad_to(IMAGE_SIZE).ok_or_else(|| Error::Invalid {
            what: "images".into(),
            why: format!(
                "{}×{} is larger than the {IMAGE_SIZE}×{IMAGE_SIZE} the CIFAR ResNets take",
                images.height, images.width
            ),
        })
    };
    Ok((pad(train)?, pad(test)?))
}

/// The target accuracy as a fraction (90 and 0.9 both mean 90%).
fn target_fraction(target: Option<f32>) -> Result<Option<f32>> {
    match target {
        Some(t) if !(t > 0.0 && t <= 100.0) => Err(Error::Invalid {
            what: "--target-acc".into(),
            why: format!("{t} is not a percentage in (0, 100] or a fraction in (0, 1]"),
        }),
        Some(t) if t > 1.0 => Ok(Some(t / 100.0)),
        other => Ok(other),
    }
}

impl ResnetArgs {
    fn flags(&self, variant: ResnetVariant) -> Vec<(String, String)> {
        let mut flags = vec![
            flag("--variant", variant.name()),
            flag("--depth", self.depth),
            flag("--shortcut", self.shortcut.name()),
            flag("--alpha-init", self.alpha_init),
            flag("--alpha-lr-mult", self.optim.alpha_lr_mult),
            flag("--augment", self.augment),
        ];
        flags.extend(self.data.flags(&self.run));
        flags
    }
}

fn run_one(
    gpu: &Gpu,
    args: &ResnetArgs,
    variant: ResnetVariant,
    (train, test): (&Images, &Images),
    out: PathBuf,
) -> Result<ImageSummary> {
    let batch = args.run.batch as usize;
    let steps_per_epoch = (train.count / batch.max(1)) as u64;
    let optimizer = args.optim.config(Some(steps_per_epoch))?;
    let config = ResnetConfig {
        variant,
        depth: args.depth,
        in_channels: train.channels,
        classes: train.classes,
        shortcut: args.shortcut,
        alpha_init: args.alpha_init,
        seed: args.run.seed,
    };
    let footprint = config.footprint(batch, IMAGE_SIZE, args.run.precision)?;
    footprint.check(gpu, optimizer.method.state_buffers())?;
    let flags = args.flags(variant);
    let source = ModelSource {
        fresh: || Resnet::new(gpu, config.clone()),
        load: |path: &std::path::Path, c: &_| resnet_from(gpu, path, c),
        params: Resnet::params,
    };
    let optimizer = (optimizer, args.optim.alpha_lr_mult);
    let mut begun = start(gpu, args.run.at(&out), &flags, optimizer, source)?;
    let run = ImageRun {
        run: args.run.config(
            format!("resnet{}-{}", args.depth, variant.name()),
            Some(out),
            begun.step,
            flags,
        ),
        epochs: args.data.epochs as usize,
        max_steps: args.run.steps,
        augment: args.augment.then_some(Augment {
            crop_pad: 4,
            flip: args.data.dataset != DatasetName::Mnist,
        }),
        target_accuracy: target_fraction(args.target_acc)?,
    };
    pollster::block_on(train_images(
        gpu,
        &begun.model,
        &mut begun.optimizer,
        (train, test),
        &run,
    ))
}

pub fn train_resnet_command(gpu: &Gpu, args: &ResnetArgs) -> Result<()> {
    let names: Vec<String> = args.compare.iter().map(|v| v.name().to_string()).collect();
    flags::check_compare(&names, &args.run)?;
    let target = target_fraction(args.target_acc)?;
    let (train, test) = load(args)?;
    if args.compare.is_empty() {
        let name = format!("resnet{}-{}", args.depth, args.variant.name());
        let folder = args.run.folder(&name);
        let summary = run_one(gpu, args, args.variant, (&train, &test), folder.clone())?;
        images_cmd::print_summary(&summary);
        eprintln!("run folder: {}", folder.display());
        return images_cmd::outcome(&summary.run);
    }
    let dir = args.run.folder(&format!("resnet{}-compare", args.depth));
    let title = format!("ResNet-{} on {}", args.depth, args.data.dataset.name());
    images_cmd::compare(
        &args.compare,
        ResnetVariant::name,
        &dir,
        &title,
        target,
        |v, out| run_one(gpu, args, v, (&train, &test), out),
    )
}
