//! Optimizers over a model's parameters, on the GPU: SGD with momentum, Adagrad, Adam and
//! AdamW, LAMB (its trust ratios computed on the GPU), optional global-norm clipping, a learning-rate schedule, and weight decay only
//! for parameters that want it (not α, biases or norm gains: `Param::decay`). With loss
//! scaling (mixed precision, [`Optimizer::enable_loss_scaling`]) the updates divide the
//! gradients by the scale, skip a step whose gradients overflowed, and the scale follows
//! GradScaler's rule, all on the GPU.

mod scaling;
mod schedule;

pub use schedule::{Decay, Schedule};

use crate::gpu::{Error, Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::loss_scale::LossScaleRule;
use crate::kernels::optim::{self as k, GlobalNorm};
use crate::kernels::{elementwise, reduce};
use crate::tape::{Param, Tape};

/// The checkpoint entry of the loss scaler's state (mixed precision).
pub const LOSS_SCALE_ENTRY: &str = "optimizer.loss_scale";

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Sgd {
        momentum: f32,
    },
    Adagrad {
        eps: f32,
    },
    /// `decoupled`: AdamW (decay applied to the weights, not the gradient).
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
        decoupled: bool,
    },
    /// LAMB: Adam's direction (decay decoupled) scaled per parameter tensor by the trust
    /// ratio ‖w‖/‖update‖, the paper's optimizer for its Transformers.
    Lamb {
        beta1: f32,
        beta2: f32,
        eps: f32,
    },
}

/// The update rules by name (the `--optimizer` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum OptimizerName {
    Sgd,
    Adagrad,
    Adam,
    Adamw,
    Lamb,
}

impl Method {
    /// The rule `name` with the usual constants and SGD momentum `momentum`.
    pub fn of(name: OptimizerName, momentum: f32) -> Method {
        match name {
            OptimizerName::Sgd => Method::Sgd { momentum },
            OptimizerName::Adagrad => Method::Adagrad { eps: 1e-10 },
            OptimizerName::Adam | OptimizerName::Adamw => Method::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                decoupled: name == OptimizerName::Adamw,
            },
            OptimizerName::Lamb => Method::Lamb {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-6,
            },
        }
    }

    /// Buffers of the parameters' size that the rule keeps.
    pub fn state_buffers(self) -> u64 {
        match self {
            Method::Adam { .. } | Method::Lamb { .. } => 2,
            Method::Sgd { .. } | Method::Adagrad { .. } => 1,
        }
    }

    /// `sgd` (momentum 0.9), `adagrad`, `adam` or `adamw` with the usual constants.
    pub fn parse(name: &str) -> Result<Method> {
        let name = match name {
            "sgd" => OptimizerName::Sgd,
            "adagrad" => OptimizerName::Adagrad,
            "adam" => OptimizerName::Adam,
            "adamw" => OptimizerName::Adamw,
            "lamb" => OptimizerName::Lamb,
            _ => {
                return Err(Error::Invalid {
                    what: "optimizer".into(),
                    why: format!("'{name}' is not one of sgd, adagrad, adam, adamw, lamb"),
                });
            }
        };
        Ok(Method::of(name, 0.9))
    }
}

/// Everything that defines an optimizer run.
#[derive(Clone, Debug)]
pub struct OptimizerConfig {
    pub method: Method,
    pub lr: f32,
    pub weight_decay: f32,
    /// Clip the global gradient norm to this.
    pub clip: Option<f32>,
    pub schedule: Schedule,
}

/// Per-parameter state buffers plus the step count.
pub struct Optimizer {
    config: OptimizerConfig,
    /// One or two state buffers per parameter, in the order of `params` at creation.
    state: Vec<(wgpu::Buffer, Option<wgpu::Buffer>)>,
    lens: Vec<usize>,
    step: u64,
    /// [1]: the squared global gradient norm when clipping or loss scaling.
    pub(crate) norm_sq: wgpu::Buffer,
    /// [4]: this step's learning-rate factor and bias corrections (`k::step_values`),
    /// written before each step so that the update's uniforms never change.
    step_values: wgpu::Buffer,
    /// The tape's submission count when the last update was recorded through it: until
    /// it grows, that update may still read `step_values`.
    recorded_at: Option<u64>,
    scratch: wgpu::Buffer,
    /// LAMB only: the direction of the parameter being updated (as long as the longest
    /// parameter) and its two norms.
    lamb: Option<LambBuffers>,
    /// Which parameter holds the α of the ReZero blocks (named `alphas`), and the factor
    /// its learning rate is multiplied by (1, the paper's setting, unless set).
    alphas: Option<usize>,
    alpha_lr_mult: f32,
    /// Loss scaling: its rule and the scaler's state ([`crate::kernels::loss_scale::ScalerState`]).
    pub(crate) loss_scale: Option<(LossScaleRule, wgpu::Buffer)>,
}

/// LAMB's working buffers, reused from one parameter to the next.
struct LambBuffers {
    direction: wgpu::Buffer,
    w_norm_sq: wgpu::Buffer,
    u_norm_sq: wgpu::Buffer,
}

impl Optimizer {
    /// State for `params` (zeroed). `step` must later get the same parameters in the same order.
    pub fn new(gpu: &Gpu, params: &[&Param], config: OptimizerConfig) -> Result<Optimizer> {
        if !(config.lr >= 0.0 && config.lr.is_finite()) {
            return Err(Error::Invalid {
                what: "learning rate".into(),
                why: format!("{} must be a finite number >= 0", config.lr),
            });
        }
        let (config_method, longest) = (config.method, params.iter().map(|p| p.len()).max());
        let longest = longest.unwrap_or(1);
        let state = params
            .iter()
            .map(|p| {
                let second = (config.method.state_buffers() == 2)
                    .then(|| gpu.zeroed_f32("optimizer state 2", p.len()));
                (gpu.zeroed_f32("optimizer state", p.len()), second)
            })
            .collect();
        Ok(Optimizer {
            config,
            state,
            lens: params.iter().map(|p| p.len()).collect(),
            step: 0,
            norm_sq: gpu.zeroed_f32("grad norm²", 1),
            step_values: gpu.zeroed_f32("optimizer step values", 4),
            recorded_at: None,
            scratch: gpu.zeroed_f32("grad norm scratch", reduce::REDUCE_SCRATCH_LEN),
            lamb: matches!(config_method, Method::Lamb { .. }).then(|| LambBuffers {
                direction: gpu.zeroed_f32("lamb direction", longest.max(1)),
                w_norm_sq: gpu.zeroed_f32("lamb ‖w‖²", 1),
                u_norm_sq: gpu.zeroed_f32("lamb ‖u‖²", 1),
            }),
            alphas: params.iter().position(|p| p.name == "alphas"),
            alpha_lr_mult: 1.0,
            loss_scale: None,
        })
    }

    /// Whether each step needs the squared global gradient norm.
    fn needs_norm(&self) -> bool {
        self.config.clip.is_some() || self.loss_scale.is_some()
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Multiplies the learning rate of the α parameter (the one named `alphas`, if any) by
    /// `mult`, a finite number ≥ 0; the others keep theirs.
    pub fn set_alpha_lr_mult(&mut self, mult: f32) -> Result<()> {
        if !(mult >= 0.0 && mult.is_finite()) {
            return Err(Error::Invalid {
                what: "α learning-rate multiplier".into(),
                why: format!("{mult} must be a finite number >= 0"),
            });
        }
        self.alpha_lr_mult = mult;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The state buffers for a checkpoint: ("optimizer.NAME.1" or ".2", shape, buffer) for
    /// each of `params` (the parameters it was made for, in that order).
    pub fn state_entries<'a>(
        &'a self,
        params: &[&Param],
    ) -> Vec<(String, Vec<usize>, &'a wgpu::Buffer)> {
        let mut entries = Vec::new();
        for (p, (s1, s2)) in params.iter().zip(&self.state) {
            entries.push((format!("optimizer.{}.1", p.name), p.shape.clone(), s1));
            if let Some(s2) = s2 {
                entries.push((format!("optimizer.{}.2", p.name), p.shape.clone(), s2));
            }
        }
        if let Some(state) = self.loss_scale_state() {
            entries.push((LOSS_SCALE_ENTRY.to_string(), vec![4], state));
        }
        entries
    }

    /// Continues from a checkpoint: `steps` taken, state values by the names of
    /// [`Optimizer::state_entries`].
    pub fn restore(
        &mut self,
        gpu: &Gpu,
        params: &[&Param],
        steps: u64,
        state: &dyn Fn(&str) -> Option<Vec<f32>>,
    ) -> Result<()> {
        self.check(params)?;
        for (p, (s1, s2)) in params.iter().zip(&self.state) {
            for (suffix, buffer) in std::iter::once(("1", s1)).chain(s2.iter().map(|b| ("2", b))) {
                let name = format!("optimizer.{}.{suffix}", p.name);
                let values = state(&name).ok_or_else(|| Error::Invalid {
                    what: "optimizer state".into(),
                    why: format!("the checkpoint has no {name} (saved with another optimizer?)"),
                })?;
                if values.len() != p.len() {
                    return Err(Error::Invalid {
                        what: "optimizer state".into(),
                        why: format!(
                            "{name} has {} values, the parameter {}",
                            values.len(),
                            p.len()
                        ),
                    });
                }
                gpu.write(buffer, &values);
            }
        }
        // A checkpoint of another precision has no scaler state (or one this run has no
        // use for): the scale then starts from its rule's initial value.
        if let (Some(state), Some(values)) = (self.loss_scale_state(), state(LOSS_SCALE_ENTRY)) {
            let bad = |why: String| Error::Invalid {
                what: "optimizer state".into(),
                why: format!("{LOSS_SCALE_ENTRY} {why}"),
            };
            let saved = <[f32; 4]>::try_from(values.as_slice())
                .map_err(|_| bad(format!("has {} values, not 4", values.len())))?;
            // A scale of 0 or below, or a negative count, would poison every update.
            let [scale, clean, skipped, last] = saved;
            if !(scale > 0.0 && scale.is_finite() && clean >= 0.0 && skipped >= 0.0)
                || !(last == 0.0 || last == 1.0)
            {
                return Err(bad(format!("holds {saved:?}: not a loss scaler's state")));
            }
            gpu.write(state, &saved);
        }
        self.step = steps;
        Ok(())
    }

    /// The learning rate the next step will use.
    pub fn lr(&self) -> f32 {
        self.config.lr * self.config.schedule.factor(self.step)
    }

    /// Bytes of optimizer state on the GPU.
    pub fn state_bytes(&self) -> u64 {
        self.state
            .iter()
            .map(|(a, b)| a.size() + b.as_ref().map_or(0, |b| b.size()))
            .sum()
    }

    /// Records one update of every parameter into `pass` (after clipping, if asked) and
    /// then zeroes their gradients. The step's learning rate goes to the GPU by a queue
    /// write, which lands before the next submission: submit the previous step's work
    /// before calling this again.
    pub fn step(
        &mut self,
        gpu: &Gpu,
        pass: &mut dyn crate::gpu::Recorder,
        params: &[&Param],
    ) -> Result<()> {
        self.check(params)?;
        if self.needs_norm() {
            self.record_norm(gpu, pass, params)?;
        }
        self.advance(gpu)?;
        for (i, p) in params.iter().enumerate() {
            self.update(gpu, pass, i, p)?;
        }
        self.record_scale_update(gpu, pass)
    }

    /// The same as [`Optimizer::step`], recorded through the tape one parameter at a time,
    /// so that a very deep model's update is submitted in chunks like its forward and
    /// backward passes.
    pub fn step_on_tape(&mut self, tape: &mut Tape, params: &[&Param]) -> Result<()> {
        self.check(params)?;
        if self.needs_norm() {
            tape.record(|gpu, pass| self.record_norm(gpu, pass, params))?;
        }
        // The last update may not be submitted yet (no `Tape::reset` since): it reads the
        // values about to be overwritten, so submit it first.
        if self.recorded_at == Some(tape.submissions()) {
            tape.flush();
        }
        self.advance(tape.gpu())?;
        for (i, p) in params.iter().enumerate() {
            tape.record(|gpu, pass| self.update(gpu, pass, i, p))?;
        }
        tape.record(|gpu, pass| self.record_scale_update(gpu, pass))?;
        self.recorded_at = Some(tape.submissions());
        Ok(())
    }

    /// Counts the step and writes its learning-rate factor and bias corrections.
    fn advance(&mut self, gpu: &Gpu) -> Result<()> {
        let factor = self.config.schedule.factor(self.step);
        self.step += 1;
        let betas = match self.config.method {
            Method::Adam { beta1, beta2, .. } | Method::Lamb { beta1, beta2, .. } => {
                Some((beta1, beta2))
            }
            _ => None,
        };
        let step = self.step.min(u32::MAX as u64) as u32;
        gpu.write(&self.step_values, &k::step_values(factor, betas, step)?);
        Ok(())
    }

    /// Errors unless `params` are the ones the state was made for.
    fn check(&self, params: &[&Param]) -> Result<()> {
        if params.len() != self.state.len()
            || params
                .iter()
                .zip(&self.lens)
                .any(|(p, &len)| p.len() != len)
        {
            return Err(Error::Shape {
                op: "optimizer step",
                expected: format!("the {} parameters it was made for", self.state.len()),
                got: format!("{} parameters", params.len()),
            });
        }
        Ok(())
    }

    /// Sums the squared global gradient norm into `norm_sq`.
    fn record_norm(
        &self,
        gpu: &Gpu,
        pass: &mut dyn crate::gpu::Recorder,
        params: &[&Param],
    ) -> Result<()> {
        elementwise::fill(gpu, pass, &self.norm_sq, 0.0, 1, Dtype::F32)?;
        for p in params {
            reduce::sum_all(
                gpu,
                pass,
                &self.norm_sq,
                &self.scratch,
                &p.grad,
                p.len() as u32,
                true,
                true,
            )?;
        }
        Ok(())
    }

    /// LAMB's working buffers (the optimizer's own reduction scratch for the norms).
    fn lamb_scratch(&self) -> k::LambScratch<'_> {
        let b = self
            .lamb
            .as_ref()
            .expect("a LAMB optimizer has its buffers");
        k::LambScratch {
            direction: &b.direction,
            w_norm_sq: &b.w_norm_sq,
            u_norm_sq: &b.u_norm_sq,
            reduce: &self.scratch,
        }
    }

    /// Updates parameter `i` (clipped by `norm_sq` when asked) and zeroes its gradient.
    /// `self.step` has already been advanced for this step.
    fn update(
        &self,
        gpu: &Gpu,
        pass: &mut dyn crate::gpu::Recorder,
        i: usize,
        p: &Param,
    ) -> Result<()> {
        let lr = match self.alphas {
            Some(a) if a == i => self.config.lr * self.alpha_lr_mult,
            _ => self.config.lr,
        };
        let weight_decay = if p.decay {
            self.config.weight_decay
        } else {
            0.0
        };
        let clip = self.needs_norm().then(|| GlobalNorm {
            norm_sq: &self.norm_sq,
            clip: self.config.clip,
            loss_scale: self.loss_scale_state(),
        });
        // The update reads the gradient and zeroes it for the next step's backward (`+=`).
        let (values, n, w) = (&self.step_values, p.len() as u32, &p.value);
        let g = k::Gradient::consume(&p.grad);
        let (s1, s2) = &self.state[i];
        let second = || s2.as_ref().expect("Adam and LAMB keep two state buffers");
        match self.config.method {
            Method::Sgd { momentum } => {
                let h = k::Sgd {
                    lr,
                    momentum,
                    weight_decay,
                };
                k::sgd(gpu, pass, w, s1, g, values, n, &h, clip)?
            }
            Method::Adagrad { eps } => {
                let h = k::Adagrad {
                    lr,
                    eps,
                    weight_decay,
                };
                k::adagrad(gpu, pass, w, s1, g, values, n, &h, clip)?
            }
            Method::Adam {
                beta1,
                beta2,
                eps,
                decoupled,
            } => {
                let h = k::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    decoupled,
                };
                k::adam(gpu, pass, w, s1, second(), g, values, n, &h, clip)?
            }
            Method::Lamb { beta1, beta2, eps } => {
                let h = k::Lamb {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                };
                let scratch = self.lamb_scratch();
                k::lamb(gpu, pass, w, s1, second(), g, values, scratch, n, &h, clip)?
            }
        }
        Ok(())
    }
}
