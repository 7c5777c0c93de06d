//! `rezero train lm` (and plain `rezero train`, the main job): byte-level Transformers on
//! the built-in corpus or any file; `rezero sample`: text from a checkpoint.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rezero::data::text::{TextSplits, builtin_corpus};
use rezero::gpu::Gpu;
use rezero::nn::{BlockVariant, Transformer, TransformerConfig};
use rezero::train::checkpoint::{self, load_transformer};
use rezero::train::lm::{LmRun, LmSummary, sample_each, train_lm};
use rezero::train::progress::{first_step_note, format_duration, format_rate};
use rezero::{Error, Result};

use crate::flags::{self, OptimArgs, RunArgs, flag};
use crate::lm_compare::{Entry, VariantSpec, check_entries, print_comparison};
use crate::lm_preset::Preset;
use crate::start::{ModelSource, start};

#[derive(Args, Clone)]
#[command(
    mut_arg("steps", |a| a.default_value("300")),
    mut_arg("batch", |a| a.default_value("16")),
)]
pub struct LmArgs {
    /// The paper's comparison in one flag: `paper` (12 layers of d_model 512, 512-byte
    /// windows, LAMB 0.016, dropout 0.1, Post-Norm with warm-up against ReZero; needs a
    /// GPU) or `paper-small` (the same recipe sized for a CPU's software Vulkan, five
    /// variants). It sets the flags you leave at their defaults; the ones you give win.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Block type.
    #[arg(long, value_enum, default_value_t = BlockVariant::Rezero, conflicts_with = "compare")]
    pub variant: BlockVariant,
    /// Train each of these in turn (same data order and seed) and compare them. An entry is
    /// VARIANT[:warmup][:alpha=X]: `:warmup` gives it --warmup (when any entry says so,
    /// only those entries warm up; else all do), `:alpha=X` its own initial α; e.g.
    /// postnorm:warmup,postnorm,rezero,rezero:alpha=1.
    #[arg(long, value_delimiter = ',', value_parser = VariantSpec::parse, value_name = "VARIANT[:warmup][:alpha=X],...")]
    pub compare: Vec<VariantSpec>,
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub layers: u64,
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub d_model: u64,
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub heads: u64,
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub d_ff: u64,
    /// Window length in bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub seq: u64,
    /// ReLU instead of GELU in the feed-forward layers.
    #[arg(long)]
    relu: bool,
    /// One α per sublayer instead of one per block.
    #[arg(long)]
    alpha_per_sublayer: bool,
    /// Dropout probability in training, in [0, 1): on each sublayer's output before the
    /// residual add and between the feed-forward layers (the paper's runs: 0.1-0.2).
    #[arg(long, default_value_t = 0.0, value_parser = flags::fraction)]
    pub dropout: f32,
    /// Initial α of the ReZero blocks (finite).
    #[arg(long, default_value_t = 0.0, value_parser = flags::finite)]
    alpha_init: f32,
    /// Any file of bytes, split 90/5/5 into train/validation/test (default: the built-in corpus).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Evaluate on the validation windows (and write the checkpoint) every this many steps.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub eval_every: u64,
    /// Windows in the fixed validation set.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub eval_windows: u64,
    /// Stop a run when validation bits per byte reach this (and report the steps it took).
    #[arg(long, value_parser = flags::positive)]
    pub target_bpb: Option<f32>,
    /// Bytes of text to sample after training (0: none).
    #[arg(long, default_value_t = 200)]
    sample: usize,
    #[command(flatten)]
    pub optim: OptimArgs,
    #[command(flatten)]
    pub run: RunArgs,
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
    /// 0 picks the likeliest byte every time (finite, ≥ 0).
    #[arg(long, default_value_t = 0.8, value_parser = flags::non_negative)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl LmArgs {
    /// The warm-up steps `spec` trains with: --warmup, unless other entries of the
    /// comparison say `:warmup` and this one does not.
    fn warmup_for(&self, spec: &VariantSpec) -> u64 {
        spec.warmup_steps(&self.compare, self.optim.warmup)
    }

    fn model_config(&self, spec: &VariantSpec) -> TransformerConfig {
        TransformerConfig {
            variant: spec.variant,
            layers: self.layers as usize,
            d_model: self.d_model as usize,
            heads: self.heads as usize,
            d_ff: self.d_ff as usize,
            seq: self.seq as usize,
            gelu: !self.relu,
            alpha_per_sublayer: self.alpha_per_sublayer,
            alpha_init: spec.alpha(self.alpha_init),
            seed: self.run.seed,
        }
    }

    /// The flags that define a run of `spec` (compared on --resume).
    fn flags(&self, spec: &VariantSpec) -> Vec<(String, String)> {
        let data = self.data.as_ref();
        vec![
            flag("--variant", spec.variant.name()),
            flag("--layers", self.layers),
            flag("--d-model", self.d_model),
            flag("--heads", self.heads),
            flag("--d-ff", self.d_ff),
            flag("--seq", self.seq),
            flag("--relu", self.relu),
            flag("--alpha-per-sublayer", self.alpha_per_sublayer),
            flag("--alpha-init", spec.alpha(self.alpha_init)),
            flag("--alpha-lr-mult", self.optim.alpha_lr_mult),
            flag("--dropout", self.dropout),
            flag(
                "--data",
                data.map_or("built-in".into(), |d| d.display().to_string()),
            ),
            flag("--batch", self.run.batch),
            flag("--seed", self.run.seed),
        ]
    }
}

fn run_one(
    gpu: &Gpu,
    args: &LmArgs,
    spec: &VariantSpec,
    text: &TextSplits,
    out: PathBuf,
) -> Result<(LmSummary, Transformer)> {
    let optimizer = args.optim.config_with_warmup(None, args.warmup_for(spec))?;
    let config = args.model_config(spec);
    let footprint = config.footprint(args.run.batch as usize, args.run.precision)?;
    footprint.check(gpu, optimizer.method.state_buffers())?;
    let flags = args.flags(spec);
    let source = ModelSource {
        fresh: || Transformer::new(gpu, config.clone()),
        load: |path: &std::path::Path, c: &_| checkpoint::transformer_from(gpu, path, c),
        params: Transformer::params,
    };
    let optimizer = (optimizer, args.optim.alpha_lr_mult);
    let mut begun = start(gpu, args.run.at(&out), &flags, optimizer, source)?;
    let label = format!("{}-{}x{}", spec.name(), args.layers, args.d_model);
    let run = LmRun {
        run: args.run.config(label, Some(out), begun.step, flags),
        steps: args.run.steps.unwrap_or(300),
        seq: args.seq as usize,
        eval_every: args.eval_every,
        eval_windows: args.eval_windows as usize,
        target_bpb: args.target_bpb,
        dropout: args.dropout,
    };
    let summary = pollster::block_on(train_lm(
        gpu,
        &begun.model,
        &mut begun.optimizer,
        text,
        &run,
    ))?;
    Ok((summary, begun.model))
}

fn print_summary(s: &LmSummary) {
    let r = &s.run;
    out!(
        "{}: {} steps in {} ({} tokens/s{}), final train loss {} nats/byte, validation {} bits/byte{}{}, activations {:.1} MiB peak",
        r.label,
        r.steps,
        format_duration(std::time::Duration::from_secs_f64(r.wall_seconds)),
        format_rate(r.items_per_second),
        first_step_note(r.first_step_seconds),
        r.final_train_loss.map_or("-".into(), |l| format!("{l:.4}")),
        s.val_bpb.map_or("-".into(), |b| format!("{b:.4}")),
        s.steps_to_target
            .map_or(String::new(), |t| format!(", target reached at step {t}")),
        r.divergence.as_ref().map_or(String::new(), |d| format!(
            " (DIVERGED at step {}: {})",
            d.step, d.why
        )),
        r.peak_activation_bytes as f64 / 1048576.0
    );
}

pub fn train_lm_command(gpu: &Gpu, args: &LmArgs) -> Result<()> {
    let names: Vec<String> = args.compare.iter().map(VariantSpec::name).collect();
    flags::check_compare(&names, &args.run)?;
    check_entries(&args.compare, args.optim.warmup, args.alpha_init)?;
    let text = match &args.data {
        Some(path) => TextSplits::from_file(path, args.seq as usize)?,
        None => TextSplits::new(builtin_corpus()),
    };
    if args.compare.is_empty() {
        let spec = VariantSpec::plain(args.variant);
        let out = args.run.folder(&format!("lm-{}", args.variant.name()));
        let (summary, model) = run_one(gpu, args, &spec, &text, out.clone())?;
        print_summary(&summary);
        let checkpoint = out.join("model.safetensors");
        match checkpoint.exists() {
            true => out!("checkpoint: {}", checkpoint.display()),
            false => out!("checkpoint: none written (the run stopped before its first)"),
        }
        if args.sample > 0 && !summary.run.diverged() {
            out!("sample (temperature 0.8, prompt \"And \"):");
            stream_sample(gpu, &model, b"And ", (args.sample, 0.8, args.run.seed))?;
        }
        return summary.run.error().map_or(Ok(()), Err);
    }
    let dir = args.run.folder("lm-compare");
    let mut entries = Vec::new();
    for spec in &args.compare {
        let folder = dir.join(spec.name());
        let (summary, _) = run_one(gpu, args, spec, &text, folder.clone())?;
        print_summary(&summary);
        let warmup = args.warmup_for(spec);
        let spec = spec.clone();
        entries.push(Entry {
            spec,
            warmup,
            folder,
            summary,
        });
    }
    let title = format!("{} layers, d_model {}", args.layers, args.d_model);
    print_comparison(&title, &dir, &entries, args.target_bpb)
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
    let how = (args.len, args.temperature, args.seed);
    stream_sample(gpu, &model, args.prompt.as_bytes(), how)
}

/// Prints `prompt` and `len` bytes sampled after it (at `temperature`, from `seed`) as they
/// are drawn, then a newline: any length runs in bounded memory and shows its text at once.
/// A character at a time: bytes that are not UTF-8 show as U+FFFD, as a whole text would.
fn stream_sample(
    gpu: &Gpu,
    model: &Transformer,
    prompt: &[u8],
    how: (usize, f32, u64),
) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    let mut pending = Vec::new();
    let mut show = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let wrote = stdout
            .write_all(text.as_bytes())
            .and_then(|_| stdout.flush());
        wrote.map_err(|e| Error::io(std::path::Path::new("standard output"), "write", e))
    };
    show(prompt)?;
    let emit = |byte: u8| {
        pending.push(byte);
        match std::str::from_utf8(&pending) {
            Err(e) if e.error_len().is_none() && pending.len() < 4 => return Ok(()),
            _ => show(&std::mem::take(&mut pending))?,
        }
        Ok(())
    };
    pollster::block_on(sample_each(gpu, model, prompt, how, emit))?;
    show(&pending)?;
    show(b"\n")
}
