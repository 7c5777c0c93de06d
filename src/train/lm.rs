//! Training a byte-level language model: random windows of the training text, validation
//! bits per byte on a fixed set of windows, progress in tokens per second, a metrics CSV
//! with every α, checkpoints, and sampling.

use std::io::Write;
use std::path::PathBuf;

use rand::{RngExt, SeedableRng};

use crate::data::text::{TextSplits, fixed_windows, random_windows};
use crate::gpu::{Error, Gpu, Result};
use crate::nn::Transformer;
use crate::optim::Optimizer;
use crate::tape::Tape;

use super::progress::Progress;

/// How to run one language-model job.
#[derive(Clone, Debug)]
pub struct LmRun {
    pub label: String,
    pub steps: u64,
    pub batch: usize,
    /// Window length (≤ the model's `seq`).
    pub seq: usize,
    pub seed: u64,
    /// Validation every this many steps (and at the end).
    pub eval_every: u64,
    /// Windows in the fixed validation set.
    pub eval_windows: usize,
    /// Read the training loss back every this many steps.
    pub log_every: u64,
    /// Stop when validation bits per byte reach this.
    pub target_bpb: Option<f32>,
    /// Run directory: metrics.csv, summary.txt, model.safetensors (with the optimizer state,
    /// written at every evaluation).
    pub out: Option<PathBuf>,
    /// Steps already taken (a resumed run starts after them and appends to metrics.csv).
    pub start_step: u64,
    pub show_progress: bool,
    /// Profile this step (counted from 1) and print where its time went.
    pub profile_step: Option<u64>,
}

/// What a run ended with.
#[derive(Clone, Debug)]
pub struct LmSummary {
    pub label: String,
    pub steps: u64,
    /// Mean of the last ten training losses read (nats per byte).
    pub final_train_loss: f32,
    /// The last validation bits per byte.
    pub val_bpb: f32,
    /// The first evaluated step whose validation bits per byte reached the target.
    pub steps_to_target: Option<u64>,
    pub wall_seconds: f64,
    pub tokens_per_second: f64,
    pub peak_activation_bytes: u64,
    pub diverged: bool,
    /// (step, validation bits per byte)
    pub val_curve: Vec<(u64, f32)>,
}

/// Mean cross-entropy on `windows` in bits per byte, without recording gradients.
pub fn validation_bpb(
    tape: &mut Tape,
    model: &Transformer,
    windows: &(Vec<u32>, Vec<u32>),
    batch: usize,
    seq: usize,
) -> Result<f32> {
    tape.set_grad_enabled(false);
    let result = (|| {
        let (inputs, targets) = windows;
        let (mut total, mut count) = (0.0f64, 0usize);
        for (x, y) in inputs.chunks(batch * seq).zip(targets.chunks(batch * seq)) {
            let rows = x.len() / seq;
            let logits = model.forward(tape, x, rows)?;
            let loss = tape.cross_entropy(&logits, y)?;
            total += tape.read(&loss)?[0] as f64 * x.len() as f64;
            count += x.len();
            tape.reset();
        }
        Ok((total / count.max(1) as f64 / std::f64::consts::LN_2) as f32)
    })();
    tape.set_grad_enabled(true);
    result
}

/// Trains `model` with `optimizer` on the training split, evaluating on validation windows.
pub fn train_lm(
    gpu: &Gpu,
    model: &Transformer,
    optimizer: &mut Optimizer,
    text: &TextSplits,
    run: &LmRun,
) -> Result<LmSummary> {
    if run.seq == 0 || run.seq > model.config.seq || run.batch == 0 {
        return Err(Error::Invalid {
            what: "window".into(),
            why: format!(
                "batch {} and seq {} must be positive, seq at most the model's {}",
                run.batch, run.seq, model.config.seq
            ),
        });
    }
    if text.train.len() <= run.seq || text.validation.len() <= run.seq {
        return Err(Error::Invalid {
            what: "text".into(),
            why: format!(
                "{} training and {} validation bytes are too few for windows of {}",
                text.train.len(),
                text.validation.len(),
                run.seq
            ),
        });
    }
    let eval = fixed_windows(&text.validation, run.seq, run.eval_windows.max(1));
    let alphas = model.alphas.as_ref().map_or(0, |a| a.len());
    let mut csv = match &run.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::data(dir, format!("cannot create the run directory: {e}")))?;
            let path = dir.join("metrics.csv");
            let file = if run.start_step > 0 {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| {
                        Error::data(
                            &path,
                            format!("cannot append to the resumed run's metrics: {e}"),
                        )
                    })?
            } else {
                let mut file = std::fs::File::create(&path)
                    .map_err(|e| Error::data(&path, format!("cannot create: {e}")))?;
                let alpha_cols: String = (0..alphas).map(|i| format!(",alpha_{i}")).collect();
                writeln!(file, "step,loss,val_bpb,lr,tokens_per_s{alpha_cols}")
                    .map_err(|e| Error::data(&path, e.to_string()))?;
                file
            };
            Some((file, path))
        }
        None => None,
    };
    let params = model.params();
    let mut tape = Tape::new(gpu);
    let mut progress = Progress::new(&run.label, run.steps, run.show_progress)
        .with_tokens((run.batch * run.seq) as u64);
    let (mut losses, mut val_curve, mut steps_to_target, mut diverged) =
        (Vec::new(), Vec::new(), None, false);
    let mut step = run.start_step;
    let mut profiler = super::progress::StepProfiler::new(run.profile_step);
    while step < run.steps {
        profiler.before(gpu, step + 1)?;
        let (x, y) = random_windows(
            &text.train,
            run.seq,
            run.batch,
            run.seed.wrapping_mul(0x9e37_79b9).wrapping_add(step),
        );
        let logits = model.forward(&mut tape, &x, run.batch)?;
        let loss = tape.cross_entropy(&logits, &y)?;
        tape.backward(&loss)?;
        let lr = optimizer.lr();
        optimizer.step_on_tape(&mut tape, &params)?;
        step += 1;
        let evaluate = step % run.eval_every.max(1) == 0 || step == run.steps;
        let read = step % run.log_every.max(1) == 0 || evaluate;
        let loss_value = if read {
            Some(tape.read(&loss)?[0])
        } else {
            None
        };
        tape.reset();
        profiler.after(gpu, step)?;
        let mut bpb = None;
        if evaluate {
            let v = validation_bpb(&mut tape, model, &eval, run.batch, run.seq)?;
            val_curve.push((step, v));
            if run.target_bpb.is_some_and(|t| v <= t) && steps_to_target.is_none() {
                steps_to_target = Some(step);
            }
            bpb = Some(v);
            if let Some(dir) = &run.out {
                let path = dir.join("model.safetensors");
                let saved =
                    super::checkpoint::save_transformer_run(gpu, model, optimizer, step, &path);
                if !super::checkpoint::saved_unless_diverged(saved)? {
                    diverged = true;
                    break;
                }
            }
        }
        if let Some(l) = loss_value {
            losses.push((step, l));
            if let Some((file, path)) = csv.as_mut() {
                let tokens_per_s = ((step - run.start_step) as usize * run.batch * run.seq) as f64
                    / progress.elapsed().as_secs_f64();
                let alpha_values = match &model.alphas {
                    Some(a) => gpu
                        .read_f32(&a.value, a.len())?
                        .iter()
                        .map(|v| format!(",{v}"))
                        .collect(),
                    None => String::new(),
                };
                let b = bpb.map_or(String::new(), |b| b.to_string());
                writeln!(file, "{step},{l},{b},{lr},{tokens_per_s:.1}{alpha_values}")
                    .map_err(|e| Error::data(path, e.to_string()))?;
            }
            if !l.is_finite() {
                diverged = true;
                break;
            }
        }
        progress.update(step, 0, losses.last().map(|l| l.1));
        if steps_to_target.is_some() {
            break;
        }
    }
    progress.finish();
    let wall = progress.elapsed().as_secs_f64();
    let tail = &losses[losses.len().saturating_sub(10)..];
    let summary = LmSummary {
        label: run.label.clone(),
        steps: step,
        final_train_loss: tail.iter().map(|l| l.1).sum::<f32>() / tail.len().max(1) as f32,
        val_bpb: val_curve.last().map_or(f32::NAN, |v| v.1),
        steps_to_target,
        wall_seconds: wall,
        tokens_per_second: ((step - run.start_step) as usize * run.batch * run.seq) as f64
            / wall.max(1e-9),
        peak_activation_bytes: tape.peak_bytes_held(),
        diverged,
        val_curve,
    };
    if let Some(dir) = &run.out {
        let path = dir.join("summary.txt");
        let text = format!(
            "label={}\nsteps={}\nfinal_train_loss={}\nval_bpb={}\nsteps_to_target={}\nwall_seconds={:.3}\ntokens_per_second={:.1}\npeak_activation_bytes={}\ndiverged={}\n",
            summary.label,
            summary.steps,
            summary.final_train_loss,
            summary.val_bpb,
            summary
                .steps_to_target
                .map_or("-".to_string(), |s| s.to_string()),
            summary.wall_seconds,
            summary.tokens_per_second,
            summary.peak_activation_bytes,
            summary.diverged
        );
        std::fs::write(&path, text)
            .map_err(|e| Error::data(&path, format!("cannot write: {e}")))?;
    }
    Ok(summary)
}

/// Continues `prompt` by `len` bytes, sampling each from softmax(logits / temperature)
/// (greedy when the temperature is 0), with the model's window as context.
pub fn sample(
    gpu: &Gpu,
    model: &Transformer,
    prompt: &[u8],
    len: usize,
    temperature: f32,
    seed: u64,
) -> Result<Vec<u8>> {
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(Error::Invalid {
            what: "temperature".into(),
            why: format!("{temperature} must be a finite number >= 0"),
        });
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut text: Vec<u8> = if prompt.is_empty() {
        b"\n".to_vec()
    } else {
        prompt.to_vec()
    };
    let mut tape = Tape::new(gpu);
    tape.set_grad_enabled(false);
    for _ in 0..len {
        let context = &text[text.len().saturating_sub(model.config.seq)..];
        let ids: Vec<u32> = context.iter().map(|&b| b as u32).collect();
        let logits = model.forward(&mut tape, &ids, 1)?;
        let values = tape.read(&logits)?;
        tape.reset();
        let last = &values[values.len() - 256..];
        let next = if temperature == 0.0 {
            last.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
        } else {
            let m = last.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let weights: Vec<f64> = last
                .iter()
                .map(|&v| (((v - m) / temperature) as f64).exp())
                .collect();
            let mut pick = rng.random_range(0.0..weights.iter().sum::<f64>());
            weights
                .iter()
                .position(|&w| {
                    pick -= w;
                    pick <= 0.0
                })
                .unwrap_or(255)
        };
        text.push(next as u8);
    }
    Ok(text[text.len() - len..].to_vec())
}
