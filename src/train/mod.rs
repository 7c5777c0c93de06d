//! Training loops: a classifier on image data (the MLP experiments), with progress, a
//! metrics CSV, test evaluation each epoch and a summary.

pub mod checkpoint;
pub mod lm;
pub mod plot;
pub mod progress;
pub mod resnet;
pub mod run_dir;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::data::{Images, epoch_order};
use crate::gpu::{Error, Gpu, Result};
use crate::nn::Mlp;
use crate::optim::Optimizer;
use crate::tape::{Tape, Tensor};

use progress::Progress;

/// How to run one training job.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Name shown in progress and tables.
    pub label: String,
    pub epochs: usize,
    /// Stop after this many steps, even mid-epoch.
    pub max_steps: Option<u64>,
    pub batch: usize,
    /// Seeds the example order (the model has its own seed).
    pub seed: u64,
    /// Read the loss back (and write a CSV row) every this many steps.
    pub log_every: u64,
    /// Run directory for metrics.csv, eval.csv, summary.txt and model.safetensors (saved
    /// after every epoch).
    pub out: Option<PathBuf>,
    pub show_progress: bool,
    /// Profile this step (counted from 1) and print where its time went.
    pub profile_step: Option<u64>,
}

/// What a run ended with.
#[derive(Clone, Debug)]
pub struct Summary {
    pub label: String,
    pub steps: u64,
    /// Mean of the last ten losses read (smooths the noise of single batches).
    pub final_train_loss: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
    pub wall_seconds: f64,
    /// Peak bytes of activations and gradients (the tape's pool).
    pub peak_activation_bytes: u64,
    /// Parameters, their gradients and the optimizer state.
    pub param_bytes: u64,
    /// True if the loss became NaN or infinite (the run stopped there).
    pub diverged: bool,
    /// (step, loss) pairs that were read.
    pub losses: Vec<(u64, f32)>,
}

/// Mean of the last ten (step, loss) readings.
fn final_loss(losses: &[(u64, f32)]) -> f32 {
    let tail = &losses[losses.len().saturating_sub(10)..];
    tail.iter().map(|l| l.1).sum::<f32>() / tail.len().max(1) as f32
}

/// Min, mean and max of the α values, if the model has any.
fn alpha_stats(gpu: &Gpu, model: &Mlp) -> Result<Option<(f32, f32, f32)>> {
    let Some(alphas) = &model.alphas else {
        return Ok(None);
    };
    let values = gpu.read_f32(&alphas.value, alphas.len())?;
    let min = values.iter().cloned().fold(f32::INFINITY, f32::min);
    let max = values.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    Ok(Some((
        min,
        values.iter().sum::<f32>() / values.len() as f32,
        max,
    )))
}

/// How many rows of `logits` [n, classes] have their largest value at the label.
pub fn count_correct(logits: &[f32], classes: usize, labels: &[u32]) -> usize {
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0
    };
    logits
        .chunks(classes)
        .zip(labels)
        .filter(|(row, label)| argmax(row) as u32 == **label)
        .count()
}

/// Mean loss and accuracy of `model` on `data`, in batches, without recording gradients.
pub fn evaluate(tape: &mut Tape, model: &Mlp, data: &Images, batch: usize) -> Result<(f32, f32)> {
    let features = data.features();
    evaluate_with(
        tape,
        data,
        batch,
        |n| vec![n, features],
        |tape, x| model.forward(tape, x),
    )
}

/// Mean loss and accuracy on `data` in batches of `batch`, without recording gradients:
/// `shape(n)` is the input tensor's shape for n examples, `forward` maps it to logits
/// [n, classes].
pub fn evaluate_with(
    tape: &mut Tape,
    data: &Images,
    batch: usize,
    shape: impl Fn(usize) -> Vec<usize>,
    mut forward: impl FnMut(&mut Tape, &Tensor) -> Result<Tensor>,
) -> Result<(f32, f32)> {
    tape.set_grad_enabled(false);
    let all: Vec<usize> = (0..data.count).collect();
    let mut run = || {
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for chunk in all.chunks(batch.max(1)) {
            let (x, y) = data.gather(chunk);
            let xt = tape.input(&x, &shape(chunk.len()))?;
            let logits = forward(tape, &xt)?;
            let loss = tape.cross_entropy(&logits, &y)?;
            loss_sum += tape.read(&loss)?[0] as f64 * chunk.len() as f64;
            correct += count_correct(&tape.read(&logits)?, data.classes, &y);
            tape.reset();
        }
        Ok((
            (loss_sum / data.count as f64) as f32,
            correct as f32 / data.count as f32,
        ))
    };
    let result = run();
    tape.set_grad_enabled(true);
    result
}

fn create(path: &Path, header: &str) -> Result<std::fs::File> {
    let mut file = std::fs::File::create(path)
        .map_err(|e| Error::data(path, format!("cannot create: {e}")))?;
    writeln!(file, "{header}").map_err(|e| Error::data(path, format!("cannot write: {e}")))?;
    Ok(file)
}

fn write_line(file: &mut std::fs::File, path: &Path, line: &str) -> Result<()> {
    writeln!(file, "{line}").map_err(|e| Error::data(path, format!("cannot write: {e}")))
}

/// Trains `model` with `optimizer` on `train`, evaluating on `test` after every epoch.
pub fn train_classifier(
    gpu: &Gpu,
    model: &Mlp,
    optimizer: &mut Optimizer,
    train: &Images,
    test: &Images,
    run: &RunConfig,
) -> Result<Summary> {
    if run.batch == 0 || run.batch > train.count {
        return Err(Error::Invalid {
            what: "batch size".into(),
            why: format!(
                "{} must be between 1 and the {} training examples",
                run.batch, train.count
            ),
        });
    }
    if train.features() != model.config.inputs {
        return Err(Error::Shape {
            op: "train",
            expected: format!("{} inputs per example", model.config.inputs),
            got: format!("{}", train.features()),
        });
    }
    let files = match &run.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::Data {
                path: dir.clone(),
                why: format!("cannot create the run directory: {e}"),
            })?;
            let (m, e) = (dir.join("metrics.csv"), dir.join("eval.csv"));
            Some((
                (
                    create(&m, "step,epoch,loss,lr,alpha_min,alpha_mean,alpha_max")?,
                    m,
                ),
                (create(&e, "epoch,step,test_loss,test_accuracy")?, e),
            ))
        }
        None => None,
    };
    let mut files = files;
    let steps_per_epoch = (train.count / run.batch) as u64;
    let total = run
        .max_steps
        .unwrap_or(u64::MAX)
        .min(steps_per_epoch * run.epochs as u64);
    let mut progress = Progress::new(&run.label, total, run.show_progress);
    let params = model.params();
    let mut tape = Tape::new(gpu);
    let mut profiler = progress::StepProfiler::new(run.profile_step);
    let (mut step, mut losses, mut diverged) = (0u64, Vec::new(), false);
    let (mut test_loss, mut test_accuracy) = (f32::NAN, f32::NAN);
    'epochs: for epoch in 0..run.epochs {
        let order = epoch_order(train.count, run.seed, epoch as u64);
        for chunk in order.chunks_exact(run.batch) {
            if step >= total {
                break 'epochs;
            }
            profiler.before(gpu, step + 1)?;
            let (x, y) = train.gather(chunk);
            let xt = tape.input(&x, &[run.batch, train.features()])?;
            let logits = model.forward(&mut tape, &xt)?;
            let loss = tape.cross_entropy(&logits, &y)?;
            tape.backward(&loss)?;
            let lr = optimizer.lr();
            optimizer.step_on_tape(&mut tape, &params)?;
            step += 1;
            let mut shown = None;
            if step % run.log_every == 0 || step == total {
                let value = tape.read(&loss)?[0];
                losses.push((step, value));
                shown = Some(value);
                if let Some(((file, path), _)) = files.as_mut() {
                    let a = alpha_stats(gpu, model)?.map_or(",,".to_string(), |(lo, mean, hi)| {
                        format!("{lo},{mean},{hi}")
                    });
                    write_line(
                        file,
                        path,
                        &format!("{step},{},{value},{lr},{a}", epoch + 1),
                    )?;
                }
                if !value.is_finite() {
                    diverged = true;
                    tape.reset();
                    break 'epochs;
                }
            }
            tape.reset();
            profiler.after(gpu, step)?;
            progress.update(step, epoch + 1, shown.or(losses.last().map(|l| l.1)));
        }
        (test_loss, test_accuracy) = evaluate(&mut tape, model, test, run.batch.max(100))?;
        if let Some(dir) = &run.out {
            let saved = checkpoint::save_mlp(gpu, model, &dir.join("model.safetensors"));
            if !checkpoint::saved_unless_diverged(saved)? {
                diverged = true;
                break 'epochs;
            }
        }
        if let Some((_, (file, path))) = files.as_mut() {
            write_line(
                file,
                path,
                &format!("{},{step},{test_loss},{test_accuracy}", epoch + 1),
            )?;
        }
        if run.show_progress {
            progress.finish();
            eprintln!(
                "{} epoch {}: test loss {test_loss:.4}, test accuracy {:.2}%",
                run.label,
                epoch + 1,
                100.0 * test_accuracy
            );
        }
    }
    if diverged || test_loss.is_nan() {
        progress.finish();
        (test_loss, test_accuracy) = if diverged {
            (f32::NAN, f32::NAN)
        } else {
            evaluate(&mut tape, model, test, run.batch.max(100))?
        };
    }
    let summary = Summary {
        label: run.label.clone(),
        steps: step,
        final_train_loss: final_loss(&losses),
        test_loss,
        test_accuracy,
        wall_seconds: progress.elapsed().as_secs_f64(),
        peak_activation_bytes: tape.peak_bytes_held(),
        param_bytes: 2 * model.param_bytes() + optimizer.state_bytes(),
        diverged,
        losses,
    };
    if let Some(dir) = &run.out {
        let path = dir.join("summary.txt");
        let text = format!(
            "label={}\nsteps={}\nfinal_train_loss={}\ntest_loss={}\ntest_accuracy={}\nwall_seconds={:.3}\npeak_activation_bytes={}\nparam_bytes={}\ndiverged={}\n",
            summary.label,
            summary.steps,
            summary.final_train_loss,
            summary.test_loss,
            summary.test_accuracy,
            summary.wall_seconds,
            summary.peak_activation_bytes,
            summary.param_bytes,
            summary.diverged
        );
        std::fs::write(&path, text).map_err(|e| Error::Data {
            path,
            why: format!("cannot write: {e}"),
        })?;
    }
    Ok(summary)
}
