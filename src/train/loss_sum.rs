//! Every step's training loss kept on the GPU (copied into a slot of a buffer: no readback
//! in the step) and summed on the host when the slots fill or a mean is asked for, so that
//! the mean loss over an epoch covers every step, whatever `log_every` is.

use crate::gpu::{Error, Gpu, Result};
use crate::tape::{Tape, Tensor};

/// Losses a buffer holds before they are read back and summed.
const SLOTS: u64 = 4096;

/// The losses of the steps since the last mean.
pub struct LossSum {
    /// [SLOTS] one loss a step
    slots: wgpu::Buffer,
    used: u64,
    sum: f64,
    count: u64,
}

impl LossSum {
    pub fn new(gpu: &Gpu) -> LossSum {
        LossSum {
            slots: gpu.zeroed_f32("step losses", SLOTS as usize),
            used: 0,
            sum: 0.0,
            count: 0,
        }
    }

    /// Keeps this step's `loss` (one value), copied after the work recorded on `tape`.
    pub async fn keep(&mut self, tape: &mut Tape<'_>, loss: &Tensor) -> Result<()> {
        if loss.len() != 1 {
            return Err(Error::Shape {
                op: "training loss",
                expected: "one value".into(),
                got: format!("{:?}", loss.shape()),
            });
        }
        if self.used == SLOTS {
            self.fold(tape.gpu()).await?;
        }
        tape.copy_into(loss, &self.slots, self.used * 4)?;
        self.used += 1;
        Ok(())
    }

    /// Reads the used slots back and adds them to the sum (in step order, in f64).
    async fn fold(&mut self, gpu: &Gpu) -> Result<()> {
        let values = gpu.read_f32(&self.slots, self.used as usize).await?;
        self.sum += values.iter().map(|&v| v as f64).sum::<f64>();
        self.count += self.used;
        self.used = 0;
        Ok(())
    }

    /// The mean of the losses kept since the last call (`None` if none was), starting
    /// afresh. Call it after the tape's step has been submitted (`Tape::reset`).
    pub async fn take_mean(&mut self, gpu: &Gpu) -> Result<Option<f32>> {
        self.fold(gpu).await?;
        let mean = (self.count > 0).then(|| (self.sum / self.count as f64) as f32);
        (self.sum, self.count) = (0.0, 0);
        Ok(mean)
    }
}
