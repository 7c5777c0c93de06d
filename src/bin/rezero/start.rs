//! Where a training command's run starts: a fresh model and optimizer, or the run in its
//! folder resumed from its checkpoint after checking that the flags that define it match.

use std::path::Path;

use rezero::Result;
use rezero::gpu::Gpu;
use rezero::kernels::loss_scale::LossScaleRule;
use rezero::kernels::{Dtype, precision};
use rezero::optim::{Optimizer, OptimizerConfig};
use rezero::tape::Param;
use rezero::train::checkpoint::{self, Checkpoint};

/// A model, its optimizer and the steps already taken.
pub struct Start<M> {
    pub model: M,
    pub optimizer: Optimizer,
    pub step: u64,
}

/// How to make a command's model: fresh, from a checkpoint, and its parameters.
pub struct ModelSource<F, L, P> {
    pub fresh: F,
    pub load: L,
    pub params: P,
}

/// A fresh model, or (with `resume`) the one in `out`'s checkpoint with its optimizer state
/// and step, refused unless the checkpoint's recorded `flags` match these. The optimizer
/// multiplies the α learning rate by `alpha_lr_mult`, and scales the loss at f16 (its
/// state restored from a checkpoint that has one: a run may change precision on resume).
/// A device without f16 is refused before anything is allocated.
pub fn start<M, F, L, P>(
    gpu: &Gpu,
    (out, resume, dtype): (&Path, bool, Dtype),
    flags: &[(String, String)],
    (optimizer, alpha_lr_mult): (OptimizerConfig, f32),
    source: ModelSource<F, L, P>,
) -> Result<Start<M>>
where
    F: FnOnce() -> Result<M>,
    L: FnOnce(&Path, &Checkpoint) -> Result<M>,
    P: for<'a> Fn(&'a M) -> Vec<&'a Param>,
{
    precision::require(gpu, "--precision", dtype)?;
    let prepare = |optimizer: &mut Optimizer| -> Result<()> {
        optimizer.set_alpha_lr_mult(alpha_lr_mult)?;
        match dtype {
            Dtype::F16 => optimizer.enable_loss_scaling(gpu, LossScaleRule::default()),
            Dtype::F32 => Ok(()),
        }
    };
    if !resume {
        let model = (source.fresh)()?;
        let mut optimizer = Optimizer::new(gpu, &(source.params)(&model), optimizer)?;
        prepare(&mut optimizer)?;
        return Ok(Start {
            model,
            optimizer,
            step: 0,
        });
    }
    let path = out.join("model.safetensors");
    if !path.exists() {
        let why = rezero::train::run_dir::NOTHING_TO_RESUME;
        return Err(rezero::Error::data(out, why));
    }
    let loaded = checkpoint::load(&path)?;
    loaded.check_flags(&path, flags)?;
    let model = (source.load)(&path, &loaded)?;
    let params = (source.params)(&model);
    let mut optimizer = Optimizer::new(gpu, &params, optimizer)?;
    prepare(&mut optimizer)?;
    let step = checkpoint::restore_run(gpu, &path, &loaded, &params, &mut optimizer)?;
    eprintln!("resuming {} after step {step}", path.display());
    Ok(Start {
        model,
        optimizer,
        step,
    })
}
