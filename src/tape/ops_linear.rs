//! The tape's linear ops: the matrix product, the linear layer, and the linear layer with
//! its activation in one kernel (the activation in the product's store).

use crate::gpu::Result;
use crate::kernels::bias::Activation;
use crate::kernels::matmul::{Matmul, matmul, matmul_activation};

use super::ops::{dim_u32, shape_error};
use super::tape::{Op, Tape};
use super::tensor::Tensor;

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
        let desc = desc.dtypes(self.dtype, self.dtype);
        let [ab, bb] = [self.operand(a)?, self.operand(b)?];
        let bias_buffer = bias.map(|t| self.operand(t)).transpose()?;
        let out = self.output(&[desc.m as usize, desc.n as usize], grad);
        let gpu = self.gpu;
        let (c, bias_buffer) = (&out.buffer, bias_buffer.as_ref());
        matmul(gpu, self.pass(), c, &ab, &bb, bias_buffer, &desc)?;
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
        let desc = matmul_shape(x, w, false, true, Some(b))?.dtypes(self.dtype, self.dtype);
        let grad = self.requires_grad(x) || self.requires_grad(w) || self.requires_grad(b);
        let [xb, wb, bb] = [self.operand(x)?, self.operand(w)?, self.operand(b)?];
        let shape = [desc.m as usize, desc.n as usize];
        let pre = self.output(&shape, grad);
        let out = self.output(&shape, grad);
        let gpu = self.gpu;
        let (o, p, bias) = (&out.buffer, &pre.buffer, Some(&bb));
        matmul_activation(gpu, self.pass(), o, p, &xb, &wb, bias, activation, &desc)?;
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
