//! Where a training command's run starts: a fresh model and optimizer, or the run in its
//! folder resumed from its checkpoint after checking that the flags that define it match.

use std::path::Path;

use rezero::Result;
use rezero::gpu::Gpu;
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
/// multiplies the α learning rate by `alpha_lr_mult`.
pub fn start<M, F, L, P>(
    gpu: &Gpu,
    (out, resume): (&Path, bool),
    flags: &[(String, String)],
    (optimizer, alpha_lr_mult): (OptimizerConfig, f32),
    source: ModelSource<F, L, P>,
) -> Result<Start<M>>
where
    F: FnOnce() -> Result<M>,
    L: FnOnce(&Path, &Checkpoint) -> Result<M>,
    P: for<'a> Fn(&'a M) -> Vec<&'a Param>,
{
    if !resume {
        let model = (source.fresh)()?;
        let mut optimizer = Optimizer::new(gpu, &(source.params)(&model), optimizer)?;
        optimizer.set_alpha_lr_mult(alpha_lr_mult)?;
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
    optimizer.set_alpha_lr_mult(alpha_lr_mult)?;
    let step = checkpoint::restore_run(gpu, &path, &loaded, &params, &mut optimizer)?;
    eprintln!("resuming {} after step {step}", path.display());
    Ok(Start {
        model,
        optimizer,
        step,
    })
}
