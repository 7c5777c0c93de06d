//! What a caller reads off a tape: a tensor's values, an activation's gradient, and the
//! memory its pool holds.

use super::tape::Tape;
use super::tensor::Tensor;
use crate::gpu::Result;
use crate::kernels::Dtype;

impl Tape<'_> {
    /// Submits what is recorded and copies `t` to the host (as f32, whatever its type).
    pub async fn read(&mut self, t: &Tensor) -> Result<Vec<f32>> {
        self.flush();
        self.read_as(&t.buffer, t.len(), t.dtype).await
    }

    /// The activation gradient of `t` after backward (parameters: read `Param::grad`).
    pub async fn grad(&mut self, t: &Tensor) -> Result<Option<Vec<f32>>> {
        self.flush();
        let dtype = self.grad_dtype(t.id);
        match self.slots[t.id].grad.clone() {
            Some(buffer) => Ok(Some(self.read_as(&buffer, t.len(), dtype).await?)),
            None => Ok(None),
        }
    }

    /// `len` elements of `dtype` in `buffer`, as f32.
    async fn read_as(&self, buffer: &wgpu::Buffer, len: usize, dtype: Dtype) -> Result<Vec<f32>> {
        match dtype {
            Dtype::F32 => self.gpu.read_f32(buffer, len).await,
            Dtype::F16 => {
                let halves = self.gpu.read::<half::f16>(buffer, len).await?;
                Ok(halves.into_iter().map(f32::from).collect())
            }
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
