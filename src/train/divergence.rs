//! When a run has diverged: a loss it reads is NaN or infinite, or exceeds
//! [`EXPLOSION_FACTOR`] times the first loss the run read or [`LOSS_CEILING`] (a finite
//! loss that explodes, or a run that starts exploded), or a checkpoint would hold a
//! non-finite value. The run then stops at once, the step and the quantity are named, the
//! last good checkpoint stays as it was, and the command exits with an error.
//! `allow_divergence` lets a run go on past an exploding finite loss (never past NaN or
//! infinity).

/// A loss above this many times the run's first loss is divergence.
pub const EXPLOSION_FACTOR: f32 = 100.0;

/// A loss above this is divergence whatever the first loss was: every loss here is a
/// mean cross-entropy, ln(classes) (2.3 for ten classes, 5.5 for bytes) for a model that
/// knows nothing, so a million nats a prediction is a model whose activations have
/// exploded (an un-normalised residual stack can start there).
pub const LOSS_CEILING: f32 = 1e6;

/// Where and why a run diverged.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    pub step: u64,
    pub why: String,
}

/// Watches the losses read for divergence.
#[derive(Clone, Debug, Default)]
pub struct DivergenceGuard {
    first: Option<f32>,
}

impl DivergenceGuard {
    /// Why `loss` means divergence, if it does; `allow_explosion` lets a finite loss pass.
    pub fn check(&mut self, loss: f32, allow_explosion: bool) -> Option<String> {
        if !loss.is_finite() {
            return Some(format!("the training loss is {loss}"));
        }
        let first = *self.first.get_or_insert(loss);
        if allow_explosion {
            return None;
        }
        if loss > LOSS_CEILING {
            return Some(format!(
                "the training loss {loss:.4e} is over {LOSS_CEILING:.0e} (allow this with \
                 --allow-divergence)"
            ));
        }
        (loss > EXPLOSION_FACTOR * first.max(f32::MIN_POSITIVE)).then(|| {
            format!(
                "the training loss {loss:.4e} is more than {EXPLOSION_FACTOR}x its first value \
                 {first:.4} (allow this with --allow-divergence)"
            )
        })
    }
}
