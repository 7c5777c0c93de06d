//! Deep fully-connected networks, as in the paper's fully-connected experiments: an input
//! projection, `depth` blocks of one variant, and a linear classifier head.

use crate::gpu::{Error, Gpu, Result};

use crate::tape::{Activation, Param, Tape, Tensor};

use super::init::xavier_normal;

/// The block `x ← ...` of each layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum MlpVariant {
    /// x ← relu(W x + b)
    Plain,
    /// x ← x + relu(W x + b)
    Residual,
    /// x ← LN(x + relu(W x + b))
    #[cfg_attr(feature = "cli", value(name = "layernorm"))]
    LayerNorm,
    /// x ← x + α_i · relu(W x + b), α_i initialised to `alpha_init` (0)
    Rezero,
}

impl MlpVariant {
    pub const ALL: [MlpVariant; 4] = [
        MlpVariant::Plain,
        MlpVariant::Residual,
        MlpVariant::LayerNorm,
        MlpVariant::Rezero,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MlpVariant::Plain => "plain",
            MlpVariant::Residual => "residual",
            MlpVariant::LayerNorm => "layernorm",
            MlpVariant::Rezero => "rezero",
        }
    }
}

impl std::str::FromStr for MlpVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<MlpVariant> {
        MlpVariant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| Error::Invalid {
                what: "MLP variant".into(),
                why: format!("'{s}' is not one of plain, residual, layernorm, rezero"),
            })
    }
}

/// Shape and initialisation of an MLP.
#[derive(Clone, Debug)]
pub struct MlpConfig {
    pub variant: MlpVariant,
    pub depth: usize,
    pub width: usize,
    pub inputs: usize,
    pub classes: usize,
    /// Initial α of every ReZero block (the paper: 0).
    pub alpha_init: f32,
    pub seed: u64,
}

/// The parameters, by name. Initialisation: every weight Xavier-normal with gain √2
/// (He-normal for the square block weights), biases 0, LayerNorm gain 1 and bias 0, α =
/// `alpha_init`. Weight decay applies to the weights only.
#[derive(Debug)]
pub struct Mlp {
    pub config: MlpConfig,
    /// [width, inputs]
    pub w_in: Param,
    /// [width]
    pub b_in: Param,
    /// `depth` × [width, width]
    pub w: Vec<Param>,
    /// `depth` × [width]
    pub b: Vec<Param>,
    /// [depth]: every block's α (rezero only)
    pub alphas: Option<Param>,
    /// `depth` × (gain [width], bias [width]) (layernorm only)
    pub norms: Vec<(Param, Param)>,
    /// [classes, width]
    pub w_out: Param,
    /// [classes]
    pub b_out: Param,
}

const GAIN: f32 = std::f32::consts::SQRT_2;

impl Mlp {
    pub fn new(gpu: &Gpu, config: MlpConfig) -> Result<Mlp> {
        let (d, w, seed) = (config.depth, config.width, config.seed);
        if d == 0 || w == 0 || config.inputs == 0 || config.classes == 0 {
            return Err(Error::Invalid {
                what: "MLP shape".into(),
                why: format!(
                    "depth {d}, width {w}, inputs {}, classes {} must all be at least 1",
                    config.inputs, config.classes
                ),
            });
        }
        let weight = |name: &str, s: u64, out: usize, inp: usize| {
            Param::new(
                gpu,
                name,
                &[out, inp],
                &xavier_normal(s, out, inp, GAIN),
                true,
            )
        };
        let zeros = |name: &str, n: usize| Param::new(gpu, name, &[n], &vec![0.0; n], false);
        let blocks = 0..d;
        let is = |v| config.variant == v;
        let alphas = is(MlpVariant::Rezero)
            .then(|| Param::new(gpu, "alphas", &[d], &vec![config.alpha_init; d], false))
            .transpose()?;
        let norms = if is(MlpVariant::LayerNorm) {
            let norm = |i| -> Result<(Param, Param)> {
                let gain = Param::new(gpu, &format!("ln{i}.gain"), &[w], &vec![1.0; w], false)?;
                Ok((gain, zeros(&format!("ln{i}.bias"), w)?))
            };
            blocks.clone().map(norm).collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Mlp {
            w_in: weight("w_in", seed, w, config.inputs)?,
            b_in: zeros("b_in", w)?,
            w: blocks
                .clone()
                .map(|i| weight(&format!("w{i}"), seed.wrapping_add(1 + i as u64), w, w))
                .collect::<Result<_>>()?,
            b: blocks
                .map(|i| zeros(&format!("b{i}"), w))
                .collect::<Result<_>>()?,
            alphas,
            norms,
            w_out: weight("w_out", seed.wrapping_add(d as u64 + 1), config.classes, w)?,
            b_out: zeros("b_out", config.classes)?,
            config,
        })
    }

    /// Every parameter, in a fixed order (the optimizer's).
    pub fn params(&self) -> Vec<&Param> {
        let mut all = vec![&self.w_in, &self.b_in];
        all.extend(self.w.iter().chain(&self.b));
        all.extend(self.alphas.iter());
        all.extend(self.norms.iter().flat_map(|(g, b)| [g, b]));
        all.extend([&self.w_out, &self.b_out]);
        all
    }

    /// Bytes of parameter values on the GPU (gradients take as much again).
    pub fn param_bytes(&self) -> u64 {
        self.params().iter().map(|p| p.len() as u64 * 4).sum()
    }

    /// Logits [batch, classes] of x [batch, inputs].
    pub fn forward(&self, tape: &mut Tape, x: &Tensor) -> Result<Tensor> {
        let mut h = self.hidden(tape, x)?;
        let (w_out, b_out) = (tape.param(&self.w_out), tape.param(&self.b_out));
        h = tape.linear(&h, &w_out, Some(&b_out))?;
        Ok(h)
    }

    /// The last hidden layer [batch, width]: the block stack whose Jacobian `isometry`
    /// studies.
    pub fn hidden(&self, tape: &mut Tape, x: &Tensor) -> Result<Tensor> {
        let (w_in, b_in) = (tape.param(&self.w_in), tape.param(&self.b_in));
        let h = tape.linear(x, &w_in, Some(&b_in))?;
        self.blocks(tape, &h)
    }

    /// The `depth` blocks applied to h [batch, width].
    pub fn blocks(&self, tape: &mut Tape, h: &Tensor) -> Result<Tensor> {
        let alphas = self.alphas.as_ref().map(|a| tape.param(a));
        let mut h = h.clone();
        for i in 0..self.config.depth {
            let (w, b) = (tape.param(&self.w[i]), tape.param(&self.b[i]));
            let f = tape.linear_activation(&h, &w, &b, Activation::Relu)?;
            h = match self.config.variant {
                MlpVariant::Plain => f,
                MlpVariant::Residual => tape.add(&h, &f)?,
                MlpVariant::LayerNorm => {
                    let sum = tape.add(&h, &f)?;
                    let (g, bn) = (tape.param(&self.norms[i].0), tape.param(&self.norms[i].1));
                    tape.layernorm(&sum, &g, &bn, 1e-5)?
                }
                MlpVariant::Rezero => {
                    tape.rezero(&h, &f, alphas.as_ref().expect("rezero has alphas"), i)?
                }
            };
        }
        Ok(h)
    }
}
