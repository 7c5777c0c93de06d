//! Decoder-only character Transformer: byte embedding plus learned positions, `layers`
//! blocks of causal multi-head self-attention and a feed-forward layer, and a projection to
//! 256 logits, with the block variants of the paper's Transformer experiments.

use crate::gpu::{Error, Gpu, Result};

use crate::tape::{Activation, Param, Tape, Tensor};

use super::init::{normal, xavier_normal};

/// How each block combines a sublayer F (attention or feed-forward) with the stream x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum BlockVariant {
    /// x = LN(x + F(x))
    #[cfg_attr(feature = "cli", value(name = "postnorm"))]
    PostNorm,
    /// x = x + F(LN(x)), and a final LN before the output projection
    #[cfg_attr(feature = "cli", value(name = "prenorm"))]
    PreNorm,
    /// x = x + α·F(x), α = 0 at the start, no LayerNorm anywhere
    Rezero,
    /// x = x + F(x): ReZero with α fixed at 1
    Residual,
    /// x = LN(x + α·F(x))
    #[cfg_attr(feature = "cli", value(name = "rezero-postnorm"))]
    RezeroPostNorm,
}

impl BlockVariant {
    pub const ALL: [BlockVariant; 5] = [
        BlockVariant::PostNorm,
        BlockVariant::PreNorm,
        BlockVariant::Rezero,
        BlockVariant::Residual,
        BlockVariant::RezeroPostNorm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BlockVariant::PostNorm => "postnorm",
            BlockVariant::PreNorm => "prenorm",
            BlockVariant::Rezero => "rezero",
            BlockVariant::Residual => "residual",
            BlockVariant::RezeroPostNorm => "rezero-postnorm",
        }
    }

    /// Whether the blocks have a trainable α.
    pub fn has_alpha(self) -> bool {
        matches!(self, BlockVariant::Rezero | BlockVariant::RezeroPostNorm)
    }

    fn has_block_norms(self) -> bool {
        matches!(
            self,
            BlockVariant::PostNorm | BlockVariant::PreNorm | BlockVariant::RezeroPostNorm
        )
    }
}

impl std::str::FromStr for BlockVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<BlockVariant> {
        BlockVariant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| Error::Invalid {
                what: "Transformer variant".into(),
                why: format!(
                    "'{s}' is not one of postnorm, prenorm, rezero, residual, rezero-postnorm"
                ),
            })
    }
}

/// Shape and initialisation of a Transformer.
#[derive(Clone, Debug)]
pub struct TransformerConfig {
    pub variant: BlockVariant,
    pub layers: usize,
    pub d_model: usize,
    pub heads: usize,
    pub d_ff: usize,
    /// Longest sequence (rows of the positional embedding).
    pub seq: usize,
    /// GELU (true) or ReLU in the feed-forward layer.
    pub gelu: bool,
    /// One α per sublayer instead of one per block shared by both.
    pub alpha_per_sublayer: bool,
    pub alpha_init: f32,
    pub seed: u64,
}

/// A linear layer: w [out, in], b [out].
#[derive(Debug)]
pub struct Linear {
    pub w: Param,
    pub b: Param,
}

/// A LayerNorm's gain and bias, [d_model] each.
#[derive(Debug)]
pub struct Norm {
    pub gain: Param,
    pub bias: Param,
}

/// One block's parameters.
#[derive(Debug)]
pub struct Block {
    /// [3·d_model, d_model]: queries, keys and values of every head, side by side
    pub qkv: Linear,
    /// [d_model, d_model]
    pub proj: Linear,
    /// [d_ff, d_model]
    pub ff1: Linear,
    /// [d_model, d_ff]
    pub ff2: Linear,
    /// Before (prenorm) or after (postnorm variants) each sublayer; none for rezero and residual.
    pub norms: Option<(Norm, Norm)>,
}

/// The parameters. Initialisation: token and position embeddings N(0, 0.02²); every linear
/// weight Xavier-normal (gain 1), biases 0; LayerNorm gains 1, biases 0; α = `alpha_init`
/// (0: every ReZero block starts as the identity). The same weights for every variant with
/// the same seed. Weight decay applies to the linear weights only.
#[derive(Debug)]
pub struct Transformer {
    pub config: TransformerConfig,
    /// [256, d_model]
    pub tokens: Param,
    /// [seq, d_model]
    pub positions: Param,
    pub blocks: Vec<Block>,
    /// [layers] or [2·layers] (alpha_per_sublayer): every block's α (rezero variants)
    pub alphas: Option<Param>,
    /// The final LayerNorm (prenorm only)
    pub final_norm: Option<Norm>,
    /// [256, d_model]
    pub out: Linear,
}

const VOCAB: usize = 256;

impl TransformerConfig {
    /// Errors unless every size is positive, d_model a multiple of heads, and the head
    /// dimension within what the attention kernel takes.
    pub fn check(&self) -> Result<()> {
        let c = self;
        if c.layers == 0
            || c.d_model == 0
            || c.heads == 0
            || c.d_ff == 0
            || c.seq == 0
            || c.d_model % c.heads != 0
        {
            return Err(Error::Invalid {
                what: "Transformer shape".into(),
                why: format!(
                    "layers {}, d_model {}, heads {}, d_ff {}, seq {}: all must be positive and d_model a multiple of heads",
                    c.layers, c.d_model, c.heads, c.d_ff, c.seq
                ),
            });
        }
        if c.d_model / c.heads > crate::kernels::attention::MAX_HEAD_DIM as usize {
            return Err(Error::Invalid {
                what: "head dimension".into(),
                why: format!(
                    "d_model / heads = {} is above {}",
                    c.d_model / c.heads,
                    crate::kernels::attention::MAX_HEAD_DIM
                ),
            });
        }
        Ok(())
    }
}

/// Makes the layers' parameters in order, each linear layer's weights from the next seed.
struct Init<'a> {
    gpu: &'a Gpu,
    seed: u64,
}

impl Init<'_> {
    /// Xavier-normal weights [out, inp] and zero biases [out].
    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        self.seed = self.seed.wrapping_add(1);
        let weights = xavier_normal(self.seed, out, inp, 1.0);
        Ok(Linear {
            w: Param::new(self.gpu, &format!("{name}.w"), &[out, inp], &weights, true)?,
            b: Param::new(
                self.gpu,
                &format!("{name}.b"),
                &[out],
                &vec![0.0; out],
                false,
            )?,
        })
    }

    /// A LayerNorm over `dm`: gain 1, bias 0.
    fn norm(&self, name: &str, dm: usize) -> Result<Norm> {
        Ok(Norm {
            gain: Param::new(
                self.gpu,
                &format!("{name}.gain"),
                &[dm],
                &vec![1.0; dm],
                false,
            )?,
            bias: Param::new(
                self.gpu,
                &format!("{name}.bias"),
                &[dm],
                &vec![0.0; dm],
                false,
            )?,
        })
    }
}

impl Transformer {
    pub fn new(gpu: &Gpu, config: TransformerConfig) -> Result<Transformer> {
        config.check()?;
        let c = &config;
        let dm = c.d_model;
        let mut init = Init { gpu, seed: c.seed };
        let mut blocks = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            // Field order is initialisation order: the seeds follow it.
            blocks.push(Block {
                qkv: init.linear(&format!("block{i}.qkv"), 3 * dm, dm)?,
                proj: init.linear(&format!("block{i}.proj"), dm, dm)?,
                ff1: init.linear(&format!("block{i}.ff1"), c.d_ff, dm)?,
                ff2: init.linear(&format!("block{i}.ff2"), dm, c.d_ff)?,
                norms: match c.variant.has_block_norms() {
                    true => Some((
                        init.norm(&format!("block{i}.norm1"), dm)?,
                        init.norm(&format!("block{i}.norm2"), dm)?,
                    )),
                    false => None,
                },
            });
        }
        let out = init.linear("out", VOCAB, dm)?;
        let alpha_count = if c.alpha_per_sublayer {
            2 * c.layers
        } else {
            c.layers
        };
        Ok(Transformer {
            tokens: Param::new(
                gpu,
                "tokens",
                &[VOCAB, dm],
                &normal(c.seed ^ 0x7, VOCAB * dm, 0.02),
                false,
            )?,
            positions: Param::new(
                gpu,
                "positions",
                &[c.seq, dm],
                &normal(c.seed ^ 0x9, c.seq * dm, 0.02),
                false,
            )?,
            blocks,
            alphas: c
                .variant
                .has_alpha()
                .then(|| {
                    Param::new(
                        gpu,
                        "alphas",
                        &[alpha_count],
                        &vec![c.alpha_init; alpha_count],
                        false,
                    )
                })
                .transpose()?,
            final_norm: (c.variant == BlockVariant::PreNorm)
                .then(|| init.norm("final_norm", dm))
                .transpose()?,
            out,
            config,
        })
    }

    /// Every parameter, in a fixed order (the optimizer's and the checkpoint's).
    pub fn params(&self) -> Vec<&Param> {
        let mut all = vec![&self.tokens, &self.positions];
        for b in &self.blocks {
            for l in [&b.qkv, &b.proj, &b.ff1, &b.ff2] {
                all.extend([&l.w, &l.b]);
            }
            if let Some((n1, n2)) = &b.norms {
                all.extend([&n1.gain, &n1.bias, &n2.gain, &n2.bias]);
            }
        }
        all.extend(self.alphas.iter());
        if let Some(n) = &self.final_norm {
            all.extend([&n.gain, &n.bias]);
        }
        all.extend([&self.out.w, &self.out.b]);
        all
    }

    /// Logits [batch·t, 256] for byte ids [batch·t] (t ≤ seq).
    pub fn forward(&self, tape: &mut Tape, ids: &[u32], batch: usize) -> Result<Tensor> {
        let x = self.embed(tape, ids, batch)?;
        let h = self.stack(tape, &x, batch)?;
        let (w, b) = (tape.param(&self.out.w), tape.param(&self.out.b));
        tape.linear(&h, &w, Some(&b))
    }

    /// Token plus position embeddings [batch·t, d_model].
    pub fn embed(&self, tape: &mut Tape, ids: &[u32], batch: usize) -> Result<Tensor> {
        if batch == 0
            || ids.len() % batch != 0
            || ids.len() / batch > self.config.seq
            || ids.is_empty()
        {
            return Err(Error::Shape {
                op: "transformer",
                expected: format!("batch × t ids with t ≤ {}", self.config.seq),
                got: format!("{} ids for batch {batch}", ids.len()),
            });
        }
        let t = ids.len() / batch;
        let positions: Vec<u32> = (0..ids.len()).map(|i| (i % t) as u32).collect();
        let (tok, pos) = (tape.param(&self.tokens), tape.param(&self.positions));
        let a = tape.embedding(&tok, ids)?;
        let b = tape.embedding(&pos, &positions)?;
        tape.add(&a, &b)
    }

    /// The block stack and the final norm (Pre-Norm has one): [batch·t, d_model] to
    /// [batch·t, d_model].
    pub fn stack(&self, tape: &mut Tape, x: &Tensor, batch: usize) -> Result<Tensor> {
        let x = self.blocks(tape, x, batch)?;
        match &self.final_norm {
            Some(n) => {
                let (g, b) = (tape.param(&n.gain), tape.param(&n.bias));
                tape.layernorm(&x, &g, &b, 1e-5)
            }
            None => Ok(x),
        }
    }

    /// The residual blocks alone, without the final norm: [batch·t, d_model] to
    /// [batch·t, d_model]. The part whose Jacobian `isometry` studies, as the paper does.
    pub fn blocks(&self, tape: &mut Tape, x: &Tensor, batch: usize) -> Result<Tensor> {
        let alphas = self.alphas.as_ref().map(|a| tape.param(a));
        let mut x = x.clone();
        for (i, block) in self.blocks.iter().enumerate() {
            let (a1, a2) = if self.config.alpha_per_sublayer {
                (2 * i, 2 * i + 1)
            } else {
                (i, i)
            };
            x = self.sublayer(
                tape,
                &x,
                block,
                true,
                alphas.as_ref().map(|a| (a, a1)),
                batch,
            )?;
            x = self.sublayer(
                tape,
                &x,
                block,
                false,
                alphas.as_ref().map(|a| (a, a2)),
                batch,
            )?;
        }
        Ok(x)
    }

    /// One sublayer (attention when `attention`, else feed-forward) combined with x as the
    /// variant says.
    fn sublayer(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        block: &Block,
        attention: bool,
        alpha: Option<(&Tensor, usize)>,
        batch: usize,
    ) -> Result<Tensor> {
        let norm = block
            .norms
            .as_ref()
            .map(|(n1, n2)| if attention { n1 } else { n2 });
        let layernorm = |tape: &mut Tape, t: &Tensor, n: &Norm| -> Result<Tensor> {
            let (g, b) = (tape.param(&n.gain), tape.param(&n.bias));
            tape.layernorm(t, &g, &b, 1e-5)
        };
        let input = match (self.config.variant, norm) {
            (BlockVariant::PreNorm, Some(n)) => layernorm(tape, x, n)?,
            _ => x.clone(),
        };
        let f = if attention {
            self.attention(tape, &input, block, batch)?
        } else {
            self.feed_forward(tape, &input, block)?
        };
        // Dropout on the sublayer's output before the residual add, where the official
        // ReZero Transformer applies it (the identity unless a training step turned it on).
        let f = tape.dropout(&f)?;
        let sum = match alpha {
            Some((alphas, index)) => tape.rezero(x, &f, alphas, index)?,
            None => tape.add(x, &f)?,
        };
        match (self.config.variant, norm) {
            (BlockVariant::PostNorm | BlockVariant::RezeroPostNorm, Some(n)) => {
                layernorm(tape, &sum, n)
            }
            _ => Ok(sum),
        }
    }

    fn attention(
        &self,
        tape: &mut Tape,
        x: &Tensor,
        block: &Block,
        batch: usize,
    ) -> Result<Tensor> {
        let (w, b) = (tape.param(&block.qkv.w), tape.param(&block.qkv.b));
        let qkv = tape.linear(x, &w, Some(&b))?;
        let heads = tape.causal_attention(&qkv, batch, self.config.heads)?;
        let (w, b) = (tape.param(&block.proj.w), tape.param(&block.proj.b));
        tape.linear(&heads, &w, Some(&b))
    }

    fn feed_forward(&self, tape: &mut Tape, x: &Tensor, block: &Block) -> Result<Tensor> {
        let (w, b) = (tape.param(&block.ff1.w), tape.param(&block.ff1.b));
        let activation = if self.config.gelu {
            Activation::Gelu
        } else {
            Activation::Relu
        };
        let act = tape.linear_activation(x, &w, &b, activation)?;
        let act = tape.dropout(&act)?; // and between the feed-forward layers
        let (w, b) = (tape.param(&block.ff2.w), tape.param(&block.ff2.b));
        tape.linear(&act, &w, Some(&b))
    }
}
