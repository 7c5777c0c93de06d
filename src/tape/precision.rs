//! Mixed precision on the tape: the activations' type, the f16 copies of f32 operands,
//! the gradients' types, and the loss scale the cross-entropy's gradient carries.
//!
//! On an f16 tape every op writes f16 activations (and f16 activation gradients) and
//! computes in f32; parameters stay f32 (their gradients too), and an op that needs one as
//! an f16 operand (a product's weight or bias) reads a copy cast once a step; the norms
//! read their f32 gains and α as they are; the loss and its statistics are f32.

use crate::gpu::{Error, Result};
use crate::kernels::{Dtype, cast, precision};

use super::tape::Tape;
use super::tensor::Tensor;

impl Tape<'_> {
    /// Sets the activations' type of the steps recorded from now on: f32 (the default), or
    /// f16 (mixed precision: needs the device's `SHADER_F16`, refused clearly without).
    /// Only between steps (before the first op, or after [`Tape::reset`]): one step's
    /// tensors are all of one type.
    pub fn set_precision(&mut self, dtype: Dtype) -> Result<()> {
        precision::require(self.gpu, "tape", dtype)?;
        if dtype != self.dtype && !self.slots.is_empty() {
            return Err(Error::Invalid {
                what: "tape precision".into(),
                why: format!(
                    "{} tensors are recorded at {}: change the precision between steps",
                    self.slots.len(),
                    self.dtype
                ),
            });
        }
        self.dtype = dtype;
        Ok(())
    }

    /// The activations' type.
    pub fn precision(&self) -> Dtype {
        self.dtype
    }

    /// The loss scaler's state ([`crate::kernels::loss_scale::ScalerState`]) whose scale
    /// the cross-entropy multiplies its gradient by, or None.
    pub fn set_loss_scale(&mut self, state: Option<&wgpu::Buffer>) {
        self.loss_scale = state.cloned();
    }

    /// The buffer of tensor `t` as an operand of the tape's activation type: its own, or a
    /// copy cast once this step (an f32 parameter read by an f16 product).
    pub(crate) fn operand(&mut self, t: &Tensor) -> Result<wgpu::Buffer> {
        if t.dtype == self.dtype {
            return Ok(t.buffer.clone());
        }
        if let Some(copy) = &self.slots[t.id].operand {
            return Ok(copy.clone());
        }
        let (len, dtype) = (self.slots[t.id].len, self.dtype);
        let n = super::ops::dim_u32("tape operand cast", len)?;
        let copy = self.take_as(len, dtype);
        let gpu = self.gpu;
        match dtype {
            Dtype::F16 => cast::to_f16(gpu, self.pass(), &copy, &t.buffer, n, 1.0)?,
            Dtype::F32 => cast::to_f32(gpu, self.pass(), &copy, &t.buffer, n, 1.0)?,
        }
        self.slots[t.id].operand = Some(copy.clone());
        Ok(copy)
    }

    /// The operand buffer of slot `id` saved for backward: its copy if one was made.
    pub(crate) fn operand_of(&self, id: usize) -> wgpu::Buffer {
        let slot = &self.slots[id];
        slot.operand.clone().unwrap_or_else(|| slot.buffer.clone())
    }

    /// The type of slot `id`'s gradient: f32 for a parameter, its own type otherwise.
    pub(crate) fn grad_dtype(&self, id: usize) -> Dtype {
        match self.slots[id].param_grad {
            Some(_) => Dtype::F32,
            None => self.slots[id].dtype,
        }
    }

    /// Errors unless the tape's activations are f32: for the ops not yet on f16.
    pub(crate) fn require_f32(&self, op: &'static str) -> Result<()> {
        match self.dtype {
            Dtype::F32 => Ok(()),
            Dtype::F16 => Err(Error::Unsupported {
                op,
                variant: "f16".into(),
                why: "this op does not run on f16 activations yet; use f32".into(),
            }),
        }
    }

    /// Errors unless a gradient of `dtype` (the upstream one) can be written into slot
    /// `id`'s: the elementwise kernels read and write one type.
    pub(crate) fn same_grad_type(&self, op: &'static str, id: usize, dtype: Dtype) -> Result<()> {
        if self.grad_dtype(id) == dtype || !self.slots[id].requires_grad {
            return Ok(());
        }
        Err(Error::Unsupported {
            op,
            variant: dtype.name().into(),
            why: format!(
                "the gradient of a {} tensor through this op on {dtype} activations",
                self.grad_dtype(id)
            ),
        })
    }
}
