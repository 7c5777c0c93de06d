//! Backward: replays the tape in reverse, one `match` arm per op, each calling the named
//! backward launchers of `kernels` (the longer rules are in `backward_ops.rs`). See the
//! module docs of `tape` for the accumulation rule, which `target` alone applies.

use crate::gpu::{Error, Result};
use crate::kernels::Dtype;
use crate::kernels::bias::Activation;
use crate::kernels::embedding;
use crate::kernels::{Grad, elementwise as ew, softmax};

use super::tape::{Op, Tape};
use super::tensor::Tensor;

/// Where a gradient goes: its buffer and whether to add to what is there (`+=`) or
/// overwrite it (`=`).
pub(super) struct Target {
    pub(super) buffer: wgpu::Buffer,
    pub(super) accumulate: bool,
}

impl Target {
    /// The launchers' view of it.
    pub(super) fn grad(&self) -> Grad<'_> {
        Grad::new(&self.buffer, self.accumulate)
    }
}

impl<'g> Tape<'g> {
    /// Backpropagates from a one-element loss with ∂loss/∂loss = 1.
    pub fn backward(&mut self, loss: &Tensor) -> Result<()> {
        self.backward_with(loss, &[1.0])
    }

    /// Backpropagates from `out` with upstream gradient `seed` (one value per element of
    /// `out`). Parameter gradients are accumulated into `Param::grad`. May be called again
    /// on the same forward pass (e.g. one backward per output unit for a Jacobian): the
    /// activation gradients of the previous call are dropped first.
    pub fn backward_with(&mut self, out: &Tensor, seed: &[f32]) -> Result<()> {
        if seed.len() != out.len() {
            return Err(Error::Shape {
                op: "backward",
                expected: format!("{} seed values for {:?}", out.len(), out.shape),
                got: seed.len().to_string(),
            });
        }
        if !self.slots[out.id].requires_grad || !self.grad_enabled() {
            return Err(Error::Invalid {
                what: "backward".into(),
                why: "the tensor depends on no parameter (or gradients were disabled)".into(),
            });
        }
        // Seeds are host writes: everything recorded so far must be submitted before them.
        self.flush();
        self.release_grads();
        let dtype = self.grad_dtype(out.id);
        let seed_buffer = self.take_grad_as(seed.len(), dtype);
        crate::kernels::precision::write_as(self.gpu, &seed_buffer, seed, dtype);
        self.slots[out.id].grad = Some(seed_buffer);
        let nodes = std::mem::take(&mut self.nodes);
        let result = nodes
            .iter()
            .rev()
            .try_for_each(|node| self.backward_node(node.out, &node.op, out.id, seed));
        self.nodes = nodes;
        result
    }

    fn backward_node(&mut self, out: usize, op: &Op, seeded: usize, seed: &[f32]) -> Result<()> {
        let Some(dy) = self.slots[out].grad.clone() else {
            return Ok(()); // nothing downstream of this op reached the seed
        };
        let gpu = self.gpu;
        let n = self.slots[out].len as u32;
        // The type of dy and of the activation gradients this op writes.
        let dtype = self.slots[out].dtype;
        match op {
            Op::Matmul { a, b, bias, desc } => self.matmul_backward(&dy, [*a, *b], *bias, desc),
            Op::Rezero {
                x,
                f,
                alpha,
                alpha_index,
            } => self.rezero_backward((&dy, dtype), [*x, *f, *alpha], *alpha_index),
            Op::Add { a, b } => {
                self.scaled_backward((&dy, dtype, n), *a, 1.0)?;
                self.scaled_backward((&dy, dtype, n), *b, 1.0)
            }
            Op::Scale { x, s } => self.scaled_backward((&dy, dtype, n), *x, *s),
            Op::Relu { x } => self.slope_backward((&dy, dtype, n), *x, Activation::Relu),
            Op::Gelu { x } => self.slope_backward((&dy, dtype, n), *x, Activation::Gelu),
            Op::Dropout { x, mask, step } => {
                self.same_grad_type("dropout backward", *x, dtype)?;
                self.with_target(*x, |tape, dx| {
                    let (pass, m) = (tape.pass(), *mask);
                    crate::kernels::dropout::dropout_backward(gpu, pass, dx, &dy, step, n, m, dtype)
                })
            }
            Op::BiasActivation { .. } => self.bias_activation_backward(&dy, op),
            Op::LayerNorm {
                x,
                gain,
                bias,
                mean,
                rstd,
                shape,
            } => self.layernorm_backward(&dy, [*x, *gain, *bias], (mean, rstd), *shape),
            Op::Softmax { x, rows, cols } => {
                self.same_grad_type("softmax backward", *x, dtype)?;
                let y = self.slots[out].buffer.clone();
                let (r, c) = (*rows, *cols);
                self.with_target(*x, |tape, dx| {
                    let (d, acc) = (dx.buffer, dx.accumulate);
                    softmax::softmax_backward(gpu, tape.pass(), d, &y, &dy, r, c, acc, dtype)
                })
            }
            Op::Embedding {
                table,
                order,
                offsets,
                shape,
            } => self.with_target(*table, |tape, dtable| {
                let pass = tape.pass();
                embedding::embedding_backward(gpu, pass, dtable, &dy, order, offsets, *shape)
            }),
            Op::Attention { .. } => self.attention_backward((&dy, dtype), op),
            Op::CrossEntropy { .. } | Op::Sum { .. } => {
                let upstream = terminal_seed(op, out, seeded, seed)?;
                self.terminal_backward(op, upstream)
            }
            Op::Conv2d { .. }
            | Op::BatchNorm { .. }
            | Op::Shortcut { .. }
            | Op::GlobalAvgPool { .. } => self.image_backward((&dy, dtype), op),
        }
    }

    /// dx (+)= s · dy, for `x` (the backward of scale, and of add with s = 1); dy holds `n`
    /// elements of `dtype`.
    fn scaled_backward(
        &mut self,
        (dy, dtype, n): (&wgpu::Buffer, Dtype, u32),
        x: usize,
        s: f32,
    ) -> Result<()> {
        self.same_grad_type("scale backward", x, dtype)?;
        let gpu = self.gpu;
        self.with_target(x, |tape, dx| {
            ew::scale(gpu, tape.pass(), dx.buffer, dy, s, n, dx.accumulate, dtype)
        })
    }

    /// dx (+)= dy · act'(x), for the activation ops.
    fn slope_backward(
        &mut self,
        (dy, dtype, n): (&wgpu::Buffer, Dtype, u32),
        x: usize,
        activation: Activation,
    ) -> Result<()> {
        self.same_grad_type("activation backward", x, dtype)?;
        let (gpu, xb) = (self.gpu, self.operand_of(x));
        self.with_target(x, |tape, dx| {
            let (out, acc, pass) = (dx.buffer, dx.accumulate, tape.pass());
            match activation {
                Activation::Relu => ew::relu_backward(gpu, pass, out, dy, &xb, n, acc, dtype),
                Activation::Gelu => ew::gelu_backward(gpu, pass, out, dy, &xb, n, acc, dtype),
            }
        })
    }

    /// The ops that end the graph (a loss), given the upstream gradient of their one
    /// output: cross-entropy (its gradient computed with the loss) and the sum.
    fn terminal_backward(&mut self, op: &Op, upstream: f32) -> Result<()> {
        let gpu = self.gpu;
        match op {
            Op::CrossEntropy {
                logits,
                dlogits,
                dtype,
            } => {
                self.same_grad_type("cross_entropy backward", *logits, *dtype)?;
                let len = self.slots[*logits].len as u32;
                self.with_target(*logits, |tape, d| {
                    let (out, acc) = (d.buffer, d.accumulate);
                    ew::scale(gpu, tape.pass(), out, dlogits, upstream, len, acc, *dtype)
                })
            }
            Op::Sum { x } => {
                let len = self.slots[*x].len;
                let filled = self.take_filled(len, upstream)?;
                self.with_target(*x, |tape, dx| {
                    let acc = dx.accumulate;
                    ew::scale(
                        gpu,
                        tape.pass(),
                        dx.buffer,
                        &filled,
                        1.0,
                        len as u32,
                        acc,
                        Dtype::F32,
                    )
                })
            }
            _ => unreachable!("called for the ops that end the graph only"),
        }
    }

    /// The gradient destination of tensor `id`, or None if it needs no gradient.
    /// Parameters accumulate into their own buffer; an activation's first gradient is
    /// written into a fresh buffer, later ones (a second consumer) add to it.
    pub(super) fn target(&mut self, id: usize) -> Option<Target> {
        let slot = &self.slots[id];
        if !slot.requires_grad {
            return None;
        }
        if let Some(buffer) = &slot.param_grad {
            return Some(Target {
                buffer: buffer.clone(),
                accumulate: true,
            });
        }
        if let Some(buffer) = &slot.grad {
            return Some(Target {
                buffer: buffer.clone(),
                accumulate: true,
            });
        }
        let buffer = self.take_grad_as(slot.len, self.grad_dtype(id));
        self.slots[id].grad = Some(buffer.clone());
        Some(Target {
            buffer,
            accumulate: false,
        })
    }

    /// Runs `write` with the gradient destination of tensor `id`, if it needs one.
    pub(super) fn with_target(
        &mut self,
        id: usize,
        write: impl FnOnce(&mut Self, Grad) -> Result<()>,
    ) -> Result<()> {
        match self.target(id) {
            Some(t) => write(self, Grad::new(&t.buffer, t.accumulate)),
            None => Ok(()),
        }
    }

    /// `target`, or a throwaway buffer of `len` for kernels that write this gradient
    /// together with others that are needed.
    pub(super) fn target_or_discard(&mut self, id: usize, len: usize) -> Target {
        self.target(id).unwrap_or_else(|| Target {
            buffer: self.take_grad_as(len, self.grad_dtype(id)),
            accumulate: false,
        })
    }
}

/// The host-known upstream gradient of an op that must end the graph (a loss).
fn terminal_seed(op: &Op, out: usize, seeded: usize, seed: &[f32]) -> Result<f32> {
    let op = match op {
        Op::CrossEntropy { .. } => "cross_entropy",
        _ => "sum",
    };
    if out != seeded {
        return Err(Error::Invalid {
            what: format!("backward through {op}"),
            why: format!(
                "{op} must be the tensor backward starts from (the loss), not an intermediate"
            ),
        });
    }
    Ok(seed[0])
}
