//! Training a ResNet on images: shuffled (and optionally augmented) mini-batches, progress
//! in images per second, test loss and accuracy after every epoch, a metrics CSV with every
//! block's α, and a resumable checkpoint written atomically after every epoch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::augment::{Augment, augment_batch};
use crate::data::{Images, epoch_order};
use crate::gpu::{Error, Gpu, Result};
use crate::nn::Resnet;
use crate::optim::Optimizer;
use crate::tape::Tape;

use super::evaluate_with;
use super::progress::Progress;

/// How to run one ResNet job.
#[derive(Clone, Debug)]
pub struct ResnetRun {
    pub label: String,
    pub epochs: usize,
    /// Stop after this many steps in all (quick runs), evaluating where it stops.
    pub max_steps: Option<u64>,
    pub batch: usize,
    /// Seeds the example order and the augmentation (the model has its own seed).
    pub seed: u64,
    pub augment: Option<Augment>,
    /// Read the loss back (and write a CSV row) every this many steps.
    pub log_every: u64,
    /// Record the first epoch whose test accuracy reaches this (a fraction, 0.9 = 90%).
    pub target_accuracy: Option<f32>,
    /// Run directory: metrics.csv, eval.csv and model.safetensors (after every epoch).
    pub out: Option<PathBuf>,
    /// Steps already taken (a resumed run continues after them, mid-epoch too, and appends
    /// to its CSVs).
    pub start_step: u64,
    pub show_progress: bool,
    /// Profile this step (counted from 1) and print where its time went.
    pub profile_step: Option<u64>,
}

/// What a run ended with.
#[derive(Clone, Debug)]
pub struct ResnetSummary {
    pub label: String,
    pub steps: u64,
    /// Mean of the last ten training losses read.
    pub final_train_loss: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
    /// (epoch, test accuracy) after each epoch of this run.
    pub accuracy_curve: Vec<(usize, f32)>,
    /// The first epoch whose test accuracy reached the target.
    pub epochs_to_target: Option<usize>,
    /// Training images per second (evaluation excluded).
    pub images_per_second: f64,
    pub wall_seconds: f64,
    /// Peak bytes of activations and gradients (the tape's pool).
    pub peak_activation_bytes: u64,
    /// Parameters, their gradients and the optimizer state.
    pub param_bytes: u64,
    /// True if the loss became NaN or infinite (the run stopped there).
    pub diverged: bool,
}

/// Mean loss and accuracy on `data` in eval mode (running BatchNorm statistics), without
/// recording gradients.
pub fn evaluate_resnet(
    tape: &mut Tape,
    model: &Resnet,
    data: &Images,
    batch: usize,
) -> Result<(f32, f32)> {
    let (c, h, w) = (data.channels, data.height, data.width);
    evaluate_with(
        tape,
        data,
        batch,
        |n| vec![n, c, h, w],
        |tape, x| model.forward(tape, x, false),
    )
}

/// A CSV file: created with its header, or opened for appending when a run resumes.
fn open_csv(path: &Path, header: &str, append: bool) -> Result<std::fs::File> {
    if append {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::data(
                    path,
                    format!("cannot append to the resumed run's file: {e}"),
                )
            });
    }
    let mut file = std::fs::File::create(path)
        .map_err(|e| Error::data(path, format!("cannot create: {e}")))?;
    writeln!(file, "{header}").map_err(|e| Error::data(path, format!("cannot write: {e}")))?;
    Ok(file)
}

fn write_row(file: &mut (std::fs::File, PathBuf), row: &str) -> Result<()> {
    writeln!(file.0, "{row}").map_err(|e| Error::data(&file.1, format!("cannot write: {e}")))
}

/// The augmentation seed of one batch: a function of the run's seed, the epoch and the
/// batch's index, so a resumed run sees the same batches.
fn batch_seed(seed: u64, epoch: usize, index: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add((epoch as u64) << 32)
        .wrapping_add(index as u64)
}

/// Trains `model` with `optimizer` on `train` (images [count, channels, h, w]), evaluating
/// on `test` after every epoch.
pub fn train_resnet(
    gpu: &Gpu,
    model: &Resnet,
    optimizer: &mut Optimizer,
    train: &Images,
    test: &Images,
    run: &ResnetRun,
) -> Result<ResnetSummary> {
    if run.batch == 0 || run.batch > train.count {
        return Err(Error::Invalid {
            what: "batch size".into(),
            why: format!(
                "{} must be between 1 and the {} training examples",
                run.batch, train.count
            ),
        });
    }
    if train.channels != model.config.in_channels || train.classes != model.config.classes {
        return Err(Error::Shape {
            op: "train resnet",
            expected: format!(
                "images of {} channels and {} classes",
                model.config.in_channels, model.config.classes
            ),
            got: format!("{} channels, {} classes", train.channels, train.classes),
        });
    }
    let resumed = run.start_step > 0;
    let alphas = model.alphas.as_ref().map_or(0, |a| a.len());
    let mut files = match &run.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::data(dir, format!("cannot create the run directory: {e}")))?;
            let alpha_cols: String = (0..alphas).map(|i| format!(",alpha_{i}")).collect();
            let header = format!("step,epoch,loss,lr,images_per_s{alpha_cols}");
            let (m, e) = (dir.join("metrics.csv"), dir.join("eval.csv"));
            let metrics = (open_csv(&m, &header, resumed)?, m);
            let header = "epoch,step,train_loss,test_loss,test_accuracy";
            Some((metrics, (open_csv(&e, header, resumed)?, e)))
        }
        None => None,
    };
    let steps_per_epoch = (train.count / run.batch) as u64;
    let first_step = run.start_step;
    let mut step = first_step;
    let total = run
        .max_steps
        .unwrap_or(u64::MAX)
        .min(steps_per_epoch * run.epochs as u64);
    if resumed && first_step >= total {
        return Err(Error::Invalid {
            what: "resume".into(),
            why: format!(
                "the run already took {first_step} steps of the {total} asked for; raise --epochs or --steps"
            ),
        });
    }
    let mut progress = Progress::new(
        &run.label,
        total.saturating_sub(first_step),
        run.show_progress,
    )
    .with_images(run.batch as u64);
    let params = model.params();
    let mut tape = Tape::new(gpu);
    let image_shape = [run.batch, train.channels, train.height, train.width];
    let (mut losses, mut accuracy_curve, mut diverged) = (Vec::new(), Vec::new(), false);
    let (mut test_loss, mut test_accuracy, mut epochs_to_target) = (f32::NAN, f32::NAN, None);
    let (start, mut eval_seconds, mut trained) = (Instant::now(), 0.0f64, 0u64);
    let mut profiler = super::progress::StepProfiler::new(run.profile_step);
    let mut epoch = (first_step / steps_per_epoch) as usize;
    // A run resumed mid-epoch skips the batches of that epoch it already took.
    let mut done_in_epoch = (first_step % steps_per_epoch) as usize;
    while epoch < run.epochs && step < total && !diverged {
        let order = epoch_order(train.count, run.seed, epoch as u64);
        let mut epoch_losses = Vec::new();
        let batches = order.chunks_exact(run.batch).enumerate();
        for (index, chunk) in batches.skip(std::mem::take(&mut done_in_epoch)) {
            if step >= total {
                break;
            }
            profiler.before(gpu, step + 1)?;
            let (mut x, y) = train.gather(chunk);
            if let Some(a) = run.augment {
                augment_batch(&mut x, train, a, batch_seed(run.seed, epoch, index));
            }
            let xt = tape.input(&x, &image_shape)?;
            let logits = model.forward(&mut tape, &xt, true)?;
            let loss = tape.cross_entropy(&logits, &y)?;
            tape.backward(&loss)?;
            let lr = optimizer.lr();
            optimizer.step_on_tape(&mut tape, &params)?;
            step += 1;
            trained += run.batch as u64;
            let mut shown = None;
            if step % run.log_every.max(1) == 0 || step == total {
                let value = tape.read(&loss)?[0];
                shown = Some(value);
                losses.push(value);
                epoch_losses.push(value);
                if let Some((metrics, _)) = files.as_mut() {
                    let rate = trained as f64 / (start.elapsed().as_secs_f64() - eval_seconds);
                    let alpha_values: String = match &model.alphas {
                        Some(a) => gpu
                            .read_f32(&a.value, a.len())?
                            .iter()
                            .map(|v| format!(",{v}"))
                            .collect(),
                        None => String::new(),
                    };
                    write_row(
                        metrics,
                        &format!("{step},{},{value},{lr},{rate:.1}{alpha_values}", epoch + 1),
                    )?;
                }
                if !value.is_finite() {
                    diverged = true;
                }
            }
            tape.reset();
            profiler.after(gpu, step)?;
            progress.update(step - first_step, epoch + 1, shown);
            if diverged {
                break;
            }
        }
        epoch += 1;
        let eval_start = Instant::now();
        (test_loss, test_accuracy) = evaluate_resnet(&mut tape, model, test, run.batch)?;
        eval_seconds += eval_start.elapsed().as_secs_f64();
        accuracy_curve.push((epoch, test_accuracy));
        if run.target_accuracy.is_some_and(|t| test_accuracy >= t) && epochs_to_target.is_none() {
            epochs_to_target = Some(epoch);
        }
        let train_loss = epoch_losses.iter().sum::<f32>() / epoch_losses.len().max(1) as f32;
        if let Some((_, evals)) = files.as_mut() {
            write_row(
                evals,
                &format!("{epoch},{step},{train_loss},{test_loss},{test_accuracy}"),
            )?;
        }
        if let Some(dir) = &run.out {
            let path = dir.join("model.safetensors");
            let saved =
                super::checkpoint::save_resnet_run(gpu, model, optimizer, epoch, step, &path);
            if !super::checkpoint::saved_unless_diverged(saved)? {
                diverged = true;
            }
        }
        if run.show_progress {
            progress.finish();
            eprintln!(
                "{} epoch {epoch}: train loss {train_loss:.4}, test loss {test_loss:.4}, test accuracy {:.2}%",
                run.label,
                100.0 * test_accuracy
            );
        }
    }
    progress.finish();
    let tail = &losses[losses.len().saturating_sub(10)..];
    let wall = start.elapsed().as_secs_f64();
    Ok(ResnetSummary {
        label: run.label.clone(),
        steps: step,
        final_train_loss: tail.iter().sum::<f32>() / tail.len().max(1) as f32,
        test_loss,
        test_accuracy,
        accuracy_curve,
        epochs_to_target,
        images_per_second: trained as f64 / (wall - eval_seconds).max(1e-9),
        wall_seconds: wall,
        peak_activation_bytes: tape.peak_bytes_held(),
        param_bytes: 2 * model.param_bytes() + optimizer.state_bytes(),
        diverged,
    })
}
