//! The one training core every loop runs on: a step (forward and loss from the model,
//! backward, the optimizer's update and schedule), loss readback and the metrics row,
//! divergence detection (the rule is in `divergence.rs`), evaluation timing, checkpoints
//! and the run's summary. A loop (`images.rs`, `lm.rs`) supplies only what differs: its
//! batches, its evaluation and its checkpoint's contents.

use web_time::Instant;

use crate::gpu::{Error, Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::autotune::{self, Tuned};
use crate::kernels::loss_scale::{LossScaleRule, ScalerState};
use crate::optim::Optimizer;
use crate::tape::{Param, Tape, Tensor, tune};

pub use super::divergence::{Divergence, DivergenceGuard, EXPLOSION_FACTOR, LOSS_CEILING};
use super::loss_sum::LossSum;
use super::progress::{Progress, StepProfiler, format_duration};
use super::rate::RateClock;
pub use super::run_config::RunConfig;
use super::run_dir::RunDir;
use super::summary::summary_fields;
pub use super::summary::{RunSummary, field, field_with};

/// The final training loss is the mean of this many last steps' losses, each read
/// whatever `log_every` is.
pub const FINAL_WINDOW: u64 = 10;

/// Where a run is: the epochs finished, the steps taken, and the flags that define it
/// (kept in the checkpoint so that `--resume` can compare them).
#[derive(Clone, Copy, Debug)]
pub struct RunPoint<'a> {
    pub epoch: usize,
    pub step: u64,
    pub flags: &'a [(String, String)],
}

/// Metrics columns a loop asks for besides step, loss, lr and rate.
#[derive(Clone, Copy, Debug)]
pub struct Columns {
    /// An `epoch` column after `step`.
    pub epoch: bool,
    /// The unit of the rate column: "tokens" gives `tokens_per_s`.
    pub rate_unit: &'static str,
    /// Examples per step (for the rate).
    pub items_per_step: u64,
}

/// The core of a training run: the tape, the optimizer over the model's parameters, the
/// run folder, progress and the bookkeeping of losses, time and divergence.
pub struct Trainer<'g, 'm> {
    gpu: &'g Gpu,
    pub tape: Tape<'g>,
    optimizer: &'m mut Optimizer,
    params: Vec<&'m Param>,
    alphas: Option<&'m Param>,
    config: RunConfig,
    columns: Columns,
    run_dir: Option<RunDir>,
    progress: Progress,
    profiler: StepProfiler,
    guard: DivergenceGuard,
    step: u64,
    /// The step the run ends at if nothing stops it earlier.
    total: u64,
    losses: Vec<(u64, f32)>,
    final_losses: Vec<f32>,
    /// Every step's loss since the last [`Trainer::mean_loss`], kept on the GPU (runs with
    /// epochs only).
    loss_sum: Option<LossSum>,
    divergence: Option<Divergence>,
    start: Instant,
    clock: RateClock,
    /// Kernel classes measured so far (`None` without `tune`).
    tuned: Option<usize>,
    /// The loss scaler's state as last read with the loss (mixed precision only).
    scaler: Option<ScalerState>,
}

impl<'g, 'm> Trainer<'g, 'm> {
    /// Claims the run folder and opens its CSVs (`eval_header` for evaluations); the run
    /// goes from `config.start_step` to `total`.
    pub fn new(
        gpu: &'g Gpu,
        optimizer: &'m mut Optimizer,
        (params, alphas): (Vec<&'m Param>, Option<&'m Param>),
        config: &RunConfig,
        (columns, eval_header): (Columns, &str),
        total: u64,
    ) -> Result<Trainer<'g, 'm>> {
        if config.log_every == 0 {
            return Err(Error::Invalid {
                what: "log_every".into(),
                why: "the loss is read every log_every steps: it must be at least 1".into(),
            });
        }
        if config.start_step > 0 && config.start_step >= total {
            return Err(Error::Invalid {
                what: "resume".into(),
                why: format!(
                    "the run already took {} steps of the {total} asked for; raise --epochs or --steps",
                    config.start_step
                ),
            });
        }
        if let Some(n) = config
            .profile_step
            .filter(|&n| n <= config.start_step || n > total)
        {
            return Err(Error::Invalid {
                what: "--profile".into(),
                why: format!(
                    "step {n} is not among the steps this run takes ({} to {total}): \
                     nothing would be profiled",
                    config.start_step + 1
                ),
            });
        }
        let mut tape = Tape::new(gpu);
        tape.set_precision(config.precision)?;
        if config.precision == Dtype::F16 && optimizer.loss_scale_state().is_none() {
            optimizer.enable_loss_scaling(gpu, LossScaleRule::default())?;
        }
        // Whatever the precision: an optimizer that divides by a scale needs the loss's
        // gradient multiplied by it.
        tape.set_loss_scale(optimizer.loss_scale_state());
        let scaled = optimizer.loss_scale_state().is_some();
        let header = metrics_header(columns, alphas.map_or(0, |a| a.len()), scaled);
        let resumed_at = (config.start_step > 0).then_some(config.start_step);
        let run_dir = match &config.out {
            Some(path) => Some(RunDir::open(path, resumed_at, &header, eval_header)?),
            None => None,
        };
        let progress = Progress::new(&config.label, total - config.start_step, config.display);
        let progress = match columns.rate_unit {
            "tokens" => progress.with_tokens(columns.items_per_step),
            _ => progress.with_images(columns.items_per_step),
        };
        Ok(Trainer {
            gpu,
            tape,
            optimizer,
            params,
            alphas,
            config: config.clone(),
            columns,
            run_dir,
            progress,
            profiler: StepProfiler::new(config.profile_step),
            guard: DivergenceGuard::default(),
            step: config.start_step,
            total,
            losses: Vec::new(),
            final_losses: Vec::new(),
            loss_sum: columns.epoch.then(|| LossSum::new(gpu)),
            divergence: None,
            start: Instant::now(),
            clock: RateClock::new(columns.items_per_step),
            tuned: None,
            scaler: None,
        })
    }

    /// The steps taken, over resumed runs too.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Whether the run should take another step (not at its end, not diverged).
    pub fn running(&self) -> bool {
        self.step < self.total && self.divergence.is_none()
    }

    pub fn diverged(&self) -> bool {
        self.divergence.is_some()
    }

    /// One training step: `loss_of` records the forward pass and the loss on the tape;
    /// then backward, the optimizer's update, and (every `log_every` steps, the first,
    /// the last [`FINAL_WINDOW`]) the loss read back, logged and checked. Returns the
    /// loss if it was read. The first step with `tune` first measures the kernels it needs
    /// (see [`Trainer::tune`]).
    pub async fn step(
        &mut self,
        epoch: Option<usize>,
        loss_of: impl Fn(&mut Tape<'g>) -> Result<Tensor>,
    ) -> Result<Option<f32>> {
        self.clock.step_started();
        if self.config.tune && self.clock.first_step_seconds().is_none() {
            self.tune(&loss_of).await?;
        }
        self.profiler.before(self.gpu, self.step + 1).await?;
        let loss = loss_of(&mut self.tape)?;
        self.tape.backward(&loss)?;
        let lr = self.optimizer.lr();
        self.optimizer.step_on_tape(&mut self.tape, &self.params)?;
        if let Some(sum) = &mut self.loss_sum {
            sum.keep(&mut self.tape, &loss).await?;
        }
        self.step += 1;
        let logged = self.step % self.config.log_every == 0 || self.step == self.total;
        let in_final = self.step + FINAL_WINDOW > self.total;
        let first = self.step == self.config.start_step + 1;
        let value = if logged || in_final || first {
            let value = self.tape.read(&loss).await?[0];
            self.read_scaler().await?;
            Some(value)
        } else {
            None
        };
        self.tape.reset();
        self.profiler.after(self.gpu, self.step).await?;
        if let Some(seconds) = self.clock.step_done() {
            let tuned = match self.tuned {
                Some(0) => ", all its kernel choices already tuned".to_string(),
                Some(n) => format!(", tuning {n} kernel classes"),
                None => String::new(),
            };
            self.progress.note(&format!(
                "{}: first step {} (compiling its kernels{tuned}; not in the rates)",
                self.config.label,
                format_duration(std::time::Duration::from_secs_f64(seconds)),
            ));
        }
        if let Some(v) = value {
            self.record(epoch, v, lr, logged, in_final).await?;
        }
        let done = self.step - self.config.start_step;
        let latest = self.losses.last().map(|l| l.1).or(value);
        let shown = value.is_some() && logged;
        let (rate, per_step) = (self.clock.window_rate(), self.clock.seconds_per_step());
        self.progress
            .update(done, self.step, epoch, latest, shown, rate, per_step);
        if shown {
            self.clock.restart_window();
        }
        Ok(value)
    }

    /// Reads the loss scaler's state (mixed precision), after the loss: a scale fallen
    /// below 1 (every recent step overflowed, whatever the scale) is divergence.
    async fn read_scaler(&mut self) -> Result<()> {
        let Some(buffer) = self.optimizer.loss_scale_state() else {
            return Ok(());
        };
        let v = self.gpu.read_f32(buffer, 4).await?;
        let state = ScalerState::from_values([v[0], v[1], v[2], v[3]]);
        if state.scale < 1.0 && self.divergence.is_none() {
            self.divergence = Some(Divergence {
                step: self.step,
                why: format!(
                    "the loss scale fell to {} after {} skipped steps: the gradients overflow f16 \
                     at any scale (lower the learning rate, or train at --precision f32)",
                    state.scale, state.skipped_steps
                ),
            });
        }
        self.scaler = Some(state);
        Ok(())
    }

    /// Measures the kernel choices the step needs and the tuning table lacks, before it
    /// runs ([`crate::tape::tune::tune_step`]). Returns the classes measured.
    pub async fn tune(
        &mut self,
        loss_of: impl FnOnce(&mut Tape<'g>) -> Result<Tensor>,
    ) -> Result<Vec<Tuned>> {
        let tuned = tune::tune_step(self.gpu, self.tape.precision(), loss_of).await?;
        self.report_tuned(&tuned);
        Ok(tuned)
    }

    fn report_tuned(&mut self, tuned: &[Tuned]) {
        *self.tuned.get_or_insert(0) += tuned.len();
        if let Some(line) = tune::describe(tuned) {
            self.progress
                .note(&format!("{}: {line}", self.config.label));
        }
    }

    /// Keeps a loss read at this step, checks it, and writes its metrics row if `logged`
    /// or if it shows divergence.
    async fn record(
        &mut self,
        epoch: Option<usize>,
        loss: f32,
        lr: f32,
        logged: bool,
        in_final: bool,
    ) -> Result<()> {
        if in_final {
            self.final_losses.push(loss);
        }
        if let Some(why) = self.guard.check(loss, self.config.allow_divergence) {
            self.divergence = Some(Divergence {
                step: self.step,
                why,
            });
        }
        if !logged && self.divergence.is_none() {
            return Ok(());
        }
        self.losses.push((self.step, loss));
        let row = match self.run_dir {
            Some(_) => Some(self.metrics_row(epoch, loss, lr).await?),
            None => None,
        };
        if let (Some(dir), Some(row)) = (self.run_dir.as_mut(), row) {
            dir.metrics_row(&row)?;
        }
        Ok(())
    }

    async fn metrics_row(&self, epoch: Option<usize>, loss: f32, lr: f32) -> Result<String> {
        let epoch = match (self.columns.epoch, epoch) {
            (true, Some(e)) => format!(",{e}"),
            (true, None) => ",".into(),
            (false, _) => String::new(),
        };
        let rate = field_with(self.clock.window_rate(), |r| format!("{r:.1}"));
        let mut row = format!("{}{epoch},{loss},{lr},{rate}", self.step);
        if let Some(a) = self.alphas {
            let values = self.gpu.read_f32(&a.value, a.len()).await?;
            let (lo, hi) = values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            let mean = values.iter().sum::<f32>() / values.len().max(1) as f32;
            row += &format!(",{lo},{mean},{hi}");
            row.extend(values.iter().map(|v| format!(",{v}")));
        }
        if let Some(s) = self.scaler {
            row += &format!(",{},{}", s.scale, s.skipped_steps);
        }
        Ok(row)
    }

    /// The mean training loss of every step since the last call (or the run's start),
    /// whatever `log_every` is: `None` if no step was taken, or the run has no epochs.
    pub async fn mean_loss(&mut self) -> Result<Option<f32>> {
        match &mut self.loss_sum {
            Some(sum) => sum.take_mean(self.gpu).await,
            None => Ok(None),
        }
    }

    /// Runs an evaluation on the tape (its time is left out of the training rate). With
    /// `tune`, the kernel classes it met that the table lacks (batches of another size than
    /// the training step's) are measured after it, for the evaluations after it.
    pub async fn evaluate<T>(
        &mut self,
        eval: impl AsyncFnOnce(&mut Tape<'g>) -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let result = eval(&mut self.tape).await;
        if self.config.tune {
            let requests = autotune::take_untuned(self.gpu);
            let tuned = autotune::tune(self.gpu, &requests).await?;
            self.report_tuned(&tuned);
        }
        self.clock.exclude(start.elapsed().as_secs_f64());
        result
    }

    /// Appends a row to `eval.csv` (if the run has a folder) and shows `note` as progress.
    pub fn eval_row(&mut self, row: &str, note: &str) -> Result<()> {
        if let Some(dir) = self.run_dir.as_mut() {
            dir.eval_row(row)?;
        }
        self.progress.note(note);
        Ok(())
    }

    /// Checks an evaluation's result (`what` names it, e.g. "the validation bits per
    /// byte"): one that is not finite is divergence, so the run stops and no checkpoint is
    /// written of a model that evaluates to NaN or infinity, though its weights be finite.
    pub fn check_evaluation(&mut self, what: &str, value: f32) {
        if !value.is_finite() && self.divergence.is_none() {
            self.divergence = Some(Divergence {
                step: self.step,
                why: format!("{what} is {value}"),
            });
        }
    }

    /// Writes the checkpoint with `save(optimizer, where the run is, path)` if the run has a
    /// folder (`epoch`: the epochs finished). A run that has diverged (a loss or an
    /// evaluation that is not finite) writes nothing; a model holding non-finite values is
    /// divergence too: nothing is written, the old checkpoint stays, and the run stops.
    pub async fn checkpoint(
        &mut self,
        epoch: usize,
        save: impl AsyncFnOnce(&Optimizer, RunPoint, &std::path::Path) -> Result<()>,
    ) -> Result<()> {
        let Some(dir) = &self.run_dir else {
            return Ok(());
        };
        if self.divergence.is_some() {
            return Ok(());
        }
        let at = RunPoint {
            epoch,
            step: self.step,
            flags: &self.config.flags,
        };
        let start = Instant::now();
        let saved = save(self.optimizer, at, &dir.checkpoint()).await;
        self.clock.exclude(start.elapsed().as_secs_f64());
        match saved {
            Err(Error::Diverged { why, .. }) => {
                self.divergence = Some(Divergence {
                    step: self.step,
                    why: format!("the model holds a non-finite value ({why})"),
                });
                Ok(())
            }
            Ok(()) if self.config.keep_checkpoints => dir.keep_checkpoint(self.step),
            other => other,
        }
    }

    /// Ends the run: the summary, written to `summary.txt` with `extra` fields after the
    /// common ones.
    pub fn finish(mut self, extra: &[(&str, String)]) -> Result<RunSummary> {
        let param_bytes: u64 = self.params.iter().map(|p| p.len() as u64 * 4).sum();
        self.progress.finish();
        let (tail, all) = (&self.final_losses, &self.losses);
        let final_train_loss = if !tail.is_empty() {
            Some(tail.iter().sum::<f32>() / tail.len() as f32)
        } else {
            all.last().map(|l| l.1)
        };
        let summary = RunSummary {
            label: self.config.label.clone(),
            steps: self.step,
            final_train_loss,
            wall_seconds: self.start.elapsed().as_secs_f64(),
            items_per_second: self.clock.steady_rate(),
            first_step_seconds: self.clock.first_step_seconds(),
            peak_activation_bytes: self.tape.peak_bytes_held(),
            param_bytes: 2 * param_bytes + self.optimizer.state_bytes(),
            divergence: self.divergence.take(),
            losses: std::mem::take(&mut self.losses),
        };
        if let Some(dir) = &self.run_dir {
            let mut fields = summary_fields(&summary);
            fields.extend(extra.iter().cloned());
            dir.write_summary(&fields)?;
        }
        if let Some(d) = &summary.divergence {
            eprintln!("{} diverged at step {}: {}", summary.label, d.step, d.why);
        }
        Ok(summary)
    }
}

/// `step[,epoch],loss,lr,UNIT_per_s[,alpha_min,alpha_mean,alpha_max,alpha_0,...]`, then
/// `,loss_scale,skipped_steps` for a loss-scaled (mixed-precision) run.
pub fn metrics_header(columns: Columns, alphas: usize, loss_scaled: bool) -> String {
    let mut header = String::from("step");
    if columns.epoch {
        header += ",epoch";
    }
    header += &format!(",loss,lr,{}_per_s", columns.rate_unit);
    if alphas > 0 {
        header += ",alpha_min,alpha_mean,alpha_max";
        header.extend((0..alphas).map(|i| format!(",alpha_{i}")));
    }
    if loss_scaled {
        header += super::run_dir::LOSS_SCALE_COLUMNS;
    }
    header
}
