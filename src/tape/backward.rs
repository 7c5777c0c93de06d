//! Backward: replays the tape in reverse, one `match` arm per op, each calling the named
//! backward launchers of `kernels`. See the module docs of `tape` for the accumulation rule.

use crate::gpu::{Error, Result};
use crate::kernels::attention::attention_backward;
use crate::kernels::conv2d::{conv2d_backward_input, conv2d_backward_weight};
use crate::kernels::heads::{HeadLayout, heads_to_rows, rows_to_heads};
use crate::kernels::matmul::{Matmul, matmul};
use crate::kernels::shortcut::shortcut_backward;
use crate::kernels::{
    batchnorm, conv2d, elementwise as ew, embedding, layernorm, pool, rezero, softmax,
};

use super::tape::{Op, Tape};
use super::tensor::Tensor;

/// Where a gradient goes: its buffer and whether to add to what is there (`+=`) or
/// overwrite it (`=`).
struct Target {
    buffer: wgpu::Buffer,
    accumulate: bool,
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
        let seed_buffer = self.take_grad(seed.len());
        self.gpu
            .queue
            .write_buffer(&seed_buffer, 0, bytemuck::cast_slice(seed));
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
        match op {
            Op::Matmul { a, b, bias, desc } => {
                let (ab, bb) = (self.slots[*a].buffer.clone(), self.slots[*b].buffer.clone());
                let (m, n, k, ta, tb) = (desc.m, desc.n, desc.k, desc.trans_a, desc.trans_b);
                if let Some(t) = self.target(*a) {
                    // dÂ = dC·B̂ᵀ; stored transposed: dAᵀ = B̂·dCᵀ
                    let (x, y, d) = if ta {
                        (&bb, &dy, Matmul::new(k, m, n).trans_a(tb).trans_b(true))
                    } else {
                        (&dy, &bb, Matmul::new(m, k, n).trans_b(!tb))
                    };
                    matmul(
                        gpu,
                        self.pass(),
                        &t.buffer,
                        x,
                        y,
                        None,
                        &d.accumulate(t.accumulate),
                    )?;
                }
                if let Some(t) = self.target(*b) {
                    // dB̂ = Âᵀ·dC; stored transposed: dBᵀ = dCᵀ·Â
                    let (x, y, d) = if tb {
                        (&dy, &ab, Matmul::new(n, k, m).trans_a(true).trans_b(ta))
                    } else {
                        (&ab, &dy, Matmul::new(k, n, m).trans_a(!ta))
                    };
                    matmul(
                        gpu,
                        self.pass(),
                        &t.buffer,
                        x,
                        y,
                        None,
                        &d.accumulate(t.accumulate),
                    )?;
                }
                if let Some(bias) = bias {
                    if let Some(t) = self.target(*bias) {
                        // dbias[n] = 1[m]ᵀ·dC: column sums as a product with ones.
                        let ones = self.ones(m as usize)?;
                        matmul(
                            gpu,
                            self.pass(),
                            &t.buffer,
                            &ones,
                            &dy,
                            None,
                            &Matmul::new(1, n, m).accumulate(t.accumulate),
                        )?;
                    }
                }
            }
            Op::Rezero {
                x,
                f,
                alpha,
                alpha_index,
            } => {
                let (fb, ab) = (
                    self.slots[*f].buffer.clone(),
                    self.slots[*alpha].buffer.clone(),
                );
                let (dx_buffer, accumulate_dx) = self.target_or_discard(*x, n as usize);
                let df = self.target(*f);
                let df_buffer = match &df {
                    Some(t) if !t.accumulate => t.buffer.clone(),
                    _ => self.take_grad(n as usize),
                };
                let dalpha = self.target_zeroed_or_discard(*alpha, self.slots[*alpha].len)?;
                let scratch = self.scratch(rezero::REZERO_SCRATCH_LEN);
                rezero::rezero_backward(
                    gpu,
                    self.pass(),
                    &dx_buffer,
                    &df_buffer,
                    &dalpha,
                    &scratch,
                    &dy,
                    &fb,
                    &ab,
                    *alpha_index,
                    n,
                    accumulate_dx,
                )?;
                if let Some(t) = df.filter(|t| t.accumulate) {
                    ew::scale(gpu, self.pass(), &t.buffer, &df_buffer, 1.0, n, true)?;
                }
            }
            Op::Add { a, b } => {
                for input in [*a, *b] {
                    if let Some(t) = self.target(input) {
                        ew::scale(gpu, self.pass(), &t.buffer, &dy, 1.0, n, t.accumulate)?;
                    }
                }
            }
            Op::Scale { x, s } => {
                if let Some(t) = self.target(*x) {
                    ew::scale(gpu, self.pass(), &t.buffer, &dy, *s, n, t.accumulate)?;
                }
            }
            Op::Relu { x } => {
                let xb = self.slots[*x].buffer.clone();
                if let Some(t) = self.target(*x) {
                    ew::relu_backward(gpu, self.pass(), &t.buffer, &dy, &xb, n, t.accumulate)?;
                }
            }
            Op::Gelu { x } => {
                let xb = self.slots[*x].buffer.clone();
                if let Some(t) = self.target(*x) {
                    ew::gelu_backward(gpu, self.pass(), &t.buffer, &dy, &xb, n, t.accumulate)?;
                }
            }
            Op::LayerNorm {
                x,
                gain,
                bias,
                mean,
                rstd,
                rows,
                cols,
            } => {
                let (xb, gb) = (
                    self.slots[*x].buffer.clone(),
                    self.slots[*gain].buffer.clone(),
                );
                let (dx_buffer, accumulate_dx) = self.target_or_discard(*x, n as usize);
                let dgain = self.target_zeroed_or_discard(*gain, *cols as usize)?;
                let dbias = self.target_zeroed_or_discard(*bias, *cols as usize)?;
                let scratch = self.scratch(layernorm::layernorm_scratch_len(*rows, *cols));
                layernorm::layernorm_backward(
                    gpu,
                    self.pass(),
                    &dx_buffer,
                    &dgain,
                    &dbias,
                    &scratch,
                    &dy,
                    &xb,
                    mean,
                    rstd,
                    &gb,
                    *rows,
                    *cols,
                    accumulate_dx,
                )?;
            }
            Op::Softmax { x, rows, cols } => {
                let yb = self.slots[out].buffer.clone();
                if let Some(t) = self.target(*x) {
                    softmax::softmax_backward(
                        gpu,
                        self.pass(),
                        &t.buffer,
                        &yb,
                        &dy,
                        *rows,
                        *cols,
                        t.accumulate,
                    )?;
                }
            }
            Op::Embedding {
                table,
                order,
                offsets,
                tokens,
                dim,
                vocab,
            } => {
                if let Some(dtable) = self.target_zeroed(*table)? {
                    embedding::embedding_backward(
                        gpu,
                        self.pass(),
                        &dtable,
                        &dy,
                        order,
                        offsets,
                        *tokens,
                        *dim,
                        *vocab,
                    )?;
                }
            }
            Op::Attention {
                qkv,
                q,
                k,
                v,
                o,
                lse,
                batch,
                heads,
                shape,
            } => {
                if let Some(t) = self.target(*qkv) {
                    let dm = heads * shape.d;
                    let layout = |offset: u32, stride: u32| HeadLayout {
                        batch: *batch,
                        t: shape.t,
                        heads: *heads,
                        d: shape.d,
                        stride,
                        offset,
                    };
                    let n = (shape.bh * shape.t * shape.d) as usize;
                    let d_o = self.take_grad(n);
                    rows_to_heads(gpu, self.pass(), &d_o, &dy, &layout(0, dm))?;
                    let (dq, dk, dv, delta) = (
                        self.take_grad(n),
                        self.take_grad(n),
                        self.take_grad(n),
                        self.take_grad((shape.bh * shape.t) as usize),
                    );
                    attention_backward(
                        gpu,
                        self.pass(),
                        &dq,
                        &dk,
                        &dv,
                        &delta,
                        q,
                        k,
                        v,
                        o,
                        lse,
                        &d_o,
                        shape,
                    )?;
                    // The three parts fill disjoint columns of dqkv: together one full write.
                    for (part, offset) in [(&dq, 0), (&dk, dm), (&dv, 2 * dm)] {
                        heads_to_rows(
                            gpu,
                            self.pass(),
                            &t.buffer,
                            part,
                            &layout(offset, 3 * dm),
                            t.accumulate,
                        )?;
                    }
                }
            }
            Op::CrossEntropy { logits, dlogits } => {
                let upstream = terminal_seed("cross_entropy", out, seeded, seed)?;
                if let Some(t) = self.target(*logits) {
                    let len = self.slots[*logits].len as u32;
                    ew::scale(
                        gpu,
                        self.pass(),
                        &t.buffer,
                        dlogits,
                        upstream,
                        len,
                        t.accumulate,
                    )?;
                }
            }
            Op::Sum { x } => {
                let upstream = terminal_seed("sum", out, seeded, seed)?;
                if let Some(t) = self.target(*x) {
                    let len = self.slots[*x].len;
                    let filled = self.take_filled(len, upstream)?;
                    ew::scale(
                        gpu,
                        self.pass(),
                        &t.buffer,
                        &filled,
                        1.0,
                        len as u32,
                        t.accumulate,
                    )?;
                }
            }
            Op::Conv2d {
                x,
                w,
                bias,
                shape,
                variant,
            } => {
                let (xb, wb, v) = (
                    self.slots[*x].buffer.clone(),
                    self.slots[*w].buffer.clone(),
                    *variant,
                );
                if let Some(t) = self.target(*x) {
                    let (dx, acc) = (t.buffer, t.accumulate);
                    conv2d_backward_input(gpu, self.pass(), &dx, &dy, &wb, shape, v, acc)?;
                }
                if let Some(t) = self.target(*w) {
                    let scratch = self.scratch(conv2d::conv2d_weight_scratch_len(gpu, shape));
                    let (dw, acc) = (t.buffer, t.accumulate);
                    let pass = self.pass();
                    conv2d_backward_weight(gpu, pass, &dw, &scratch, &dy, &xb, shape, v, acc)?;
                }
                if let Some(t) = bias.and_then(|b| self.target(b)) {
                    let acc = t.accumulate;
                    conv2d::conv2d_backward_bias(gpu, self.pass(), &t.buffer, &dy, shape, acc)?;
                }
            }
            Op::BatchNorm {
                x,
                gamma,
                beta,
                mean,
                rstd,
                shape,
                config,
            } => {
                let (xb, gb) = (
                    self.slots[*x].buffer.clone(),
                    self.slots[*gamma].buffer.clone(),
                );
                let (dx_buffer, accumulate_dx) = self.target_or_discard(*x, n as usize);
                let channels = shape.channels as usize;
                let dgamma = self.target_zeroed_or_discard(*gamma, channels)?;
                let dbeta = self.target_zeroed_or_discard(*beta, channels)?;
                let scratch = self.scratch(batchnorm::batchnorm_scratch_len(gpu, shape, config));
                batchnorm::batchnorm_backward(
                    gpu,
                    self.pass(),
                    &dx_buffer,
                    &dgamma,
                    &dbeta,
                    &scratch,
                    &dy,
                    &xb,
                    mean,
                    rstd,
                    &gb,
                    shape,
                    config,
                    accumulate_dx,
                )?;
            }
            Op::Shortcut { x, shape } => {
                if let Some(t) = self.target(*x) {
                    let (dx, acc) = (t.buffer, t.accumulate);
                    shortcut_backward(gpu, self.pass(), &dx, &dy, shape, acc)?;
                }
            }
            Op::GlobalAvgPool { x, rows, pixels } => {
                if let Some(t) = self.target(*x) {
                    let (r, px, acc) = (*rows, *pixels, t.accumulate);
                    pool::global_avg_pool_backward(gpu, self.pass(), &t.buffer, &dy, r, px, acc)?;
                }
            }
        }
        Ok(())
    }

    /// The gradient destination of tensor `id`, or None if it needs no gradient.
    /// Parameters accumulate into their own buffer; an activation's first gradient is
    /// written into a fresh buffer, later ones (a second consumer) add to it.
    fn target(&mut self, id: usize) -> Option<Target> {
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
        let buffer = self.take_grad(slot.len);
        self.slots[id].grad = Some(buffer.clone());
        Some(Target {
            buffer,
            accumulate: false,
        })
    }

    /// `target`, or a throwaway buffer for kernels that always write this output:
    /// (buffer, accumulate).
    fn target_or_discard(&mut self, id: usize, len: usize) -> (wgpu::Buffer, bool) {
        match self.target(id) {
            Some(t) => (t.buffer, t.accumulate),
            None => (self.take_grad(len), false),
        }
    }

    /// `target_zeroed`, or a zeroed throwaway buffer for kernels that always add.
    fn target_zeroed_or_discard(&mut self, id: usize, len: usize) -> Result<wgpu::Buffer> {
        match self.target_zeroed(id)? {
            Some(buffer) => Ok(buffer),
            None => self.take_filled(len, 0.0),
        }
    }

    /// Like `target`, for kernels that can only add: a fresh buffer is zero-filled first.
    fn target_zeroed(&mut self, id: usize) -> Result<Option<wgpu::Buffer>> {
        match self.target(id) {
            Some(Target {
                buffer,
                accumulate: false,
            }) => {
                let gpu = self.gpu;
                let len = self.slots[id].len as u32;
                ew::fill(gpu, self.pass(), &buffer, 0.0, len)?;
                Ok(Some(buffer))
            }
            Some(t) => Ok(Some(t.buffer)),
            None => Ok(None),
        }
    }
}

/// The host-known upstream gradient of an op that must end the graph (a loss).
fn terminal_seed(op: &str, out: usize, seeded: usize, seed: &[f32]) -> Result<f32> {
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
