//! Training an image classifier (the deep MLPs and the ResNets) on the core: shuffled,
//! optionally augmented mini-batches by epoch, test loss and accuracy after every epoch
//! (a row of `eval.csv`), a resumable checkpoint after every epoch, and the first epoch
//! that reaches a target accuracy.

use crate::data::augment::{Augment, augment_batch};
use crate::data::{Images, epoch_order};
use crate::gpu::{Error, Gpu, Result};
use crate::nn::{Mlp, Resnet};
use crate::optim::Optimizer;
use crate::tape::{Param, Tape, Tensor};

use super::core::{Columns, RunConfig, RunPoint, RunSummary, Trainer, field, field_with};

/// What the image loop needs of a model.
pub trait ImageModel {
    /// The input tensor's shape for `n` examples of `data`.
    fn input_shape(&self, n: usize, data: &Images) -> Vec<usize>;
    /// Errors unless the model takes examples of `data`.
    fn check_data(&self, data: &Images) -> Result<()>;
    /// Logits [n, classes]; `training` selects batch statistics where the model has them.
    fn forward(&self, tape: &mut Tape, x: &Tensor, training: bool) -> Result<Tensor>;
    fn params(&self) -> Vec<&Param>;
    fn alphas(&self) -> Option<&Param>;
    /// Writes a resumable checkpoint (weights, optimizer state, epoch and step). (The
    /// models here are used by value, never as `dyn`, so the future needs no `Send` bound.)
    #[allow(async_fn_in_trait)]
    async fn save_run(
        &self,
        gpu: &Gpu,
        optimizer: &Optimizer,
        at: RunPoint<'_>,
        path: &std::path::Path,
    ) -> Result<()>;
}

impl ImageModel for Mlp {
    fn input_shape(&self, n: usize, data: &Images) -> Vec<usize> {
        vec![n, data.features()]
    }
    fn check_data(&self, data: &Images) -> Result<()> {
        let c = &self.config;
        if (data.features(), data.classes) != (c.inputs, c.classes) {
            return Err(Error::Shape {
                op: "train",
                expected: format!("{} inputs and {} classes", c.inputs, c.classes),
                got: format!("{} inputs, {} classes", data.features(), data.classes),
            });
        }
        Ok(())
    }
    fn forward(&self, tape: &mut Tape, x: &Tensor, _training: bool) -> Result<Tensor> {
        Mlp::forward(self, tape, x)
    }
    fn params(&self) -> Vec<&Param> {
        Mlp::params(self)
    }
    fn alphas(&self) -> Option<&Param> {
        self.alphas.as_ref()
    }
    async fn save_run(
        &self,
        gpu: &Gpu,
        optimizer: &Optimizer,
        at: RunPoint<'_>,
        path: &std::path::Path,
    ) -> Result<()> {
        super::checkpoint::save_mlp_run(gpu, self, optimizer, at, path).await
    }
}

impl ImageModel for Resnet {
    fn input_shape(&self, n: usize, data: &Images) -> Vec<usize> {
        vec![n, data.channels, data.height, data.width]
    }
    fn check_data(&self, data: &Images) -> Result<()> {
        let c = &self.config;
        if (data.channels, data.classes) != (c.in_channels, c.classes) {
            return Err(Error::Shape {
                op: "train resnet",
                expected: format!(
                    "images of {} channels and {} classes",
                    c.in_channels, c.classes
                ),
                got: format!("{} channels, {} classes", data.channels, data.classes),
            });
        }
        Ok(())
    }
    fn forward(&self, tape: &mut Tape, x: &Tensor, training: bool) -> Result<Tensor> {
        Resnet::forward(self, tape, x, training)
    }
    fn params(&self) -> Vec<&Param> {
        Resnet::params(self)
    }
    fn alphas(&self) -> Option<&Param> {
        self.alphas.as_ref()
    }
    async fn save_run(
        &self,
        gpu: &Gpu,
        optimizer: &Optimizer,
        at: RunPoint<'_>,
        path: &std::path::Path,
    ) -> Result<()> {
        super::checkpoint::save_resnet_run(gpu, self, optimizer, at, path).await
    }
}

/// How to run one image-classifier job.
#[derive(Clone, Debug)]
pub struct ImageRun {
    pub run: RunConfig,
    pub epochs: usize,
    /// Stop after this many steps in all (quick runs), evaluating where it stops.
    pub max_steps: Option<u64>,
    pub augment: Option<Augment>,
    /// Record the first epoch whose test accuracy reaches this (a fraction, 0.9 = 90%).
    pub target_accuracy: Option<f32>,
}

/// What an image run ended with.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    pub run: RunSummary,
    pub eval: ImageEval,
}

/// The evaluations of an image run.
#[derive(Clone, Debug, Default)]
pub struct ImageEval {
    /// The last evaluation's test loss and accuracy (`None` if none ran).
    pub test_loss: Option<f32>,
    pub test_accuracy: Option<f32>,
    /// (epoch, test accuracy) after each epoch of this run.
    pub accuracy_curve: Vec<(usize, f32)>,
    /// The first epoch whose test accuracy reached the target.
    pub epochs_to_target: Option<usize>,
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

/// Mean loss and accuracy of `model` on `data` in batches of `batch`, in evaluation mode,
/// without recording gradients.
pub async fn evaluate(
    tape: &mut Tape<'_>,
    model: &impl ImageModel,
    data: &Images,
    batch: usize,
) -> Result<(f32, f32)> {
    tape.set_grad_enabled(false);
    let result = loss_and_accuracy(tape, model, data, batch).await;
    tape.set_grad_enabled(true);
    result
}

async fn loss_and_accuracy(
    tape: &mut Tape<'_>,
    model: &impl ImageModel,
    data: &Images,
    batch: usize,
) -> Result<(f32, f32)> {
    let all: Vec<usize> = (0..data.count).collect();
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for chunk in all.chunks(batch.max(1)) {
        let (x, y) = data.gather(chunk);
        let xt = tape.input(&x, &model.input_shape(chunk.len(), data))?;
        let logits = model.forward(tape, &xt, false)?;
        let loss = tape.cross_entropy(&logits, &y)?;
        loss_sum += tape.read(&loss).await?[0] as f64 * chunk.len() as f64;
        correct += count_correct(&tape.read(&logits).await?, data.classes, &y);
        tape.reset();
    }
    Ok((
        (loss_sum / data.count as f64) as f32,
        correct as f32 / data.count as f32,
    ))
}

/// The augmentation seed of one batch: a function of the run's seed, the epoch and the
/// batch's index, so a resumed run sees the same batches.
fn batch_seed(seed: u64, epoch: usize, index: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add((epoch as u64) << 32)
        .wrapping_add(index as u64)
}

/// Errors unless `batch` is between 1 and the training examples and the model takes them.
fn check(model: &impl ImageModel, train: &Images, test: &Images, run: &ImageRun) -> Result<()> {
    if run.run.batch == 0 || run.run.batch > train.count {
        return Err(Error::Invalid {
            what: "--batch".into(),
            why: format!(
                "{} must be between 1 and the {} training examples",
                run.run.batch, train.count
            ),
        });
    }
    if run.epochs == 0 {
        return Err(Error::Invalid {
            what: "--epochs".into(),
            why: "must be at least 1".into(),
        });
    }
    model.check_data(train)?;
    model.check_data(test)
}

/// Trains `model` with `optimizer` on `train`, evaluating on `test` after every epoch (and
/// where `max_steps` stops it mid-epoch).
pub async fn train_images(
    gpu: &Gpu,
    model: &impl ImageModel,
    optimizer: &mut Optimizer,
    (train, test): (&Images, &Images),
    run: &ImageRun,
) -> Result<ImageSummary> {
    check(model, train, test, run)?;
    let batch = run.run.batch;
    let steps_per_epoch = (train.count / batch) as u64;
    let total = (steps_per_epoch * run.epochs as u64).min(run.max_steps.unwrap_or(u64::MAX));
    let columns = Columns {
        epoch: true,
        rate_unit: "images",
        items_per_step: batch as u64,
    };
    let eval_header = "step,epoch,train_loss,test_loss,test_accuracy";
    let mut core = Trainer::new(
        gpu,
        optimizer,
        (model.params(), model.alphas()),
        &run.run,
        (columns, eval_header),
        total,
    )?;
    let mut evals = ImageEval::default();
    let first_step = run.run.start_step;
    let mut epoch = (first_step / steps_per_epoch) as usize;
    // A run resumed mid-epoch skips the batches of that epoch it already took.
    let mut done_in_epoch = (first_step % steps_per_epoch) as usize;
    while core.running() {
        let order = epoch_order(train.count, run.run.seed, epoch as u64);
        let batches = order.chunks_exact(batch).enumerate();
        for (index, chunk) in batches.skip(std::mem::take(&mut done_in_epoch)) {
            if !core.running() {
                break;
            }
            let (mut x, y) = train.gather(chunk);
            if let Some(a) = run.augment {
                augment_batch(&mut x, train, a, batch_seed(run.run.seed, epoch, index));
            }
            let shape = model.input_shape(batch, train);
            core.step(Some(epoch + 1), |tape| {
                let xt = tape.input(&x, &shape)?;
                let logits = model.forward(tape, &xt, true)?;
                tape.cross_entropy(&logits, &y)
            })
            .await?;
        }
        if core.diverged() {
            break;
        }
        epoch += 1;
        end_epoch(gpu, &mut core, model, test, run, epoch, &mut evals).await?;
    }
    let extra = [
        ("test_loss", field(evals.test_loss)),
        ("test_accuracy", field(evals.test_accuracy)),
        (
            "epochs_to_target",
            field_with(evals.epochs_to_target, |e| e.to_string()),
        ),
    ];
    Ok(ImageSummary {
        run: core.finish(&extra)?,
        eval: evals,
    })
}

/// After an epoch (or where the run stops): evaluate, log (the train loss: the mean of
/// every step's loss in the epoch, or since a resumed run started), and write the
/// checkpoint.
async fn end_epoch(
    gpu: &Gpu,
    core: &mut Trainer<'_, '_>,
    model: &impl ImageModel,
    test: &Images,
    run: &ImageRun,
    epoch: usize,
    summary: &mut ImageEval,
) -> Result<()> {
    let train_loss = core.mean_loss().await?;
    let eval_batch = run.run.batch.max(100);
    let (test_loss, accuracy) = core
        .evaluate(async |tape| evaluate(tape, model, test, eval_batch).await)
        .await?;
    summary.test_loss = Some(test_loss);
    summary.test_accuracy = Some(accuracy);
    summary.accuracy_curve.push((epoch, accuracy));
    if run.target_accuracy.is_some_and(|t| accuracy >= t) && summary.epochs_to_target.is_none() {
        summary.epochs_to_target = Some(epoch);
    }
    core.check_evaluation("the test loss", test_loss);
    let step = core.step_count();
    core.eval_row(
        &format!(
            "{step},{epoch},{},{test_loss},{accuracy}",
            field(train_loss)
        ),
        &format!(
            "{} epoch {epoch}: train loss {}, test loss {test_loss:.4}, test accuracy {:.2}%",
            run.run.label,
            train_loss.map_or("-".into(), |l| format!("{l:.4}")),
            100.0 * accuracy
        ),
    )?;
    core.checkpoint(epoch, async |optimizer, at, path| {
        model.save_run(gpu, optimizer, at, path).await
    })
    .await
}
