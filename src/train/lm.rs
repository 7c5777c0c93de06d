//! Training a byte-level language model: random windows of the training text, validation
//! bits per byte on a fixed set of windows, progress in tokens per second, a metrics CSV
//! with every α, checkpoints, and sampling.

use rand::{RngExt, SeedableRng};

use crate::data::text::{TextSplits, fixed_windows, random_windows};
use crate::gpu::{Error, Gpu, Result};
use crate::nn::Transformer;
use crate::optim::Optimizer;
use crate::tape::{DropoutStep, Tape};

use super::core::{Columns, RunConfig, RunSummary, Trainer, field, field_with};

/// How to run one language-model job.
#[derive(Clone, Debug)]
pub struct LmRun {
    pub run: RunConfig,
    /// The step to stop at (over resumed runs too).
    pub steps: u64,
    /// Window length (≤ the model's `seq`).
    pub seq: usize,
    /// Validation every this many steps (and at the end); each writes the checkpoint.
    pub eval_every: u64,
    /// Windows in the fixed validation set.
    pub eval_windows: usize,
    /// Stop when validation bits per byte reach this.
    pub target_bpb: Option<f32>,
    /// Dropout probability in training (0: none): on each sublayer's output and between
    /// the feed-forward layers, drawn from the run's seed and the step; off in evaluation.
    pub dropout: f32,
}

/// What a run ended with.
#[derive(Clone, Debug)]
pub struct LmSummary {
    pub run: RunSummary,
    /// The last validation bits per byte (`None` if none ran).
    pub val_bpb: Option<f32>,
    /// The first evaluated step whose validation bits per byte reached the target.
    pub steps_to_target: Option<u64>,
    /// (step, validation bits per byte)
    pub val_curve: Vec<(u64, f32)>,
}

/// Mean cross-entropy on `windows` in bits per byte, without recording gradients.
pub async fn validation_bpb(
    tape: &mut Tape<'_>,
    model: &Transformer,
    windows: &(Vec<u32>, Vec<u32>),
    batch: usize,
    seq: usize,
) -> Result<f32> {
    tape.set_grad_enabled(false);
    let result = windows_bpb(tape, model, windows, batch, seq).await;
    tape.set_grad_enabled(true);
    result
}

async fn windows_bpb(
    tape: &mut Tape<'_>,
    model: &Transformer,
    (inputs, targets): &(Vec<u32>, Vec<u32>),
    batch: usize,
    seq: usize,
) -> Result<f32> {
    let (mut total, mut count) = (0.0f64, 0usize);
    for (x, y) in inputs.chunks(batch * seq).zip(targets.chunks(batch * seq)) {
        let rows = x.len() / seq;
        let logits = model.forward(tape, x, rows)?;
        let loss = tape.cross_entropy(&logits, y)?;
        total += tape.read(&loss).await?[0] as f64 * x.len() as f64;
        count += x.len();
        tape.reset();
    }
    Ok((total / count.max(1) as f64 / std::f64::consts::LN_2) as f32)
}

/// Bits per byte of `model` on all of `text` cut into non-overlapping windows of `seq`
/// bytes (each predicting the next byte of every position), `batch` windows at a time,
/// without recording gradients: (bits per byte, bytes predicted). The windows are made a
/// batch at a time, so a large file never has all its windows in memory.
pub async fn text_bpb(
    tape: &mut Tape<'_>,
    model: &Transformer,
    text: &[u8],
    seq: usize,
    batch: usize,
) -> Result<(f32, u64)> {
    if seq == 0 || seq > model.config.seq || batch == 0 || text.len() <= seq {
        return Err(Error::Invalid {
            what: "evaluation windows".into(),
            why: format!(
                "{} bytes in windows of {seq} (at most the model's {}) by batches of {batch}: \
                 need a window of at least 1 and more bytes than one window",
                text.len(),
                model.config.seq
            ),
        });
    }
    let windows = (text.len() - 1) / seq;
    let (mut bits, mut bytes) = (0.0f64, 0u64);
    for first in (0..windows).step_by(batch) {
        let count = batch.min(windows - first);
        let slice = &text[first * seq..(first + count) * seq + 1];
        let group = fixed_windows(slice, seq, count)?;
        let bpb = validation_bpb(tape, model, &group, count, seq).await? as f64;
        bits += bpb * (count * seq) as f64;
        bytes += (count * seq) as u64;
    }
    Ok(((bits / bytes as f64) as f32, bytes))
}

/// Errors unless the windows fit the model and the text holds more than one of them.
fn check(model: &Transformer, text: &TextSplits, run: &LmRun) -> Result<()> {
    let batch = run.run.batch;
    if run.seq == 0 || run.seq > model.config.seq || batch == 0 {
        return Err(Error::Invalid {
            what: "window".into(),
            why: format!(
                "batch {batch} and seq {} must be positive, seq at most the model's {}",
                run.seq, model.config.seq
            ),
        });
    }
    if !(0.0..1.0).contains(&run.dropout) {
        return Err(Error::Invalid {
            what: "--dropout".into(),
            why: format!("{} is not a probability in [0, 1)", run.dropout),
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
    Ok(())
}

/// Trains `model` with `optimizer` on the training split, evaluating on validation windows
/// every `eval_every` steps (and writing the checkpoint then).
pub async fn train_lm(
    gpu: &Gpu,
    model: &Transformer,
    optimizer: &mut Optimizer,
    text: &TextSplits,
    run: &LmRun,
) -> Result<LmSummary> {
    check(model, text, run)?;
    let (batch, seq) = (run.run.batch, run.seq);
    let eval = fixed_windows(&text.validation, seq, run.eval_windows.max(1))?;
    let columns = Columns {
        epoch: false,
        rate_unit: "tokens",
        items_per_step: (batch * seq) as u64,
    };
    let alphas = model.alphas.as_ref();
    let mut core = Trainer::new(
        gpu,
        optimizer,
        (model.params(), alphas),
        &run.run,
        (columns, "step,val_bpb"),
        run.steps,
    )?;
    let (mut val_curve, mut steps_to_target) = (Vec::new(), None);
    while core.running() && steps_to_target.is_none() {
        let step = core.step_count();
        let data_seed = run.run.seed.wrapping_mul(0x9e37_79b9).wrapping_add(step);
        let (x, y) = random_windows(&text.train, seq, batch, data_seed)?;
        let dropout = DropoutStep {
            p: run.dropout,
            seed: run.run.seed,
        };
        core.step(None, |tape| {
            tape.set_dropout(Some(dropout), step);
            let logits = model.forward(tape, &x, batch)?;
            tape.cross_entropy(&logits, &y)
        })
        .await?;
        let step = core.step_count();
        if core.diverged() || !(step % run.eval_every.max(1) == 0 || step == run.steps) {
            continue;
        }
        let bpb = core
            .evaluate(async |tape| validation_bpb(tape, model, &eval, batch, seq).await)
            .await?;
        val_curve.push((step, bpb));
        if run.target_bpb.is_some_and(|t| bpb <= t) {
            steps_to_target = Some(step);
        }
        let note = format!(
            "{} step {step}: validation {bpb:.4} bits/byte",
            run.run.label
        );
        core.eval_row(&format!("{step},{bpb}"), &note)?;
        core.check_evaluation("the validation bits per byte", bpb);
        core.checkpoint(0, async |optimizer, at, path| {
            super::checkpoint::save_transformer_run(gpu, model, optimizer, at, path).await
        })
        .await?;
    }
    let val_bpb = val_curve.last().map(|v| v.1);
    let extra = [
        ("val_bpb", field(val_bpb)),
        (
            "steps_to_target",
            field_with(steps_to_target, |s| s.to_string()),
        ),
    ];
    Ok(LmSummary {
        run: core.finish(&extra)?,
        val_bpb,
        steps_to_target,
        val_curve,
    })
}

/// Continues `prompt` by `len` bytes, sampling each from softmax(logits / temperature)
/// (greedy when the temperature is 0), with the model's window as context.
pub async fn sample(
    gpu: &Gpu,
    model: &Transformer,
    prompt: &[u8],
    len: usize,
    temperature: f32,
    seed: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len.min(1 << 20));
    let push = |byte: u8| {
        out.push(byte);
        Ok(())
    };
    sample_each(gpu, model, prompt, (len, temperature, seed), push).await?;
    Ok(out)
}

/// Like [`sample`], handing each byte to `emit` as soon as it is drawn (a stream: nothing
/// is kept but the model's window, so any `len` runs in bounded memory); an error from
/// `emit` stops it.
pub async fn sample_each(
    gpu: &Gpu,
    model: &Transformer,
    prompt: &[u8],
    (len, temperature, seed): (usize, f32, u64),
    mut emit: impl FnMut(u8) -> Result<()>,
) -> Result<()> {
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(Error::Invalid {
            what: "temperature".into(),
            why: format!("{temperature} must be a finite number >= 0"),
        });
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let window = model.config.seq;
    let mut text: Vec<u8> = match prompt.is_empty() {
        true => b"\n".to_vec(),
        false => prompt[prompt.len().saturating_sub(window)..].to_vec(),
    };
    let mut tape = Tape::new(gpu);
    tape.set_grad_enabled(false);
    for _ in 0..len {
        let context = &text[text.len().saturating_sub(window)..];
        let ids: Vec<u32> = context.iter().map(|&b| b as u32).collect();
        let logits = model.forward(&mut tape, &ids, 1)?;
        let values = tape.read(&logits).await?;
        tape.reset();
        let next = pick(&values[values.len() - 256..], temperature, &mut rng)?;
        emit(next)?;
        if text.len() >= 2 * window {
            text.drain(..text.len() - window);
        }
        text.push(next);
    }
    Ok(())
}

/// The next byte from the last position's logits: the likeliest at temperature 0, else a
/// draw from softmax(logits / temperature).
fn pick(last: &[f32], temperature: f32, rng: &mut rand::rngs::StdRng) -> Result<u8> {
    if let Some(bad) = last.iter().find(|v| !v.is_finite()) {
        return Err(Error::Invalid {
            what: "sample".into(),
            why: format!("the model's logits hold {bad}: its weights hold NaN or infinite values"),
        });
    }
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
    Ok(next as u8)
}
