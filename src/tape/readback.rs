//! What a caller reads off a tape: a tensor's values, an activation's gradient, and the
//! memory its pool holds.

use super::tape::Tape;
use super::tensor::Tensor;
use crate::gpu::Result;
use crate::kernels::precision::read_as;

impl Tape<'_> {
    /// Submits what is recorded and copies `t` to the host (as f32, whatever its type).
    pub async fn read(&mut self, t: &Tensor) -> Result<Vec<f32>> {
        self.flush();
        read_as(self.gpu, &t.buffer, t.len(), t.dtype).await
    }

    /// The activation gradient of `t` after backward (parameters: read `Param::grad`).
    pub async fn grad(&mut self, t: &Tensor) -> Result<Option<Vec<f32>>> {
        self.flush();
        let dtype = self.grad_dtype(t.id);
        match self.slots[t.id].grad.clone() {
            Some(buffer) => Ok(Some(read_as(self.gpu, &buffer, t.len(), dtype).await?)),
            None => Ok(None),
        }
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
