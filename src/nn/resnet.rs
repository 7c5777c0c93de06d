//! CIFAR-style ResNets (He et al. 2016, §4.2): a 3×3 stem, three stages of `n` basic
//! blocks at 16, 32 and 64 channels (the last two entered with stride 2 and a 1×1
//! projection shortcut, or the zero-padded identity), global average pooling and a linear
//! classifier; depth = 6n + 2 (20, 32, 56, 110). Three block variants: the standard post-activation block, the ReZero
//! block of the paper's example code, and the ReZero block without BatchNorm.

use crate::gpu::{Error, Gpu, Result};
use crate::kernels::batchnorm::BatchNormConfig;
use crate::tape::{Param, RunningStats, Tape, Tensor};

use super::init::{normal, xavier_normal};

/// The residual block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ResnetVariant {
    /// out = relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))
    Standard,
    /// out = shortcut(x) + α·relu(bn2(conv2(relu(bn1(conv1 x))))), α initialised to 0
    Rezero,
    /// out = shortcut(x) + α·relu(conv2(relu(conv1 x))), convolutions with biases, no
    /// BatchNorm anywhere
    #[cfg_attr(feature = "cli", value(name = "rezero-nobn"))]
    RezeroNoBn,
}

impl ResnetVariant {
    pub const ALL: [ResnetVariant; 3] = [
        ResnetVariant::Standard,
        ResnetVariant::Rezero,
        ResnetVariant::RezeroNoBn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResnetVariant::Standard => "standard",
            ResnetVariant::Rezero => "rezero",
            ResnetVariant::RezeroNoBn => "rezero-nobn",
        }
    }

    fn batchnorm(self) -> bool {
        self != ResnetVariant::RezeroNoBn
    }
}

impl std::str::FromStr for ResnetVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<ResnetVariant> {
        ResnetVariant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| Error::Invalid {
                what: "ResNet variant".into(),
                why: format!("'{s}' is not one of standard, rezero, rezero-nobn"),
            })
    }
}

/// The shortcut of a block that changes the shape (the first of stages 2 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ShortcutKind {
    /// A 1×1 stride-2 convolution (with BatchNorm where the variant has it).
    Projection,
    /// The input subsampled by 2 and padded with zero channels: no parameters ("option A").
    Identity,
}

impl ShortcutKind {
    pub fn name(self) -> &'static str {
        match self {
            ShortcutKind::Projection => "projection",
            ShortcutKind::Identity => "identity",
        }
    }
}

impl std::str::FromStr for ShortcutKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<ShortcutKind> {
        match s {
            "projection" => Ok(ShortcutKind::Projection),
            "identity" => Ok(ShortcutKind::Identity),
            _ => Err(Error::Invalid {
                what: "shortcut".into(),
                why: format!("'{s}' is not one of projection, identity"),
            }),
        }
    }
}

/// Shape and initialisation of a ResNet.
#[derive(Clone, Debug)]
pub struct ResnetConfig {
    pub variant: ResnetVariant,
    /// 6n + 2: 20, 32, 44, 56, 110, ...
    pub depth: usize,
    /// Channels of the input images (3 for CIFAR-10, 1 for MNIST).
    pub in_channels: usize,
    pub classes: usize,
    /// How the downsampling blocks' shortcuts change the shape.
    pub shortcut: ShortcutKind,
    /// Initial α of every ReZero block (the paper: 0).
    pub alpha_init: f32,
    pub seed: u64,
}

impl ResnetConfig {
    /// Basic blocks per stage: (depth − 2) / 6.
    pub fn blocks_per_stage(&self) -> usize {
        (self.depth.saturating_sub(2)) / 6
    }
}

/// Channels of the three stages.
pub const STAGE_CHANNELS: [usize; 3] = [16, 32, 64];

/// A BatchNorm's trained scale and shift and its running statistics.
#[derive(Debug)]
pub struct BatchNorm {
    /// [channels], initialised to 1
    pub gamma: Param,
    /// [channels], initialised to 0
    pub beta: Param,
    /// [channels]: running mean (updated in training mode, used in eval mode)
    pub running_mean: wgpu::Buffer,
    /// [channels]: running variance, initialised to 1
    pub running_var: wgpu::Buffer,
    pub channels: usize,
}

impl BatchNorm {
    /// The running statistics as named checkpoint entries ("{layer}.bn.running_mean", ...).
    pub fn running_entries(&self) -> [(String, Vec<usize>, &wgpu::Buffer); 2] {
        let prefix = self.gamma.name.trim_end_matches("gamma");
        [
            (
                format!("{prefix}running_mean"),
                vec![self.channels],
                &self.running_mean,
            ),
            (
                format!("{prefix}running_var"),
                vec![self.channels],
                &self.running_var,
            ),
        ]
    }
}

/// A convolution, followed by a BatchNorm or carrying a bias (never both).
#[derive(Debug)]
pub struct ConvLayer {
    /// [c_out, c_in, k, k], He-normal (fan-out)
    pub w: Param,
    /// [c_out] (only without BatchNorm)
    pub bias: Option<Param>,
    pub bn: Option<BatchNorm>,
    pub stride: u32,
    pub pad: u32,
}

/// A block's shortcut.
#[derive(Debug)]
pub enum Shortcut {
    /// The input itself (the shape does not change).
    Same,
    /// A 1×1 strided convolution.
    Projection(Box<ConvLayer>),
    /// The input subsampled by `stride`, padded with zero channels to `channels`.
    ZeroPad { channels: usize, stride: u32 },
}

/// Two 3×3 convolutions and the shortcut around them.
#[derive(Debug)]
pub struct BasicBlock {
    pub conv1: ConvLayer,
    pub conv2: ConvLayer,
    pub shortcut: Shortcut,
}

impl BasicBlock {
    /// The projection convolution, if the shortcut has one.
    pub fn projection(&self) -> Option<&ConvLayer> {
        match &self.shortcut {
            Shortcut::Projection(layer) => Some(layer),
            _ => None,
        }
    }
}

/// The parameters, by name. Weight decay applies to convolution and classifier weights
/// only (not to α, biases or BatchNorm scales and shifts).
#[derive(Debug)]
pub struct Resnet {
    pub config: ResnetConfig,
    /// 3×3, in_channels → 16
    pub stem: ConvLayer,
    /// 3n blocks, stage by stage
    pub blocks: Vec<BasicBlock>,
    /// [3n]: every block's α (rezero variants only)
    pub alphas: Option<Param>,
    /// [classes, 64]
    pub fc_w: Param,
    /// [classes]
    pub fc_b: Param,
}

/// Builds the layers with names and seeds in order.
struct Builder<'a> {
    gpu: &'a Gpu,
    seed: u64,
    batchnorm: bool,
}

impl Builder<'_> {
    fn conv(
        &mut self,
        name: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: u32,
    ) -> Result<ConvLayer> {
        self.seed = self.seed.wrapping_add(1);
        // He-normal over the fan-out, as torchvision initialises ResNets.
        let std = (2.0 / (c_out * k * k) as f32).sqrt();
        let w = Param::new(
            self.gpu,
            &format!("{name}.w"),
            &[c_out, c_in, k, k],
            &normal(self.seed, c_out * c_in * k * k, std),
            true,
        )?;
        let zeros = vec![0.0; c_out];
        let (bias, bn) = if self.batchnorm {
            let bn = BatchNorm {
                gamma: Param::new(
                    self.gpu,
                    &format!("{name}.bn.gamma"),
                    &[c_out],
                    &vec![1.0; c_out],
                    false,
                )?,
                beta: Param::new(
                    self.gpu,
                    &format!("{name}.bn.beta"),
                    &[c_out],
                    &zeros,
                    false,
                )?,
                running_mean: self.gpu.upload(&format!("{name}.bn.running_mean"), &zeros),
                running_var: self
                    .gpu
                    .upload(&format!("{name}.bn.running_var"), &vec![1.0f32; c_out]),
                channels: c_out,
            };
            (None, Some(bn))
        } else {
            let bias = Param::new(self.gpu, &format!("{name}.bias"), &[c_out], &zeros, false)?;
            (Some(bias), None)
        };
        Ok(ConvLayer {
            w,
            bias,
            bn,
            stride,
            pad: (k / 2) as u32,
        })
    }
}

impl ConvLayer {
    /// conv, then BatchNorm (batch statistics when `training`) or the bias.
    fn forward(&self, tape: &mut Tape, x: &Tensor, training: bool) -> Result<Tensor> {
        let w = tape.param(&self.w);
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        let y = tape.conv2d(x, &w, bias.as_ref(), self.stride, self.pad)?;
        match &self.bn {
            None => Ok(y),
            Some(bn) => {
                let (g, b) = (tape.param(&bn.gamma), tape.param(&bn.beta));
                let running = RunningStats {
                    mean: &bn.running_mean,
                    var: &bn.running_var,
                };
                tape.batchnorm(&y, &g, &b, &running, training, &BatchNormConfig::default())
            }
        }
    }

    fn params(&self) -> Vec<&Param> {
        let mut all = vec![&self.w];
        all.extend(self.bias.iter());
        all.extend(self.bn.iter().flat_map(|bn| [&bn.gamma, &bn.beta]));
        all
    }
}

impl Resnet {
    pub fn new(gpu: &Gpu, config: ResnetConfig) -> Result<Resnet> {
        let n = config.blocks_per_stage();
        if config.depth < 8 || (config.depth - 2) % 6 != 0 {
            return Err(Error::Invalid {
                what: "ResNet depth".into(),
                why: format!(
                    "{} is not 6n + 2 with n ≥ 1 (20, 32, 44, 56, 110, ...)",
                    config.depth
                ),
            });
        }
        if config.in_channels == 0 || config.classes == 0 {
            return Err(Error::Invalid {
                what: "ResNet shape".into(),
                why: "input channels and classes must be at least 1".into(),
            });
        }
        let mut b = Builder {
            gpu,
            seed: config.seed,
            batchnorm: config.variant.batchnorm(),
        };
        let stem = b.conv("stem", config.in_channels, STAGE_CHANNELS[0], 3, 1)?;
        let mut blocks = Vec::with_capacity(3 * n);
        let mut c_in = STAGE_CHANNELS[0];
        for (stage, &c_out) in STAGE_CHANNELS.iter().enumerate() {
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let name = format!("s{stage}.b{i}");
                blocks.push(BasicBlock {
                    conv1: b.conv(&format!("{name}.conv1"), c_in, c_out, 3, stride)?,
                    conv2: b.conv(&format!("{name}.conv2"), c_out, c_out, 3, 1)?,
                    shortcut: match config.shortcut {
                        _ if stride == 1 && c_in == c_out => Shortcut::Same,
                        ShortcutKind::Projection => Shortcut::Projection(Box::new(b.conv(
                            &format!("{name}.shortcut"),
                            c_in,
                            c_out,
                            1,
                            stride,
                        )?)),
                        ShortcutKind::Identity => Shortcut::ZeroPad {
                            channels: c_out,
                            stride,
                        },
                    },
                });
                c_in = c_out;
            }
        }
        let rezero = config.variant != ResnetVariant::Standard;
        let count = blocks.len();
        let classes = config.classes;
        Ok(Resnet {
            stem,
            blocks,
            alphas: rezero
                .then(|| {
                    Param::new(
                        gpu,
                        "alphas",
                        &[count],
                        &vec![config.alpha_init; count],
                        false,
                    )
                })
                .transpose()?,
            fc_w: Param::new(
                gpu,
                "fc.w",
                &[classes, c_in],
                &xavier_normal(config.seed.wrapping_add(7919), classes, c_in, 1.0),
                true,
            )?,
            fc_b: Param::new(gpu, "fc.b", &[classes], &vec![0.0; classes], false)?,
            config,
        })
    }

    /// Every parameter, in a fixed order (the optimizer's).
    pub fn params(&self) -> Vec<&Param> {
        let mut all = self.stem.params();
        for block in &self.blocks {
            all.extend(block.conv1.params());
            all.extend(block.conv2.params());
            all.extend(block.projection().iter().flat_map(|l| l.params()));
        }
        all.extend(self.alphas.iter());
        all.extend([&self.fc_w, &self.fc_b]);
        all
    }

    /// Every BatchNorm (their running statistics go into checkpoints).
    pub fn batchnorms(&self) -> Vec<&BatchNorm> {
        let mut layers = vec![&self.stem];
        for block in &self.blocks {
            layers.extend([&block.conv1, &block.conv2]);
            layers.extend(block.projection());
        }
        layers.iter().filter_map(|l| l.bn.as_ref()).collect()
    }

    /// Bytes of parameter values on the GPU (gradients take as much again).
    pub fn param_bytes(&self) -> u64 {
        self.params().iter().map(|p| p.len() as u64 * 4).sum()
    }

    /// Logits [batch, classes] of images x [batch, in_channels, h, w]. `training` picks
    /// batch statistics (and updates the running ones) or the running statistics; in eval
    /// mode gradients must be disabled on the tape.
    pub fn forward(&self, tape: &mut Tape, x: &Tensor, training: bool) -> Result<Tensor> {
        let stem = self.stem.forward(tape, x, training)?;
        let mut h = tape.relu(&stem)?;
        let alphas = self.alphas.as_ref().map(|a| tape.param(a));
        for (i, block) in self.blocks.iter().enumerate() {
            let a = block.conv1.forward(tape, &h, training)?;
            let a = tape.relu(&a)?;
            let f = block.conv2.forward(tape, &a, training)?;
            let skip = match &block.shortcut {
                Shortcut::Same => h.clone(),
                Shortcut::Projection(layer) => layer.forward(tape, &h, training)?,
                Shortcut::ZeroPad { channels, stride } => tape.shortcut(&h, *channels, *stride)?,
            };
            h = match &alphas {
                None => {
                    let sum = tape.add(&f, &skip)?;
                    tape.relu(&sum)?
                }
                Some(alphas) => {
                    let f = tape.relu(&f)?;
                    tape.rezero(&skip, &f, alphas, i)?
                }
            };
        }
        let pooled = tape.global_avg_pool(&h)?;
        let (w, b) = (tape.param(&self.fc_w), tape.param(&self.fc_b));
        tape.linear(&pooled, &w, Some(&b))
    }
}
