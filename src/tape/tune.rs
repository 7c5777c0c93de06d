//! Tuning a step before it runs: the step is recorded on a dry tape (every size checked,
//! every `Auto` kernel chosen, nothing compiled or run), and the shape classes it met that
//! the tuning table lacks are measured now (`kernels::autotune::tune`). What a training run
//! with `--tune` and a step benchmark do once, before their first step; a launcher never
//! measures.

use crate::gpu::{Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::autotune::{self, Tuned};

use super::{Tape, Tensor};

/// Records `loss_of` and its backward on a dry tape of `precision` (the step's: f16 steps
/// meet f16 kernel classes), then measures every kernel class they met without a choice in
/// the tuning table and records the winners. Returns the classes measured (none when the
/// table knew them all).
pub async fn tune_step<'g>(
    gpu: &'g Gpu,
    precision: Dtype,
    loss_of: impl FnOnce(&mut Tape<'g>) -> Result<Tensor>,
) -> Result<Vec<Tuned>> {
    autotune::take_untuned(gpu); // what earlier work met is not this step's
    {
        let mut dry = Tape::dry(gpu);
        dry.set_precision(precision)?;
        let loss = loss_of(&mut dry)?;
        dry.backward(&loss)?;
    }
    let requests = autotune::take_untuned(gpu);
    autotune::tune(gpu, &requests).await
}

/// "tuned 3 kernel classes: KEY CHOICE, ...", or `None` when nothing was measured.
pub fn describe(tuned: &[Tuned]) -> Option<String> {
    (!tuned.is_empty()).then(|| {
        let each: Vec<String> = tuned
            .iter()
            .map(|t| format!("{} {}", t.key, t.winner))
            .collect();
        format!("tuned {} kernel classes: {}", tuned.len(), each.join(", "))
    })
}
