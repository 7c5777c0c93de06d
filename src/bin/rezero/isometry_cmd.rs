//! `rezero isometry`: the input-output Jacobian spectrum of a network's block stack.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use rezero::analysis::isometry::{ROWS_PER_PASS, Spectrum, check_side, jacobian, singular_values};
use rezero::gpu::Gpu;
use rezero::kernels::Dtype;
use rezero::nn::{Mlp, MlpConfig, Transformer, TransformerConfig, init};
use rezero::train::checkpoint::{self, Checkpoint};
use rezero::train::plot::{Curve, plot_svg};
use rezero::train::run_dir::kept_checkpoints;
use rezero::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Model {
    Mlp,
    Transformer,
}

#[derive(Args)]
pub struct IsometryArgs {
    /// Which network.
    #[arg(long, value_enum, default_value = "mlp")]
    model: Model,
    /// MLP: plain, residual, layernorm or rezero. Transformer: postnorm, prenorm, rezero,
    /// residual or rezero-postnorm.
    #[arg(long, default_value = "rezero")]
    variant: String,
    /// MLP blocks.
    #[arg(long, default_value_t = 64)]
    depth: usize,
    /// MLP width.
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 12)]
    layers: usize,
    #[arg(long, default_value_t = 32)]
    d_model: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Transformer: positions in the sequence (the Jacobian is over seq × d_model values).
    #[arg(long, default_value_t = 8)]
    seq: usize,
    /// Initial α of every ReZero block (0 makes the stack the identity).
    #[arg(long, default_value_t = 0.0)]
    alpha_init: f32,
    /// Seeds the weights and the input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Take the model (its kind, configuration and weights) from a checkpoint that
    /// `rezero train mlp|lm --out DIR` wrote (DIR/model.safetensors).
    #[arg(long, conflicts_with = "run")]
    checkpoint: Option<PathBuf>,
    /// The spectrum of every checkpoint a run kept (`rezero train ... --keep-checkpoints`),
    /// against the step: a table, RUN/isometry.csv and RUN/isometry.svg.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Transformer: include the final LayerNorm (Pre-Norm has one) in the Jacobian; by
    /// default it is of the residual blocks alone, as the paper measures it.
    #[arg(long)]
    with_final_norm: bool,
    /// Write the singular values, one a line, to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// The network whose block stack is studied.
enum Net {
    Mlp(Mlp),
    Transformer(Transformer),
}

/// The network a loaded checkpoint holds (its kind from the metadata).
fn network_from(gpu: &Gpu, path: &Path, loaded: &Checkpoint) -> Result<Net> {
    // The memory of the Jacobian's passes (ROWS_PER_PASS rows at once) and its side are
    // checked before anything is allocated.
    let what = |sizes: &str| format!("{} ({sizes})", path.display());
    match loaded.meta(path, "model")? {
        "mlp" => {
            let c = checkpoint::mlp_config(path, loaded)?;
            checkpoint::fits(gpu, path, c.footprint(ROWS_PER_PASS, Dtype::F32))?;
            check_side(&what(&format!("width {}", c.width)), Some(c.width))?;
            Ok(Net::Mlp(checkpoint::mlp_from(gpu, path, loaded)?))
        }
        "transformer" => {
            let c = checkpoint::transformer_config(path, loaded)?;
            checkpoint::fits(gpu, path, c.footprint(ROWS_PER_PASS, Dtype::F32))?;
            let sizes = format!("seq {} d_model {}", c.seq, c.d_model);
            check_side(&what(&sizes), c.seq.checked_mul(c.d_model))?;
            Ok(Net::Transformer(checkpoint::transformer_from(
                gpu, path, loaded,
            )?))
        }
        other => Err(Error::data(
            path,
            format!("holds a {other} model; isometry studies MLPs and Transformers"),
        )),
    }
}

/// Metadata that changes along a run; every other key names the run's model and flags.
const PROGRESS_KEYS: [&str; 4] = ["epoch", "step", "optimizer_steps", "tuning"];

/// The first metadata key (not one of [`PROGRESS_KEYS`]) on which two checkpoints differ:
/// then they are not of the same run's model.
fn other_model(a: &Checkpoint, b: &Checkpoint) -> Option<String> {
    let mut keys: Vec<&String> = a.metadata.keys().chain(b.metadata.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !PROGRESS_KEYS.contains(&k.as_str()))
        .find(|k| a.metadata.get(*k) != b.metadata.get(*k))
        .map(|k| {
            let show = |c: &Checkpoint| {
                c.metadata
                    .get(k)
                    .map_or("none".into(), |v| v.replace('\n', " "))
            };
            format!("its {k} is {}, the run's is {}", show(a), show(b))
        })
}

/// The network of `checkpoint` (its kind from the metadata), or a fresh one from the flags.
fn network(gpu: &Gpu, args: &IsometryArgs, checkpoint: Option<&Path>) -> Result<Net> {
    if let Some(path) = checkpoint {
        return network_from(gpu, path, &checkpoint::load(path)?);
    }
    // The Jacobian's side and the model's memory are checked before anything is allocated.
    match args.model {
        Model::Mlp => {
            check_side(&format!("--width {}", args.width), Some(args.width))?;
            let config = MlpConfig {
                variant: args.variant.parse()?,
                depth: args.depth,
                width: args.width,
                inputs: args.width,
                classes: 10,
                alpha_init: args.alpha_init,
                seed: args.seed,
            };
            config.footprint(ROWS_PER_PASS, Dtype::F32)?.check(gpu, 0)?;
            Ok(Net::Mlp(Mlp::new(gpu, config)?))
        }
        Model::Transformer => {
            let what = format!("--seq {} --d-model {}", args.seq, args.d_model);
            check_side(&what, args.seq.checked_mul(args.d_model))?;
            let config = TransformerConfig {
                variant: args.variant.parse()?,
                layers: args.layers,
                d_model: args.d_model,
                heads: args.heads,
                d_ff: args.d_model.saturating_mul(4),
                seq: args.seq,
                gelu: true,
                alpha_per_sublayer: false,
                alpha_init: args.alpha_init,
                seed: args.seed,
            };
            config.footprint(ROWS_PER_PASS, Dtype::F32)?.check(gpu, 0)?;
            Ok(Net::Transformer(Transformer::new(gpu, config)?))
        }
    }
}

/// (description, rows, columns, Jacobian) of an MLP's block stack at a standard-normal input.
fn mlp_jacobian(
    gpu: &Gpu,
    args: &IsometryArgs,
    model: &Mlp,
) -> Result<(String, usize, usize, Vec<f32>)> {
    let c = &model.config;
    check_side(&format!("width {}", c.width), Some(c.width))?;
    let x = init::normal(args.seed.wrapping_add(12345), c.width, 1.0);
    let (outputs, j) = pollster::block_on(jacobian(gpu, &x, |tape, h| model.blocks(tape, h)))?;
    let what = format!(
        "{} MLP, {} blocks of width {}",
        c.variant.name(),
        c.depth,
        c.width
    );
    Ok((what, outputs, c.width, j))
}

/// The same for a Transformer's residual blocks (and, if asked, its final norm) over one
/// sequence: every position's channels flattened, so J is [seq·d_model, seq·d_model].
fn transformer_jacobian(
    gpu: &Gpu,
    args: &IsometryArgs,
    model: &Transformer,
) -> Result<(String, usize, usize, Vec<f32>)> {
    let c = &model.config;
    let t = args.seq.min(c.seq);
    let what = format!("{t} positions of d_model {}", c.d_model);
    check_side(&what, t.checked_mul(c.d_model))?;
    let n = t * c.d_model;
    let x = init::normal(args.seed.wrapping_add(12345), n, 1.0);
    let (outputs, j) = pollster::block_on(jacobian(gpu, &x, |tape, rows| {
        // [batch, t·d_model] rows are whole sequences: the blocks see [batch·t, d_model].
        let batch = rows.shape()[0];
        let positions = tape.reshape(rows, &[batch * t, c.d_model])?;
        let y = match args.with_final_norm {
            true => model.stack(tape, &positions, batch)?,
            false => model.blocks(tape, &positions, batch)?,
        };
        tape.reshape(&y, &[batch, n])
    }))?;
    let norm = match (args.with_final_norm, model.final_norm.is_some()) {
        (true, true) => " and the final norm",
        _ => "",
    };
    let what = format!(
        "{} Transformer, {} blocks{norm} of d_model {} and {} heads, {t} positions",
        c.variant.name(),
        c.layers,
        c.d_model,
        c.heads
    );
    Ok((what, outputs, n, j))
}

/// The spectrum of `net`'s block stack, and what was measured.
fn spectrum(gpu: &Gpu, args: &IsometryArgs, net: &Net) -> Result<(String, Spectrum)> {
    let (what, rows, cols, j) = match net {
        Net::Mlp(m) => mlp_jacobian(gpu, args, m)?,
        Net::Transformer(t) => transformer_jacobian(gpu, args, t)?,
    };
    Ok((what, Spectrum::new(singular_values(rows, cols, &j)?)))
}

pub fn isometry(gpu: &Gpu, args: &IsometryArgs) -> Result<()> {
    if let Some(run) = &args.run {
        return isometry_over_run(gpu, args, run);
    }
    let net = network(gpu, args, args.checkpoint.as_deref())?;
    let (what, spectrum) = spectrum(gpu, args, &net)?;
    let weights = match &args.checkpoint {
        Some(path) => format!("trained weights from {}", path.display()),
        None => format!("initial weights, alpha init {}", args.alpha_init),
    };
    out!("{what}, {weights}: Jacobian of the block stack at a standard-normal input");
    out!(
        "singular values: {}  mean squared {:.6}  min {:.6}  max {:.6}",
        spectrum.singular_values.len(),
        spectrum.mean_squared,
        spectrum.min,
        spectrum.max
    );
    out!("{}", spectrum.histogram(12).trim_end());
    if let Some(path) = &args.csv {
        let text: String = std::iter::once("singular_value\n".to_string())
            .chain(spectrum.singular_values.iter().map(|s| format!("{s}\n")))
            .collect();
        std::fs::write(path, text).map_err(|e| Error::io(path, "write", e))?;
    }
    Ok(())
}

/// Errors unless every kept checkpoint is of the model in `own` (checked before the first
/// spectrum, so a refusal prints no rows).
fn check_same_model(kept: &[(u64, PathBuf)], own: &Path) -> Result<()> {
    let reference = checkpoint::load(own)?;
    for (_, path) in kept {
        if let Some(why) = other_model(&checkpoint::load(path)?, &reference) {
            return Err(Error::data(
                path,
                format!(
                    "is not a checkpoint of the model in {}: {why}",
                    own.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `--run RUN`: the spectrum of every kept checkpoint of a run against its step, printed
/// and written to RUN/isometry.csv and RUN/isometry.svg (mean σ², min σ, max σ).
fn isometry_over_run(gpu: &Gpu, args: &IsometryArgs, run: &Path) -> Result<()> {
    let kept = kept_checkpoints(run).map_err(|e| {
        Error::data(
            run,
            format!("{e}: train the run with --keep-checkpoints to study it"),
        )
    })?;
    if kept.is_empty() {
        return Err(Error::data(
            run,
            "has no kept checkpoints (train it with --keep-checkpoints)",
        ));
    }
    // Every kept checkpoint must be of the run's model (that of its model.safetensors, or
    // of its last kept checkpoint): never another run's, left in the folder.
    let own = match run.join("model.safetensors") {
        latest if latest.exists() => latest,
        _ => kept[kept.len() - 1].1.clone(),
    };
    check_same_model(&kept, &own)?;
    let mut rows = Vec::new();
    for (step, path) in &kept {
        let loaded = checkpoint::load(path)?;
        let (what, s) = spectrum(gpu, args, &network_from(gpu, path, &loaded)?)?;
        if rows.is_empty() {
            out!(
                "{what}: the block stack's Jacobian at each kept checkpoint of {}",
                run.display()
            );
            out!(
                "{:>10} {:>14} {:>12} {:>12}",
                "step",
                "mean σ²",
                "min σ",
                "max σ"
            );
        }
        out!(
            "{step:>10} {:>14.6} {:>12.6} {:>12.6}",
            s.mean_squared,
            s.min,
            s.max
        );
        rows.push((*step as f64, [s.mean_squared, s.min, s.max]));
    }
    let csv: String = std::iter::once("step,mean_sq,min,max\n".to_string())
        .chain(
            rows.iter()
                .map(|(x, v)| format!("{x},{},{},{}\n", v[0], v[1], v[2])),
        )
        .collect();
    let path = run.join("isometry.csv");
    std::fs::write(&path, csv).map_err(|e| Error::io(&path, "write", e))?;
    let curves: Vec<Curve> = ["mean σ²", "min σ", "max σ"]
        .iter()
        .enumerate()
        .map(|(i, label)| Curve {
            label: label.to_string(),
            points: rows.iter().map(|(x, v)| (*x, v[i])).collect(),
            x_label: "step".into(),
        })
        .collect();
    let svg = run.join("isometry.svg");
    plot_svg(
        &curves,
        "singular values",
        "Jacobian of the block stack over training",
        &svg,
    )?;
    eprintln!("wrote {} and {}", path.display(), svg.display());
    Ok(())
}
