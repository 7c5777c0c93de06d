//! Dropout on the tape: a training step turns it on (`Tape::set_dropout`: probability, seed,
//! step), and each `Tape::dropout` of the step draws its own mask from the seed, the step
//! and its order in the step (`kernels::dropout`); off when not set or in evaluation.

use crate::gpu::Result;
use crate::kernels::dropout::{Mask, dropout_forward};

use super::ops::dim_u32;
use super::tape::{Op, Tape};
use super::tensor::Tensor;

/// Dropout of a training step: probability `p` at every site, the run's `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutStep {
    pub p: f32,
    pub seed: u64,
}

impl Tape<'_> {
    /// Turns dropout on for the step about to be recorded, step `step` (counted over resumed
    /// runs too) with `dropout`'s probability and seed, or off with `None`. Each
    /// [`Tape::dropout`] of the step then draws its own mask, a function of the seed, the
    /// step and the site's order in the step (so a run is reproducible, and a resumed one
    /// bit-identical). Work recorded before is submitted first: the step key is written
    /// by a queue write.
    pub fn set_dropout(&mut self, dropout: Option<DropoutStep>, step: u64) {
        self.flush();
        self.dropout = dropout.filter(|d| d.p > 0.0);
        if self.dropout.is_some() {
            let gpu = self.gpu;
            let buffer =
                (self.dropout_step).get_or_insert_with(|| gpu.upload("dropout step key", &[0u32]));
            let key = Mask::step_key(step);
            gpu.queue.write_buffer(buffer, 0, bytemuck::bytes_of(&key));
        }
    }

    /// Dropout with the probability and stream [`Tape::set_dropout`] put in force for this
    /// step: each element kept with probability 1 − p and scaled by 1/(1 − p). The
    /// identity (x itself) when dropout is off or gradients are disabled (evaluation).
    pub fn dropout(&mut self, x: &Tensor) -> Result<Tensor> {
        let (Some(d), Some(step), true) =
            (self.dropout, self.dropout_step.clone(), self.grad_enabled())
        else {
            return Ok(x.clone());
        };
        let mask = Mask {
            p: d.p,
            site: Mask::site_key(d.seed, self.dropout_sites),
        };
        self.dropout_sites += 1;
        let xb = self.operand(x)?;
        let out = self.output(&x.shape, self.requires_grad(x));
        let (gpu, dtype) = (self.gpu, self.dtype);
        let n = dim_u32("tape dropout", x.len())?;
        let pass = self.pass();
        dropout_forward(gpu, pass, &out.buffer, &xb, &step, n, mask, dtype)?;
        self.record_op(
            &out,
            Op::Dropout {
                x: x.id,
                mask,
                step,
            },
        );
        Ok(out)
    }
}
