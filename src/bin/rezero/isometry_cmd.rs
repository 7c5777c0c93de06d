//! `rezero isometry`: the input-output Jacobian spectrum of a network's block stack.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rezero::analysis::isometry::{Spectrum, jacobian, singular_values};
use rezero::gpu::Gpu;
use rezero::nn::{Mlp, MlpConfig, MlpVariant, init};
use rezero::train::checkpoint;
use rezero::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Model {
    Mlp,
}

#[derive(Args)]
pub struct IsometryArgs {
    /// Which network (the Transformer joins later).
    #[arg(long, value_enum, default_value = "mlp")]
    model: Model,
    /// plain, residual, layernorm or rezero.
    #[arg(long, default_value = "rezero")]
    variant: MlpVariant,
    #[arg(long, default_value_t = 64)]
    depth: usize,
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// Initial α of every ReZero block (0 makes the stack the identity).
    #[arg(long, default_value_t = 0.0)]
    alpha_init: f32,
    /// Seeds the weights and the input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Take the model (variant, depth, width and weights) from a checkpoint that
    /// `rezero train mlp --out DIR` wrote (DIR/model.safetensors).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Write the singular values, one a line, to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

pub fn isometry(gpu: &Gpu, args: &IsometryArgs) -> Result<()> {
    let Model::Mlp = args.model;
    let model = match &args.checkpoint {
        Some(path) => checkpoint::load_mlp(gpu, path)?,
        None => {
            let config = MlpConfig {
                variant: args.variant,
                depth: args.depth,
                width: args.width,
                inputs: args.width,
                classes: 10,
                alpha_init: args.alpha_init,
                seed: args.seed,
            };
            Mlp::new(gpu, config)?
        }
    };
    let c = &model.config;
    // The Jacobian of the block stack h_D(h_0) at a standard-normal h_0.
    let x = init::normal(args.seed.wrapping_add(12345), c.width, 1.0);
    let (outputs, j) = jacobian(gpu, &x, |tape, h| model.blocks(tape, h))?;
    let spectrum = Spectrum::new(singular_values(outputs, c.width, &j));
    let weights = match &args.checkpoint {
        Some(path) => format!("trained weights from {}", path.display()),
        None => format!("initial weights, alpha init {}", c.alpha_init),
    };
    out!(
        "{} MLP, {} blocks of width {}, {weights}: Jacobian of the block stack at a standard-normal input",
        c.variant.name(),
        c.depth,
        c.width
    );
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
        std::fs::write(path, text).map_err(|e| Error::Data {
            path: path.clone(),
            why: format!("cannot write: {e}"),
        })?;
    }
    Ok(())
}
