//! `rezero train lm` (and plain `rezero train`, the main job): byte-level Transformers on
//! the built-in corpus or any file; `rezero sample`: text from a checkpoint.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rezero::data::text::{TextSplits, builtin_corpus};
use rezero::gpu::Gpu;
use rezero::nn::{BlockVariant, Transformer, TransformerConfig};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::train::checkpoint::{self, load_transformer};
use rezero::train::lm::{LmRun, LmSummary, sample, train_lm};
use rezero::train::plot::{Curve, plot_svg};
use rezero::train::progress::format_duration;
use rezero::train::run_dir;
use rezero::{Error, Result};

#[derive(Args, Clone)]
pub struct LmArgs {
    /// Block type: postnorm, prenorm, rezero, residual or rezero-postnorm.
    #[arg(long, default_value = "rezero")]
    variant: BlockVariant,
    /// Train each of these variants in turn (same data order and seed) and compare them.
    #[arg(long, value_delimiter = ',')]
    compare: Vec<BlockVariant>,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 512)]
    d_ff: usize,
    /// Window length in bytes.
    #[arg(long, default_value_t = 64)]
    seq: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// ReLU instead of GELU in the feed-forward layers.
    #[arg(long)]
    relu: bool,
    /// One α per sublayer instead of one per block.
    #[arg(long)]
    alpha_per_sublayer: bool,
    #[arg(long, default_value_t = 0.0)]
    alpha_init: f32,
    /// Any file of bytes, split 90/5/5 into train/validation/test (default: the built-in corpus).
    #[arg(long)]
    data: Option<PathBuf>,
    /// sgd, adagrad, adam or adamw.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    #[arg(long)]
    clip: Option<f32>,
    /// constant, step:M1,M2[@GAMMA] or cosine:TOTAL.
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    #[arg(long, default_value_t = 300)]
    steps: u64,
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    /// Windows in the fixed validation set.
    #[arg(long, default_value_t = 64)]
    eval_windows: usize,
    /// Stop a run when validation bits per byte reach this (and report the steps it took).
    #[arg(long)]
    target_bpb: Option<f32>,
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (default runs/lm-VARIANT, or runs/lm-compare).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out (its model.safetensors: weights, optimizer state, step) up
    /// to --steps, with the same data order; the model's shape comes from the checkpoint.
    #[arg(long)]
    resume: bool,
    /// Bytes of text to sample after training (0: none).
    #[arg(long, default_value_t = 200)]
    sample: usize,
    #[arg(long)]
    quiet: bool,
    /// Time every dispatch of training step N (from 1) and print where its time went,
    /// by kernel entry point.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    profile: Option<u64>,
}

impl LmArgs {
    /// The defaults: what plain `rezero train` runs.
    pub fn main_job() -> LmArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: LmArgs,
        }
        Wrapper::parse_from(["rezero"]).args
    }
}

#[derive(Args)]
pub struct SampleArgs {
    /// A model.safetensors written by `rezero train lm`, or its run directory.
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long, default_value = "")]
    prompt: String,
    #[arg(long, default_value_t = 300)]
    len: usize,
    /// 0 picks the likeliest byte every time.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn run_one(
    gpu: &Gpu,
    args: &LmArgs,
    variant: BlockVariant,
    text: &TextSplits,
    out: PathBuf,
) -> Result<(LmSummary, Transformer)> {
    let optimizer_config = OptimizerConfig {
        method: Method::parse(&args.optimizer)?,
        lr: args.lr,
        weight_decay: args.weight_decay,
        clip: args.clip,
        schedule: Schedule::parse(&args.schedule, args.warmup)?,
    };
    let checkpoint_path = out.join("model.safetensors");
    let (model, mut optimizer, start_step) = if args.resume {
        let checkpoint = checkpoint::load(&checkpoint_path)?;
        let model = checkpoint::transformer_from(gpu, &checkpoint_path, &checkpoint)?;
        let mut optimizer = Optimizer::new(gpu, &model.params(), optimizer_config)?;
        let step = checkpoint::restore_run(
            gpu,
            &checkpoint_path,
            &checkpoint,
            &model.params(),
            &mut optimizer,
        )?;
        eprintln!(
            "resuming {} at step {step} of {}",
            checkpoint_path.display(),
            args.steps
        );
        (model, optimizer, step)
    } else {
        let config = TransformerConfig {
            variant,
            layers: args.layers,
            d_model: args.d_model,
            heads: args.heads,
            d_ff: args.d_ff,
            seq: args.seq,
            gelu: !args.relu,
            alpha_per_sublayer: args.alpha_per_sublayer,
            alpha_init: args.alpha_init,
            seed: args.seed,
        };
        let model = Transformer::new(gpu, config)?;
        let optimizer = Optimizer::new(gpu, &model.params(), optimizer_config)?;
        (model, optimizer, 0)
    };
    let _lock = run_dir::claim(&out, args.resume)?;
    let c = &model.config;
    let run = LmRun {
        label: format!("{}-{}x{}", c.variant.name(), c.layers, c.d_model),
        steps: args.steps,
        batch: args.batch,
        seq: args.seq,
        seed: args.seed,
        eval_every: args.eval_every,
        eval_windows: args.eval_windows,
        log_every: args.log_every,
        target_bpb: args.target_bpb,
        out: Some(out),
        start_step,
        show_progress: !args.quiet,
        profile_step: args.profile,
    };
    Ok((train_lm(gpu, &model, &mut optimizer, text, &run)?, model))
}

fn print_summary(s: &LmSummary) {
    out!(
        "{}: {} steps in {} ({:.0} tokens/s), final train loss {:.4} nats/byte, validation {:.4} bits/byte{}{}, activations {:.1} MiB peak",
        s.label,
        s.steps,
        format_duration(std::time::Duration::from_secs_f64(s.wall_seconds)),
        s.tokens_per_second,
        s.final_train_loss,
        s.val_bpb,
        s.steps_to_target
            .map_or(String::new(), |t| format!(", target reached at step {t}")),
        if s.diverged { " (DIVERGED)" } else { "" },
        s.peak_activation_bytes as f64 / 1048576.0
    );
}

/// `--out`, or `runs/NAME` (the next free `runs/NAME-2`, ... when that holds a run and this
/// is not a resume).
fn default_out(args: &LmArgs, name: &str) -> PathBuf {
    match &args.out {
        Some(out) => out.clone(),
        None if args.resume => PathBuf::from("runs").join(name),
        None => run_dir::fresh_default(&PathBuf::from("runs").join(name)),
    }
}

pub fn train_lm_command(gpu: &Gpu, args: &LmArgs) -> Result<()> {
    let text = match &args.data {
        Some(path) => TextSplits::from_file(path, args.seq)?,
        None => TextSplits::new(builtin_corpus()),
    };
    if args.compare.is_empty() {
        let out = default_out(args, &format!("lm-{}", args.variant.name()));
        let (summary, model) = run_one(gpu, args, args.variant, &text, out.clone())?;
        print_summary(&summary);
        out!("checkpoint: {}", out.join("model.safetensors").display());
        if args.sample > 0 {
            let text = sample(gpu, &model, b"And ", args.sample, 0.8, args.seed)?;
            out!(
                "sample (temperature 0.8, prompt \"And \"):\nAnd {}",
                String::from_utf8_lossy(&text)
            );
        }
        return Ok(());
    }
    let dir = default_out(args, "lm-compare");
    let mut summaries = Vec::new();
    for &variant in &args.compare {
        let (summary, _) = run_one(gpu, args, variant, &text, dir.join(variant.name()))?;
        print_summary(&summary);
        summaries.push(summary);
    }
    let curves: Vec<Curve> = summaries
        .iter()
        .map(|s| Curve {
            label: s.label.clone(),
            points: s
                .val_curve
                .iter()
                .map(|&(x, y)| (x as f64, y as f64))
                .collect(),
            x_label: "step".into(),
        })
        .collect();
    let svg = dir.join("val_bpb.svg");
    plot_svg(
        &curves,
        "validation bits per byte",
        &format!("{} layers, d_model {}", args.layers, args.d_model),
        &svg,
    )?;
    let baseline = summaries
        .iter()
        .find(|s| s.label.starts_with("postnorm-"))
        .and_then(|s| s.steps_to_target);
    out!(
        "\n{:<24} {:>8} {:>12} {:>16} {:>10} {:>10}",
        "variant",
        "steps",
        "val bpb",
        "steps to target",
        "speed-up",
        "wall time"
    );
    for s in &summaries {
        let speedup = match (baseline, s.steps_to_target) {
            (Some(b), Some(t)) => format!("{:.2}x", b as f64 / t as f64),
            _ => "-".into(),
        };
        out!(
            "{:<24} {:>8} {:>12.4} {:>16} {:>10} {:>10}",
            s.label,
            s.steps,
            s.val_bpb,
            s.steps_to_target
                .map_or("not reached".into(), |t| t.to_string()),
            speedup,
            format_duration(std::time::Duration::from_secs_f64(s.wall_seconds))
        );
    }
    eprintln!("validation curves: {}", svg.display());
    if args.target_bpb.is_none() {
        eprintln!("(give --target-bpb X to count the steps each variant needs to reach X)");
    }
    Ok(())
}

pub fn sample_command(gpu: &Gpu, args: &SampleArgs) -> Result<()> {
    let path = if args.checkpoint.is_dir() {
        args.checkpoint.join("model.safetensors")
    } else {
        args.checkpoint.clone()
    };
    let model = load_transformer(gpu, &path)?;
    if args.len == 0 {
        return Err(Error::Invalid {
            what: "--len".into(),
            why: "must be at least 1".into(),
        });
    }
    let text = sample(
        gpu,
        &model,
        args.prompt.as_bytes(),
        args.len,
        args.temperature,
        args.seed,
    )?;
    out!("{}{}", args.prompt, String::from_utf8_lossy(&text));
    Ok(())
}
