//! What a caller reads off a tape: a tensor's values, an activation's gradient, and the
//! memory its pool holds.

use super::tape::Tape;
use super::tensor::Tensor;
use crate::gpu::Result;

impl Tape<'_> {
    /// Submits what is recorded and copies `t` to the host.
    pub async fn read(&mut self, t: &Tensor) -> Result<Vec<f32>> {
        self.flush();
        self.gpu.read_f32(&t.buffer, t.len()).await
    }

    /// The activation gradient of `t` after backward (parameters: read `Param::grad`).
    pub async fn grad(&mut self, t: &Tensor) -> Result<Option<Vec<f32>>> {
        self.flush();
        match self.slots[t.id].grad.clone() {
            Some(buffer) => Ok(Some(self.gpu.read_f32(&buffer, t.len()).await?)),
            None => Ok(None),
        }
    }

    /// Bytes of GPU memory the tape's pool holds (activations and gradients).
    pub fn bytes_held(&self) -> u64 {
        self.pool.bytes_held()
    }

    /// The most bytes the pool held at once.
    pub fn peak_bytes_held(&self) -> u64 {
        self.pool.peak_bytes_held()
    }

    /// Buffers the pool has created in all (constant in steady-state training).
    pub fn allocations(&self) -> u64 {
        self.pool.allocations()
    }
}
