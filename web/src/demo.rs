//! The page's demo: a small Transformer (ReZero, Pre-Norm or Post-Norm) trained on the
//! built-in corpus through the library's tape, optimizer and kernels, one step per call,
//! so that the page's loop can yield to the browser between steps.

use rezero::data::text::{TextSplits, builtin_corpus, fixed_windows, random_windows};
use rezero::kernels::Dtype;
use rezero::nn::{BlockVariant, Transformer, TransformerConfig};
use rezero::optim::{Method, Optimizer, OptimizerConfig, OptimizerName, Schedule};
use rezero::tape::Tape;
use rezero::train::lm::{sample, validation_bpb};
use rezero::{Error, Gpu, Result};

/// What the page lets a reader choose, and the demo's fixed shape.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub variant: BlockVariant,
    /// Adam's learning rate (constant, no warm-up: ReZero needs none).
    pub lr: f32,
    /// Windows per step.
    pub batch: usize,
    /// Bytes per window.
    pub seq: usize,
    pub layers: usize,
    pub d_model: usize,
    /// Seeds the model; the data order has its own seed, the same for every variant, so
    /// that runs side by side see the same windows.
    pub seed: u64,
}

impl DemoConfig {
    /// The page's model: 4 layers of d_model 64 (2 heads, d_ff 256) on 64-byte windows,
    /// 8 windows a step, a laptop's integrated GPU's size.
    pub fn new(variant: BlockVariant, lr: f32) -> DemoConfig {
        DemoConfig {
            variant,
            lr,
            batch: 8,
            seq: 64,
            layers: 4,
            d_model: 64,
            seed: 1,
        }
    }

    fn transformer(&self) -> TransformerConfig {
        TransformerConfig {
            variant: self.variant,
            layers: self.layers,
            d_model: self.d_model,
            heads: (self.d_model / 32).max(1),
            d_ff: 4 * self.d_model,
            seq: self.seq,
            gelu: true,
            alpha_per_sublayer: false,
            alpha_init: 0.0,
            seed: self.seed,
        }
    }
}

/// Validation windows evaluated each time (the same ones every time).
const EVAL_WINDOWS: usize = 32;
/// The data order's seed, shared by every run so that compared runs see the same windows.
const DATA_SEED: u64 = 0x5eed;

/// A demo run: the model, its optimizer, the tape the steps record on, and the corpus.
pub struct Demo<'g> {
    gpu: &'g Gpu,
    config: DemoConfig,
    model: Transformer,
    optimizer: Optimizer,
    tape: Tape<'g>,
    text: TextSplits,
    eval: (Vec<u32>, Vec<u32>),
    step: u64,
}

impl<'g> Demo<'g> {
    /// Checks that the model fits the device (before allocating anything), then builds
    /// it, Adam over its parameters, and the validation windows.
    pub fn new(gpu: &'g Gpu, config: DemoConfig) -> Result<Demo<'g>> {
        if !(config.lr > 0.0 && config.lr <= 1.0) {
            return Err(Error::Invalid {
                what: "learning rate".into(),
                why: format!("{} is not in (0, 1]", config.lr),
            });
        }
        let shape = config.transformer();
        shape.check()?;
        let method = Method::of(OptimizerName::Adam, 0.9);
        shape
            .footprint(config.batch, Dtype::F32)?
            .check(gpu, method.state_buffers())?;
        let model = Transformer::new(gpu, shape)?;
        let optimizer = Optimizer::new(
            gpu,
            &model.params(),
            OptimizerConfig {
                method,
                lr: config.lr,
                weight_decay: 0.0,
                clip: None,
                schedule: Schedule::parse("constant", 0)?,
            },
        )?;
        let text = TextSplits::new(builtin_corpus());
        let eval = fixed_windows(&text.validation, config.seq, EVAL_WINDOWS)?;
        Ok(Demo {
            gpu,
            config,
            model,
            optimizer,
            tape: Tape::new(gpu),
            text,
            eval,
            step: 0,
        })
    }

    pub fn config(&self) -> &DemoConfig {
        &self.config
    }

    /// The steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Bytes predicted per step.
    pub fn tokens_per_step(&self) -> usize {
        self.config.batch * self.config.seq
    }

    /// One training step on fresh random windows: forward, loss, backward, Adam's update;
    /// returns the loss (nats per byte), read back, so the step's work is done when this is.
    pub async fn step(&mut self) -> Result<f32> {
        let (batch, seq) = (self.config.batch, self.config.seq);
        let data_seed = DATA_SEED.wrapping_mul(0x9e37_79b9).wrapping_add(self.step);
        let (x, y) = random_windows(&self.text.train, seq, batch, data_seed)?;
        let logits = self.model.forward(&mut self.tape, &x, batch)?;
        let loss = self.tape.cross_entropy(&logits, &y)?;
        self.tape.backward(&loss)?;
        self.optimizer
            .step_on_tape(&mut self.tape, &self.model.params())?;
        let value = self.tape.read(&loss).await?[0];
        self.tape.reset();
        self.step += 1;
        Ok(value)
    }

    /// Bits per byte on the fixed validation windows (no gradients recorded).
    pub async fn validation_bpb(&mut self) -> Result<f32> {
        let (batch, seq) = (self.config.batch, self.config.seq);
        validation_bpb(&mut self.tape, &self.model, &self.eval, batch, seq).await
    }

    /// Every block's α (empty for the variants without one).
    pub async fn alphas(&self) -> Result<Vec<f32>> {
        match &self.model.alphas {
            Some(alphas) => self.gpu.read_f32(&alphas.value, alphas.len()).await,
            None => Ok(Vec::new()),
        }
    }

    /// `len` bytes continuing `prompt`, sampled at temperature 0.8 (lossy UTF-8).
    pub async fn sample(&self, prompt: &str, len: usize) -> Result<String> {
        let seed = self.step;
        let bytes = sample(self.gpu, &self.model, prompt.as_bytes(), len, 0.8, seed).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
