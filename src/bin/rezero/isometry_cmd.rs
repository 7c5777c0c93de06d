//! `rezero isometry`: the input-output Jacobian spectrum of a network's block stack.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rezero::analysis::isometry::{Spectrum, jacobian, singular_values};
use rezero::gpu::Gpu;
use rezero::nn::{Mlp, MlpConfig, Transformer, TransformerConfig, init};
use rezero::train::checkpoint;
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
    /// Take the model (its configuration and weights) from a checkpoint that
    /// `rezero train mlp|lm --out DIR` wrote (DIR/model.safetensors).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Write the singular values, one a line, to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

fn weights(args: &IsometryArgs) -> String {
    match &args.checkpoint {
        Some(path) => format!("trained weights from {}", path.display()),
        None => format!("initial weights, alpha init {}", args.alpha_init),
    }
}

/// (description, rows, columns, Jacobian) of an MLP's block stack at a standard-normal input.
fn mlp_jacobian(gpu: &Gpu, args: &IsometryArgs) -> Result<(String, usize, usize, Vec<f32>)> {
    let model = match &args.checkpoint {
        Some(path) => checkpoint::load_mlp(gpu, path)?,
        None => Mlp::new(
            gpu,
            MlpConfig {
                variant: args.variant.parse()?,
                depth: args.depth,
                width: args.width,
                inputs: args.width,
                classes: 10,
                alpha_init: args.alpha_init,
                seed: args.seed,
            },
        )?,
    };
    let c = &model.config;
    let x = init::normal(args.seed.wrapping_add(12345), c.width, 1.0);
    let (outputs, j) = jacobian(gpu, &x, |tape, h| model.blocks(tape, h))?;
    Ok((
        format!(
            "{} MLP, {} blocks of width {}, {}",
            c.variant.name(),
            c.depth,
            c.width,
            weights(args)
        ),
        outputs,
        c.width,
        j,
    ))
}

/// The same for a Transformer's block stack over one sequence: every position's channels
/// flattened, so J is [seq·d_model, seq·d_model]; the input is standard normal.
fn transformer_jacobian(
    gpu: &Gpu,
    args: &IsometryArgs,
) -> Result<(String, usize, usize, Vec<f32>)> {
    let model = match &args.checkpoint {
        Some(path) => checkpoint::load_transformer(gpu, path)?,
        None => Transformer::new(
            gpu,
            TransformerConfig {
                variant: args.variant.parse()?,
                layers: args.layers,
                d_model: args.d_model,
                heads: args.heads,
                d_ff: 4 * args.d_model,
                seq: args.seq,
                gelu: true,
                alpha_per_sublayer: false,
                alpha_init: args.alpha_init,
                seed: args.seed,
            },
        )?,
    };
    let c = &model.config;
    let t = args.seq.min(c.seq);
    let n = t * c.d_model;
    let x = init::normal(args.seed.wrapping_add(12345), n, 1.0);
    let (outputs, j) = jacobian(gpu, &x, |tape, rows| {
        // [batch, t·d_model] rows are whole sequences: the stack sees [batch·t, d_model].
        let batch = rows.shape()[0];
        let positions = tape.reshape(rows, &[batch * t, c.d_model])?;
        let y = model.stack(tape, &positions, batch)?;
        tape.reshape(&y, &[batch, n])
    })?;
    Ok((
        format!(
            "{} Transformer, {} blocks of d_model {} and {} heads, {t} positions, {}",
            c.variant.name(),
            c.layers,
            c.d_model,
            c.heads,
            weights(args)
        ),
        outputs,
        n,
        j,
    ))
}

pub fn isometry(gpu: &Gpu, args: &IsometryArgs) -> Result<()> {
    let (what, rows, cols, j) = match args.model {
        Model::Mlp => mlp_jacobian(gpu, args)?,
        Model::Transformer => transformer_jacobian(gpu, args)?,
    };
    let spectrum = Spectrum::new(singular_values(rows, cols, &j)?);
    out!("{what}: Jacobian of the block stack at a standard-normal input");
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
