//! The forward ops of the tape: each checks shapes, records its kernels into the step's
//! pass and, when gradients are wanted, the `Op` that backward replays.

use crate::gpu::{Error, Result};
use crate::kernels::attention::{AttentionShape, attention_forward};
use crate::kernels::bias::Activation;
use crate::kernels::matmul::{Matmul, matmul, matmul_activation};
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

/// The descriptor of op(a)·op(b) (+ bias), after checking that the shapes agree.
fn matmul_shape(
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    bias: Option<&Tensor>,
) -> Result<Matmul> {
    const OP: &str = "tape matmul";
    if a.shape.len() != 2 || b.shape.len() != 2 {
        return Err(shape_error(OP, "two 2D tensors", &[a, b]));
    }
    let (m, k) = if trans_a {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (k2, n) = if trans_b {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != k2 {
        return Err(shape_error(
            OP,
            format!("inner dimensions to agree (trans_a {trans_a}, trans_b {trans_b})"),
            &[a, b],
        ));
    }
    if let Some(bias) = bias {
        if bias.len() != n {
            return Err(shape_error(OP, format!("a bias of {n} elements"), &[bias]));
        }
    }
    Ok(
        Matmul::new(dim_u32(OP, m)?, dim_u32(OP, n)?, dim_u32(OP, k)?)
            .trans_a(trans_a)
            .trans_b(trans_b),
    )
}

/// Uploads u32 data (ids, targets) into a pool buffer of the step.
fn upload_u32(tape: &mut Tape, data: &[u32]) -> wgpu::Buffer {
    let buffer = tape.take(data.len());
    tape.gpu
        .queue
        .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
    buffer
}

impl<'g> Tape<'g> {
    /// C = op(A)·op(B) (+ bias): A [m, k] ([k, m] when `trans_a`), B [k, n] ([n, k] when
    /// `trans_b`), bias [n]; C [m, n].
    pub fn matmul(
        &mut self,
        a: &Tensor,
        b: &Tensor,
        trans_a: bool,
        trans_b: bool,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let desc = matmul_shape(a, b, trans_a, trans_b, bias)?;
        let grad = self.requires_grad(a)
            || self.requires_grad(b)
            || bias.is_some_and(|t| self.requires_grad(t));
        let out = self.output(&[desc.m as usize, desc.n as usize], grad);
        let gpu = self.gpu;
        let bias_buffer = bias.map(|t| &t.buffer);
        matmul(
            gpu,
            self.pass(),
            &out.buffer,
            &a.buffer,
            &b.buffer,
            bias_buffer,
            &desc,
        )?;
        let (a, b, bias) = (a.id, b.id, bias.map(|t| t.id));
        self.record_op(&out, Op::Matmul { a, b, bias, desc });
        Ok(out)
    }

    /// A linear layer: y[rows, out] = x[rows, in] · Wᵀ (+ b), W stored [out, in].
    pub fn linear(&mut self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        self.matmul(x, w, false, true, b)
    }

    /// A linear layer and its activation in one kernel: act(x·Wᵀ + b), x [rows, in], W
    /// stored [out, in], b [out]. The pre-activation is kept, and the backward writes its
    /// gradient and the bias's in one kernel too (`kernels::bias`). The same values as
    /// `linear` then `relu` or `gelu`, with two dispatches fewer.
    pub fn linear_activation(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        activation: Activation,
    ) -> Result<Tensor> {
        let desc = matmul_shape(x, w, false, true, Some(b))?;
        let grad = self.requires_grad(x) || self.requires_grad(w) || self.requires_grad(b);
        let shape = [desc.m as usize, desc.n as usize];
        let pre = self.output(&shape, grad);
        let out = self.output(&shape, grad);
        let gpu = self.gpu;
        let (o, p) = (&out.buffer, &pre.buffer);
        let bias = Some(&b.buffer);
        matmul_activation(
            gpu,
            self.pass(),
            o,
            p,
            &x.buffer,
            &w.buffer,
            bias,
            activation,
            &desc,
        )?;
        // The backward sees two ops: the product with its bias left out, and the bias with
        // the activation (whose backward hands the product its gradient).
        let (a, b, bias) = (x.id, w.id, b.id);
        self.record_op(
            &pre,
            Op::Matmul {
                a,
                b,
                bias: None,
                desc,
            },
        );
        let x = pre.id;
        self.record_op(
            &out,
            Op::BiasActivation {
                x,
                bias,
                activation,
            },
        );
        Ok(out)
    }

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
        let grad = self.requires_grad(x) || self.requires_grad(f) || self.requires_grad(alpha);
        let out = self.output(&x.shape, grad);
        let gpu = self.gpu;
        rezero::rezero_forward(
            gpu,
            self.pass(),
            &out.buffer,
            &x.buffer,
            &f.buffer,
            &alpha.buffer,
            alpha_index,
            dim_u32("tape rezero", x.len())?,
        )?;
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
        let out = self.output(&a.shape, grad);
        let gpu = self.gpu;
        ew::add(
            gpu,
            self.pass(),
            &out.buffer,
            &a.buffer,
            &b.buffer,
            dim_u32("tape add", a.len())?,
            false,
        )?;
        self.record_op(&out, Op::Add { a: a.id, b: b.id });
        Ok(out)
    }

    /// s·x.
    pub fn scale(&mut self, x: &Tensor, s: f32) -> Result<Tensor> {
        let out = self.output(&x.shape, self.requires_grad(x));
        let gpu = self.gpu;
        ew::scale(
            gpu,
            self.pass(),
            &out.buffer,
            &x.buffer,
            s,
            dim_u32("tape scale", x.len())?,
            false,
        )?;
        self.record_op(&out, Op::Scale { x: x.id, s });
        Ok(out)
    }

    /// max(x, 0).
    pub fn relu(&mut self, x: &Tensor) -> Result<Tensor> {
        let out = self.output(&x.shape, self.requires_grad(x));
        let gpu = self.gpu;
        ew::relu(
            gpu,
            self.pass(),
            &out.buffer,
            &x.buffer,
            dim_u32("tape relu", x.len())?,
        )?;
        self.record_op(&out, Op::Relu { x: x.id });
        Ok(out)
    }

    /// GELU, tanh form.
    pub fn gelu(&mut self, x: &Tensor) -> Result<Tensor> {
        let out = self.output(&x.shape, self.requires_grad(x));
        let gpu = self.gpu;
        ew::gelu(
            gpu,
            self.pass(),
            &out.buffer,
            &x.buffer,
            dim_u32("tape gelu", x.len())?,
        )?;
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
        let grad = self.requires_grad(x) || self.requires_grad(gain) || self.requires_grad(bias);
        let out = self.output(&x.shape, grad);
        let (mean, rstd) = (self.take(rows), self.take(rows));
        let gpu = self.gpu;
        let (r, c) = (
            dim_u32("tape layernorm", rows)?,
            dim_u32("tape layernorm", cols)?,
        );
        layernorm::layernorm_forward(
            gpu,
            self.pass(),
            &out.buffer,
            &mean,
            &rstd,
            &x.buffer,
            &gain.buffer,
            &bias.buffer,
            layernorm::LayerNormShape { rows: r, cols: c },
            eps,
        )?;
        self.record_op(
            &out,
            Op::LayerNorm {
                x: x.id,
                gain: gain.id,
                bias: bias.id,
                mean,
                rstd,
                shape: crate::kernels::layernorm::LayerNormShape { rows: r, cols: c },
            },
        );
        Ok(out)
    }

    /// Softmax over the last dimension.
    pub fn softmax(&mut self, x: &Tensor) -> Result<Tensor> {
        let out = self.output(&x.shape, self.requires_grad(x));
        let gpu = self.gpu;
        let (rows, cols) = (
            dim_u32("tape softmax", x.rows())?,
            dim_u32("tape softmax", x.cols())?,
        );
        softmax::softmax_forward(gpu, self.pass(), &out.buffer, &x.buffer, rows, cols)?;
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
        let out = self.output(&[ids.len(), dim as usize], self.requires_grad(table));
        let gids = upload_u32(self, ids);
        let gpu = self.gpu;
        embedding::embedding_forward(
            gpu,
            self.pass(),
            &out.buffer,
            &table.buffer,
            &gids,
            tokens,
            dim,
            vocab,
            false,
        )?;
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
                    shape: crate::kernels::embedding::EmbeddingShape { tokens, dim, vocab },
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
        let out = self.output(&[1], self.requires_grad(logits));
        let (dlogits, row_loss) = (self.take(logits.len()), self.take(rows));
        let gtargets = upload_u32(self, targets);
        let gpu = self.gpu;
        let (r, c) = (dim_u32(OP, rows)?, dim_u32(OP, cols)?);
        cross_entropy::cross_entropy(
            gpu,
            self.pass(),
            &out.buffer,
            &dlogits,
            &row_loss,
            &logits.buffer,
            &gtargets,
            r,
            c,
        )?;
        self.record_op(
            &out,
            Op::CrossEntropy {
                logits: logits.id,
                dlogits,
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
        .ok_or_else(|| shape_error(OP, "batch × heads within u32", &[qkv]))?;
        let lse = self.take(batch * heads * t);
        let out = self.output(&[rows, heads * d], self.requires_grad(qkv));
        let gpu = self.gpu;
        let q = &qkv.buffer; // q, k and v: columns of the packed rows
        attention_forward(gpu, self.pass(), &out.buffer, &lse, q, q, q, &shape)?;
        self.record_op(
            &out,
            Op::Attention {
                qkv: qkv.id,
                o: out.buffer.clone(),
                lse,
                shape,
            },
        );
        Ok(out)
    }

    /// Σ x: a [1] tensor. Must be the last op before backward.
    pub fn sum(&mut self, x: &Tensor) -> Result<Tensor> {
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
