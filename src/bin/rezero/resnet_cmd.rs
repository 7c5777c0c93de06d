//! `rezero train resnet`: CIFAR-style ResNets (standard, rezero, rezero-nobn) on CIFAR-10,
//! Fashion-MNIST or MNIST, one variant or a comparison of several with the same seed and
//! data order (epochs to a target test accuracy, and one plot of the accuracy curves).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use rezero::data::augment::Augment;
use rezero::data::{self, DatasetName, Images};
use rezero::gpu::Gpu;
use rezero::nn::resnet::ShortcutKind;
use rezero::nn::{Resnet, ResnetConfig, ResnetVariant};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::train::checkpoint;
use rezero::train::plot::{Curve, plot_svg};
use rezero::train::progress::format_duration;
use rezero::train::resnet::{ResnetRun, ResnetSummary, train_resnet};
use rezero::train::run_dir;
use rezero::{Error, Result};

/// The side the images are padded to: 28×28 digits become 32×32, like CIFAR-10.
const IMAGE_SIZE: usize = 32;

#[derive(Args)]
pub struct ResnetArgs {
    /// 6n + 2 layers: 20, 32, 44, 56 or 110.
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// Block type: standard, rezero or rezero-nobn.
    #[arg(long, default_value = "rezero")]
    variant: ResnetVariant,
    /// Shortcut of the downsampling blocks: projection (1×1 convolution) or identity
    /// (subsampled, zero-padded channels, no parameters).
    #[arg(long, default_value = "projection")]
    shortcut: ShortcutKind,
    /// Train each of these variants in turn (same seed and data order) and compare them.
    #[arg(long, value_delimiter = ',')]
    compare: Vec<ResnetVariant>,
    /// With --compare: the test accuracy whose first epoch is reported (90 or 0.9 = 90%).
    #[arg(long)]
    target_acc: Option<f32>,
    /// cifar10, fashion-mnist or mnist (28×28 images are padded to 32×32).
    #[arg(long, default_value = "cifar10")]
    dataset: DatasetName,
    /// Directory with the data set's files (default: data/DATASET; see scripts/fetch-data.sh).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Stop after this many steps in all (quick runs).
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// sgd, adagrad, adam or adamw.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// L2 on convolution and classifier weights (never on α, biases or BatchNorm).
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f32,
    /// constant, step:E1,E2[@GAMMA] or cosine:TOTAL, counted in epochs (the CIFAR recipe:
    /// --epochs 160 --schedule step:80,120).
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Clip the global gradient norm to this.
    #[arg(long)]
    clip: Option<f32>,
    /// Random crops of the image padded by 4 pixels, and horizontal flips (not for MNIST digits).
    #[arg(long)]
    augment: bool,
    /// Seeds the initialisation, the data order and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Initial α of the ReZero blocks.
    #[arg(long, default_value_t = 0.0)]
    alpha_init: f32,
    /// Read the loss back every this many steps.
    #[arg(long, default_value_t = 20)]
    log_every: u64,
    /// Use only the first N training examples.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on only the first N test examples.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Run directory: metrics.csv (loss, images/s, every α), eval.csv (test loss and accuracy
    /// per epoch), model.safetensors (after every epoch); one subdirectory per variant with
    /// --compare. Default runs/resnetDEPTH-VARIANT or runs/resnetDEPTH-compare.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its model.safetensors (weights, running statistics,
    /// optimizer state, step) up to --epochs (or --steps), with the same data order, even
    /// from the middle of an epoch.
    #[arg(long)]
    resume: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Time every dispatch of training step N (from 1) and print where its time went,
    /// by kernel entry point.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    profile: Option<u64>,
}

fn load(args: &ResnetArgs) -> Result<(Images, Images)> {
    let (train, test) = data::load_limited(
        args.dataset,
        args.data_dir.as_deref(),
        args.train_limit,
        args.test_limit,
    )?;
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

fn optimizer_config(args: &ResnetArgs, steps_per_epoch: u64) -> Result<OptimizerConfig> {
    let method = match Method::parse(&args.optimizer)? {
        Method::Sgd { .. } => Method::Sgd {
            momentum: args.momentum,
        },
        other => other,
    };
    Ok(OptimizerConfig {
        method,
        lr: args.lr,
        weight_decay: args.weight_decay,
        clip: args.clip,
        schedule: Schedule::parse(&args.schedule, args.warmup)?.epochs_to_steps(steps_per_epoch),
    })
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

fn run_one(
    gpu: &Gpu,
    args: &ResnetArgs,
    variant: ResnetVariant,
    (train, test): (&Images, &Images),
    out: &Path,
) -> Result<ResnetSummary> {
    let steps_per_epoch = (train.count / args.batch.max(1)) as u64;
    let config = optimizer_config(args, steps_per_epoch)?;
    let path = out.join("model.safetensors");
    let (model, optimizer, start_step) = if args.resume {
        let loaded = checkpoint::load(&path)?;
        let model = checkpoint::resnet_from(gpu, &path, &loaded)?;
        if (model.config.variant, model.config.depth) != (variant, args.depth) {
            return Err(Error::data(
                &path,
                format!(
                    "holds a {} ResNet-{}, not the {} ResNet-{} asked for",
                    model.config.variant.name(),
                    model.config.depth,
                    variant.name(),
                    args.depth
                ),
            ));
        }
        let mut optimizer = Optimizer::new(gpu, &model.params(), config)?;
        let step = checkpoint::restore_run(gpu, &path, &loaded, &model.params(), &mut optimizer)?;
        eprintln!(
            "resuming {} after step {step} (epoch {} of {})",
            path.display(),
            step / steps_per_epoch.max(1) + 1,
            args.epochs
        );
        (model, optimizer, step)
    } else {
        let model = Resnet::new(
            gpu,
            ResnetConfig {
                variant,
                depth: args.depth,
                in_channels: train.channels,
                classes: train.classes,
                shortcut: args.shortcut,
                alpha_init: args.alpha_init,
                seed: args.seed,
            },
        )?;
        let optimizer = Optimizer::new(gpu, &model.params(), config)?;
        (model, optimizer, 0)
    };
    let mut optimizer = optimizer;
    let _lock = run_dir::claim(out, args.resume)?;
    let run = ResnetRun {
        label: format!("resnet{}-{}", args.depth, variant.name()),
        epochs: args.epochs,
        max_steps: args.steps,
        batch: args.batch,
        seed: args.seed,
        augment: args.augment.then_some(Augment {
            crop_pad: 4,
            flip: args.dataset != DatasetName::Mnist,
        }),
        log_every: args.log_every.max(1),
        target_accuracy: target_fraction(args.target_acc)?,
        out: Some(out.to_path_buf()),
        start_step,
        show_progress: !args.quiet,
        profile_step: args.profile,
    };
    train_resnet(gpu, &model, &mut optimizer, train, test, &run)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_summary(s: &ResnetSummary) {
    out!(
        "{}: {} steps in {}, {:.0} images/s, final train loss {:.4}, test loss {:.4}, test accuracy {:.2}%, memory: activations {:.1} MiB peak, parameters+gradients+optimizer {:.1} MiB{}",
        s.label,
        s.steps,
        format_duration(std::time::Duration::from_secs_f64(s.wall_seconds)),
        s.images_per_second,
        s.final_train_loss,
        s.test_loss,
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

pub fn train_resnet_command(gpu: &Gpu, args: &ResnetArgs) -> Result<()> {
    if args.epochs == 0 {
        return Err(Error::Invalid {
            what: "--epochs".into(),
            why: "must be at least 1".into(),
        });
    }
    if args.resume && !args.compare.is_empty() {
        return Err(Error::Invalid {
            what: "--resume".into(),
            why: "resumes one run; it does not combine with --compare".into(),
        });
    }
    target_fraction(args.target_acc)?;
    let (train, test) = load(args)?;
    // --out, or runs/resnetDEPTH-WHAT (the next free -2, -3, ... unless resuming).
    let name = |what: &str| {
        let base = PathBuf::from("runs").join(format!("resnet{}-{what}", args.depth));
        if args.resume {
            base
        } else {
            run_dir::fresh_default(&base)
        }
    };
    if args.compare.is_empty() {
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| name(args.variant.name()));
        let summary = run_one(gpu, args, args.variant, (&train, &test), &out)?;
        print_summary(&summary);
        eprintln!("run directory: {}", out.display());
        return Ok(());
    }
    let dir = args.out.clone().unwrap_or_else(|| name("compare"));
    let mut summaries = Vec::new();
    for &variant in &args.compare {
        let summary = run_one(
            gpu,
            args,
            variant,
            (&train, &test),
            &dir.join(variant.name()),
        )?;
        print_summary(&summary);
        summaries.push(summary);
    }
    let curves: Vec<Curve> = summaries
        .iter()
        .map(|s| Curve {
            label: s.label.clone(),
            points: s
                .accuracy_curve
                .iter()
                .map(|&(e, a)| (e as f64, 100.0 * a as f64))
                .collect(),
            x_label: "epoch".into(),
        })
        .collect();
    let svg = dir.join("test_accuracy.svg");
    let title = format!("ResNet-{} on {}", args.depth, args.dataset.name());
    plot_svg(&curves, "test accuracy (%)", &title, &svg)?;
    print_comparison(args, &summaries);
    eprintln!("test accuracy curves: {}", svg.display());
    Ok(())
}

fn print_comparison(args: &ResnetArgs, summaries: &[ResnetSummary]) {
    let target = target_fraction(args.target_acc).ok().flatten();
    let target_text = target.map_or("-".to_string(), |t| format!("{:.1}%", 100.0 * t));
    out!(
        "\n{:<24} {:>7} {:>14} {:>13} {:>12} {:>9} {:>10}",
        "variant",
        "epochs",
        "test accuracy",
        format!("epochs to {target_text}"),
        "speed-up",
        "images/s",
        "wall time"
    );
    let baseline = summaries.first().and_then(|s| s.epochs_to_target);
    for s in summaries {
        let reached = s
            .epochs_to_target
            .map_or("not reached".into(), |e| e.to_string());
        let speedup = match (baseline, s.epochs_to_target) {
            (Some(b), Some(e)) => format!("{:.2}x", b as f64 / e as f64),
            _ => "-".into(),
        };
        out!(
            "{:<24} {:>7} {:>13.2}% {:>13} {:>12} {:>9.0} {:>10}{}",
            s.label,
            s.accuracy_curve.last().map_or(0, |c| c.0),
            100.0 * s.test_accuracy,
            reached,
            speedup,
            s.images_per_second,
            format_duration(std::time::Duration::from_secs_f64(s.wall_seconds)),
            if s.diverged { "  diverged" } else { "" }
        );
    }
    if let Some(first) = summaries.first() {
        out!(
            "(speed-up: epochs to the target of {} divided by each variant's)",
            first.label
        );
    }
}
