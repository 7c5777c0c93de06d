//! The forward ops of the tape: each checks shapes, records its kernels into the step's
//! pass and, when gradients are wanted, the `Op` that backward replays.

use crate::gpu::{Error, Result};
use crate::kernels::Dtype;
use crate::kernels::attention::{AttentionShape, attention_forward};
use crate::kernels::{
    cross_entropy, elementwise as ew, embedding, layernorm, reduce, rezero, softmax,
};

use super::tape::{Op, Tape};
use super::tensor::Tensor;

pub(super) fn shape_error(op: &'static str, expected: impl Into<String>, got: &[&Tensor]) -> Error {
    let got = got
        .iter()
        .map(|t| format!("{:?}", t.shape))
        .collect::<Vec<_>>()
        .join(" and ");
    Error::Shape {
        op,
        expected: expected.into(),
        got,
    }
}

pub(super) fn dim_u32(op: &'static str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Limits {
        what: format!("{op}: dimension"),
        needed: value as u64,
        limit: u32::MAX as u64,
    })
}

/// Uploads u32 data (ids, targets) into a pool buffer of the step.
/// Errors unless `t` is f32: a parameter the kernels read as it is (α, a norm's gain).
pub(super) fn f32_parameter(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype != Dtype::F32 {
        return Err(shape_error(op, "an f32 parameter", &[t]));
    }
    Ok(())
}

fn upload_u32(tape: &mut Tape, data: &[u32]) -> wgpu::Buffer {
    let buffer = tape.take(data.len());
    tape.gpu
        .queue
        .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
    buffer
}

impl<'g> Tape<'g> {
    /// The ReZero residual y = x + α·f with α = alphas[index]: one tensor may hold the α of
    /// every block (one optimizer dispatch, one readback for all of them).
    pub fn rezero(
        &mut self,
        x: &Tensor,
        f: &Tensor,
        alphas: &Tensor,
        index: usize,
    ) -> Result<Tensor> {
        let alpha = alphas;
        if x.shape != f.shape || index >= alpha.len() {
            return Err(shape_error(
                "tape rezero",
                format!("x and f of one shape and more than {index} α values"),
                &[x, f, alpha],
            ));
        }
        let alpha_index = dim_u32("tape rezero", index)?;
        f32_parameter("tape rezero", alpha)?;
        let grad = self.requires_grad(x) || self.requires_grad(f) || self.requires_grad(alpha);
        let (xb, fb) = (self.operand(x)?, self.operand(f)?);
        let out = self.output(&x.shape, grad);
        let gpu = self.gpu;
        let shape = rezero::RezeroShape {
            n: dim_u32("tape rezero", x.len())?,
            alpha_index,
            dtype: self.dtype,
        };
        let (y, ab) = (&out.buffer, &alpha.buffer);
        rezero::rezero_forward(gpu, self.pass(), y, &xb, &fb, ab, shape)?;
        self.record_op(
            &out,
            Op::Rezero {
                x: x.id,
                f: f.id,
                alpha: alpha.id,
                alpha_index,
            },
        );
        Ok(out)
    }

    /// a + b, same shape.
    pub fn add(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if a.shape != b.shape {
            return Err(shape_error("tape add", "two tensors of one shape", &[a, b]));
        }
        let grad = self.requires_grad(a) || self.requires_grad(b);
        let (ab, bb) = (self.operand(a)?, self.operand(b)?);
        let out = self.output(&a.shape, grad);
        let (gpu, n, dtype) = (self.gpu, dim_u32("tape add", a.len())?, self.dtype);
        ew::add(gpu, self.pass(), &out.buffer, &ab, &bb, n, false, dtype)?;
        self.record_op(&out, Op::Add { a: a.id, b: b.id });
        Ok(out)
    }

    /// s·x.
    pub fn scale(&mut self, x: &Tensor, s: f32) -> Result<Tensor> {
        let xb = self.operand(x)?;
        let out = self.output(&x.shape, self.requires_grad(x));
        let (gpu, n, dtype) = (self.gpu, dim_u32("tape scale", x.len())?, self.dtype);
        ew::scale(gpu, self.pass(), &out.buffer, &xb, s, n, false, dtype)?;
        self.record_op(&out, Op::Scale { x: x.id, s });
        Ok(out)
    }

    /// max(x, 0).
    pub fn relu(&mut self, x: &Tensor) -> Result<Tensor> {
        let xb = self.operand(x)?;
        let out = self.output(&x.shape, self.requires_grad(x));
        let (gpu, n, dtype) = (self.gpu, dim_u32("tape relu", x.len())?, self.dtype);
        ew::relu(gpu, self.pass(), &out.buffer, &xb, n, dtype)?;
        self.record_op(&out, Op::Relu { x: x.id });
        Ok(out)
    }

    /// GELU, tanh form.
    pub fn gelu(&mut self, x: &Tensor) -> Result<Tensor> {
        let xb = self.operand(x)?;
        let out = self.output(&x.shape, self.requires_grad(x));
        let (gpu, n, dtype) = (self.gpu, dim_u32("tape gelu", x.len())?, self.dtype);
        ew::gelu(gpu, self.pass(), &out.buffer, &xb, n, dtype)?;
        self.record_op(&out, Op::Gelu { x: x.id });
        Ok(out)
    }

    /// LayerNorm over the last dimension with gain and bias [cols].
    pub fn layernorm(
        &mut self,
        x: &Tensor,
        gain: &Tensor,
        bias: &Tensor,
        eps: f32,
    ) -> Result<Tensor> {
        let (rows, cols) = (x.rows(), x.cols());
        if gain.len() != cols || bias.len() != cols {
            return Err(shape_error(
                "tape layernorm",
                format!("gain and bias of {cols} elements"),
                &[x, gain, bias],
            ));
        }
        f32_parameter("tape layernorm", gain)?;
        f32_parameter("tape layernorm", bias)?;
        let grad = self.requires_grad(x) || self.requires_grad(gain) || self.requires_grad(bias);
        let xb = self.operand(x)?;
        let out = self.output(&x.shape, grad);
        let (mean, rstd) = (self.take(rows), self.take(rows));
        let gpu = self.gpu;
        let shape = layernorm::LayerNormShape {
            rows: dim_u32("tape layernorm", rows)?,
            cols: dim_u32("tape layernorm", cols)?,
            dtype: self.dtype,
        };
        let (y, g, b) = (&out.buffer, &gain.buffer, &bias.buffer);
        layernorm::layernorm_forward(gpu, self.pass(), y, &mean, &rstd, &xb, g, b, shape, eps)?;
        self.record_op(
            &out,
            Op::LayerNorm {
                x: x.id,
                gain: gain.id,
                bias: bias.id,
                mean,
                rstd,
                shape,
            },
        );
        Ok(out)
    }

    /// Softmax over the last dimension.
    pub fn softmax(&mut self, x: &Tensor) -> Result<Tensor> {
        let xb = self.operand(x)?;
        let out = self.output(&x.shape, self.requires_grad(x));
        let gpu = self.gpu;
        let (rows, cols) = (
            dim_u32("tape softmax", x.rows())?,
            dim_u32("tape softmax", x.cols())?,
        );
        let dtype = self.dtype;
        softmax::softmax_forward(gpu, self.pass(), &out.buffer, &xb, rows, cols, dtype)?;
        self.record_op(
            &out,
            Op::Softmax {
                x: x.id,
                rows,
                cols,
            },
        );
        Ok(out)
    }

    /// Rows of `table` [vocab, dim] picked by `ids`: [ids.len(), dim].
    pub fn embedding(&mut self, table: &Tensor, ids: &[u32]) -> Result<Tensor> {
        const OP: &str = "tape embedding";
        if table.shape.len() != 2 || ids.is_empty() {
            return Err(shape_error(
                OP,
                "a [vocab, dim] table and at least one id",
                &[table],
            ));
        }
        let (vocab, dim) = (dim_u32(OP, table.shape[0])?, dim_u32(OP, table.shape[1])?);
        let tokens = dim_u32(OP, ids.len())?;
        let groups = embedding::IdGroups::new(ids, vocab)?;
        f32_parameter(OP, table)?;
        let out = self.output(&[ids.len(), dim as usize], self.requires_grad(table));
        let gids = upload_u32(self, ids);
        let gpu = self.gpu;
        let shape = embedding::EmbeddingShape {
            dtype: self.dtype,
            ..embedding::EmbeddingShape::new(tokens, dim, vocab)
        };
        let (rows, table_buffer) = (&out.buffer, &table.buffer);
        embedding::embedding_forward(gpu, self.pass(), rows, table_buffer, &gids, shape, false)?;
        if self.grad_enabled() && self.requires_grad(table) {
            let (order, offsets) = (
                upload_u32(self, &groups.order),
                upload_u32(self, &groups.offsets),
            );
            self.record_op(
                &out,
                Op::Embedding {
                    table: table.id,
                    order,
                    offsets,
                    shape,
                },
            );
        }
        Ok(out)
    }

    /// Mean cross-entropy of `logits` [rows, classes] against `targets` [rows]: a [1]
    /// loss. A target ≥ classes marks a row to ignore. Must be the last op before backward.
    pub fn cross_entropy(&mut self, logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
        const OP: &str = "tape cross_entropy";
        let (rows, cols) = (logits.rows(), logits.cols());
        if targets.len() != rows {
            return Err(Error::Shape {
                op: OP,
                expected: format!("{rows} targets, one per row of logits {:?}", logits.shape),
                got: format!("{}", targets.len()),
            });
        }
        // The loss is f32 whatever the logits; their gradient has their type, and carries
        // the loss scale when one is set.
        let logits_buffer = self.operand(logits)?;
        let out = self.output_as(&[1], self.requires_grad(logits), Dtype::F32);
        let dtype = self.dtype;
        let (dlogits, row_loss) = (self.take_as(logits.len(), dtype), self.take(rows));
        let gtargets = upload_u32(self, targets);
        let (gpu, scale) = (self.gpu, self.loss_scale.clone());
        let (r, c) = (dim_u32(OP, rows)?, dim_u32(OP, cols)?);
        let (loss, lb) = (&out.buffer, &logits_buffer);
        cross_entropy::cross_entropy(
            gpu,
            self.pass(),
            loss,
            &dlogits,
            &row_loss,
            lb,
            &gtargets,
            r,
            c,
            dtype,
            scale.as_ref(),
        )?;
        self.record_op(
            &out,
            Op::CrossEntropy {
                logits: logits.id,
                dlogits,
                dtype,
            },
        );
        Ok(out)
    }

    /// Causal multi-head self-attention (the fused kernel) of `qkv` [batch·t, 3·heads·d]:
    /// each row holds a position's query, key and value, heads side by side. Returns
    /// [batch·t, heads·d], the heads side by side again.
    pub fn causal_attention(&mut self, qkv: &Tensor, batch: usize, heads: usize) -> Result<Tensor> {
        const OP: &str = "tape causal_attention";
        let (rows, cols) = (qkv.rows(), qkv.cols());
        if qkv.shape.len() != 2
            || batch == 0
            || heads == 0
            || rows % batch != 0
            || cols % (3 * heads) != 0
        {
            return Err(shape_error(
                OP,
                format!("[batch·t, 3·heads·d] with batch {batch} and {heads} heads"),
                &[qkv],
            ));
        }
        let (t, d) = (rows / batch, cols / (3 * heads));
        let shape = AttentionShape::packed(
            dim_u32(OP, batch)?,
            dim_u32(OP, heads)?,
            dim_u32(OP, t)?,
            dim_u32(OP, d)?,
        )
        .ok_or_else(|| shape_error(OP, "batch × heads within u32", &[qkv]))?
        .dtype(self.dtype);
        let q = self.operand(qkv)?; // q, k and v: columns of the packed rows
        let lse = self.take(batch * heads * t);
        let out = self.output(&[rows, heads * d], self.requires_grad(qkv));
        let gpu = self.gpu;
        attention_forward(gpu, self.pass(), &out.buffer, &lse, &q, &q, &q, &shape)?;
        let o = out.buffer.clone();
        let qkv = qkv.id;
        self.record_op(&out, Op::Attention { qkv, o, lse, shape });
        Ok(out)
    }

    /// Σ x: a [1] tensor. Must be the last op before backward.
    pub fn sum(&mut self, x: &Tensor) -> Result<Tensor> {
        self.require_f32("tape sum")?;
        let out = self.output(&[1], self.requires_grad(x));
        let scratch = self.scratch(reduce::REDUCE_SCRATCH_LEN);
        let gpu = self.gpu;
        reduce::sum_all(
            gpu,
            self.pass(),
            &out.buffer,
            &scratch,
            &x.buffer,
            dim_u32("tape sum", x.len())?,
            false,
            false,
        )?;
        self.record_op(&out, Op::Sum { x: x.id });
        Ok(out)
    }
}
