//! The backward rules too long for an arm of the `match` in `backward.rs`: matmul, the
//! bias with its activation, the ReZero residual, the normalisations, attention and
//! convolution. Each takes the output's gradient `dy` and the op's saved inputs, and writes
//! every input's gradient through `target` (the tape's one accumulation rule).

use crate::gpu::Result;
use crate::kernels::Dtype;
use crate::kernels::attention::attention_backward;
use crate::kernels::batchnorm;
use crate::kernels::bias::{self, BiasShape};
use crate::kernels::conv2d::{
    self, Conv2d, ConvVariant, conv2d_backward_input, conv2d_backward_weight,
};
use crate::kernels::layernorm::{self, LayerNormShape};
use crate::kernels::matmul::{Matmul, matmul};
use crate::kernels::rezero::{self, RezeroShape};
use crate::kernels::shortcut::shortcut_backward;
use crate::kernels::{Grad, NormSaved, pool};

use super::tape::{Op, Tape};

impl Tape<'_> {
    /// C = Â·B̂ (+ bias), where Â, B̂ are A, B or their transposes as `desc` says.
    pub(super) fn matmul_backward(
        &mut self,
        dy: &wgpu::Buffer,
        [a, b]: [usize; 2],
        bias: Option<usize>,
        desc: &Matmul,
    ) -> Result<()> {
        let gpu = self.gpu;
        let (ab, bb) = (self.operand_of(a), self.operand_of(b));
        let (m, n, k, ta, tb) = (desc.m, desc.n, desc.k, desc.trans_a, desc.trans_b);
        // f16 products: operands of the activations' type; each gradient written as its
        // own (f32 for a parameter).
        let dtype = desc.operands; // of dC (the output's type) and of the operands, alike
        let (da_type, db_type) = (self.grad_dtype(a), self.grad_dtype(b));
        self.with_target(a, |tape, da| {
            // dÂ = dC·B̂ᵀ; stored transposed: dAᵀ = B̂·dCᵀ
            let (x, y, d) = if ta {
                (&bb, dy, Matmul::new(k, m, n).trans_a(tb).trans_b(true))
            } else {
                (dy, &bb, Matmul::new(m, k, n).trans_b(!tb))
            };
            let d = d.accumulate(da.accumulate).dtypes(dtype, da_type);
            matmul(gpu, tape.pass(), da.buffer, x, y, None, &d).map(drop)
        })?;
        self.with_target(b, |tape, db| {
            // dB̂ = Âᵀ·dC; stored transposed: dBᵀ = dCᵀ·Â
            let (x, y, d) = if tb {
                (dy, &ab, Matmul::new(n, k, m).trans_a(true).trans_b(ta))
            } else {
                (&ab, dy, Matmul::new(k, n, m).trans_a(!ta))
            };
            let d = d.accumulate(db.accumulate).dtypes(dtype, db_type);
            matmul(gpu, tape.pass(), db.buffer, x, y, None, &d).map(drop)
        })?;
        let Some(bias) = bias else {
            return Ok(());
        };
        let shape = BiasShape {
            rows: m,
            cols: n,
            dtype,
        };
        // The bias gradient kernel writes f32 (a parameter's gradient).
        self.same_grad_type("bias backward", bias, Dtype::F32)?;
        let scratch = self.bias_scratch(shape);
        self.with_target(bias, |tape, dbias| {
            bias::bias_backward(gpu, tape.pass(), dbias, scratch.as_ref(), dy, shape)
        })
    }

    /// out = act(x), x = product + bias: dx and dbias in one kernel (dx is handed on to
    /// the product's backward).
    pub(super) fn bias_activation_backward(&mut self, dy: &wgpu::Buffer, op: &Op) -> Result<()> {
        let &Op::BiasActivation {
            x,
            bias,
            activation,
        } = op
        else {
            unreachable!("called for bias-activation ops only")
        };
        let gpu = self.gpu;
        let cols = self.slots[bias].len;
        let dtype = self.slots[x].dtype;
        let shape = BiasShape {
            rows: (self.slots[x].len / cols) as u32,
            cols: cols as u32,
            dtype,
        };
        self.same_grad_type("bias activation backward", x, dtype)?;
        self.same_grad_type("bias activation backward", bias, Dtype::F32)?;
        let pre = self.slots[x].buffer.clone();
        let dx = self.target_or_discard(x, self.slots[x].len);
        let dbias = self.target_or_discard(bias, cols);
        let scratch = self.bias_scratch(shape);
        let (dx, db, s) = (dx.grad(), dbias.grad(), scratch.as_ref());
        bias::bias_activation_backward(gpu, self.pass(), dx, db, s, dy, &pre, activation, shape)
    }

    /// The shared scratch when the bias gradient of `shape` takes two passes.
    fn bias_scratch(&mut self, shape: BiasShape) -> Option<wgpu::Buffer> {
        let len = shape.scratch_len();
        (len > 0).then(|| self.scratch(len))
    }

    /// y = x + α·f with α = alpha[alpha_index]: dx, df and dα in one kernel.
    pub(super) fn rezero_backward(
        &mut self,
        (dy, dtype): (&wgpu::Buffer, Dtype),
        [x, f, alpha]: [usize; 3],
        alpha_index: u32,
    ) -> Result<()> {
        const OP: &str = "rezero backward";
        self.same_grad_type(OP, x, dtype)?;
        self.same_grad_type(OP, f, dtype)?;
        let gpu = self.gpu;
        let n = self.slots[f].len;
        let (fb, ab) = (self.operand_of(f), self.slots[alpha].buffer.clone());
        let dx = self.target_or_discard(x, n);
        let df = self.target_or_discard(f, n);
        let dalpha = self.target_or_discard(alpha, self.slots[alpha].len);
        let scratch = self.scratch(rezero::REZERO_SCRATCH_LEN);
        let shape = RezeroShape {
            n: n as u32,
            alpha_index,
            dtype,
        };
        let (dx, df, da) = (dx.grad(), df.grad(), dalpha.grad());
        rezero::rezero_backward(gpu, self.pass(), dx, df, da, &scratch, dy, &fb, &ab, shape)
    }

    /// LayerNorm over rows with gain and bias, from the mean and rstd it saved.
    pub(super) fn layernorm_backward(
        &mut self,
        dy: &wgpu::Buffer,
        [x, gain, bias]: [usize; 3],
        (mean, rstd): (&wgpu::Buffer, &wgpu::Buffer),
        shape: LayerNormShape,
    ) -> Result<()> {
        self.same_grad_type("layernorm backward", x, shape.dtype)?;
        let gpu = self.gpu;
        let (xb, gb) = (self.operand_of(x), self.slots[gain].buffer.clone());
        let dx = self.target_or_discard(x, self.slots[x].len);
        let dgain = self.target_or_discard(gain, shape.cols as usize);
        let dbias = self.target_or_discard(bias, shape.cols as usize);
        let scratch = self.scratch(layernorm::layernorm_scratch_len(shape.rows, shape.cols));
        let saved = NormSaved {
            x: &xb,
            mean,
            rstd,
            gain: &gb,
        };
        let (dx, dg, db) = (dx.grad(), dgain.grad(), dbias.grad());
        layernorm::layernorm_backward(gpu, self.pass(), dx, dg, db, &scratch, dy, saved, shape)
    }

    /// Fused causal attention over the packed q, k, v columns of `qkv`: dq, dk and dv
    /// written in place into the columns of dqkv.
    pub(super) fn attention_backward(
        &mut self,
        (dy, dy_type): (&wgpu::Buffer, Dtype),
        op: &Op,
    ) -> Result<()> {
        let Op::Attention { qkv, o, lse, shape } = op else {
            unreachable!("called for attention ops only")
        };
        // q, k, v, o, dO and dqkv all of the tape's type (the kernels compute in f32).
        self.same_grad_type("attention backward", *qkv, shape.dtype)?;
        debug_assert_eq!(dy_type, shape.dtype);
        let q = self.operand_of(*qkv);
        let gpu = self.gpu;
        self.with_target(*qkv, |tape, dqkv| {
            let delta = tape.take_grad((shape.bh * shape.t) as usize);
            let inputs = [&q, &q, &q, o, lse, dy];
            attention_backward(gpu, tape.pass(), [dqkv; 3], &delta, inputs, shape)
        })
    }

    /// The image ops (`ops_image.rs`): convolution, batch norm, the downsampling shortcut and
    /// global average pooling; `dy` holds the output's gradient, of `dtype` (the tape's).
    pub(super) fn image_backward(
        &mut self,
        (dy, dtype): (&wgpu::Buffer, Dtype),
        op: &Op,
    ) -> Result<()> {
        let gpu = self.gpu;
        match op {
            Op::Conv2d {
                x,
                w,
                bias,
                shape,
                variant,
            } => self.conv2d_backward(dy, [*x, *w], *bias, shape, *variant),
            Op::BatchNorm { .. } => self.batchnorm_backward(dy, op),
            Op::Shortcut { x, shape } => {
                self.same_grad_type("shortcut backward", *x, shape.dtype)?;
                self.with_target(*x, |tape, dx| {
                    shortcut_backward(gpu, tape.pass(), dx.buffer, dy, shape, dx.accumulate)
                })
            }
            Op::GlobalAvgPool { x, rows, pixels } => {
                self.same_grad_type("global_avg_pool backward", *x, dtype)?;
                self.with_target(*x, |tape, dx| {
                    let (pass, acc, shape) = (tape.pass(), dx.accumulate, (*rows, *pixels));
                    pool::global_avg_pool_backward(
                        gpu, pass, dx.buffer, dy, shape.0, shape.1, acc, dtype,
                    )
                })
            }
            _ => unreachable!("called for image ops only"),
        }
    }

    /// A 2D convolution: to its input, its weight and its bias.
    pub(super) fn conv2d_backward(
        &mut self,
        dy: &wgpu::Buffer,
        [x, w]: [usize; 2],
        bias: Option<usize>,
        shape: &Conv2d,
        variant: ConvVariant,
    ) -> Result<()> {
        self.same_grad_type("conv2d backward", x, shape.dtype)?;
        let gpu = self.gpu;
        let (xb, wb) = (self.operand_of(x), self.operand_of(w));
        self.with_target(x, |tape, dx| {
            let (pass, acc) = (tape.pass(), dx.accumulate);
            conv2d_backward_input(gpu, pass, dx.buffer, dy, &wb, shape, variant, acc)
        })?;
        let scratch = self.scratch(conv2d::conv2d_weight_scratch_len(gpu, shape));
        self.with_target(w, |tape, dw| {
            let (pass, acc) = (tape.pass(), dw.accumulate);
            conv2d_backward_weight(gpu, pass, dw.buffer, &scratch, dy, &xb, shape, variant, acc)
        })?;
        match bias {
            Some(b) => self.with_target(b, |tape, db: Grad| {
                let (pass, acc) = (tape.pass(), db.accumulate);
                conv2d::conv2d_backward_bias(gpu, pass, db.buffer, dy, shape, acc)
            }),
            None => Ok(()),
        }
    }

    /// Training-mode BatchNorm, from the batch mean and rstd it saved.
    pub(super) fn batchnorm_backward(&mut self, dy: &wgpu::Buffer, op: &Op) -> Result<()> {
        let Op::BatchNorm {
            x,
            gamma,
            beta,
            mean,
            rstd,
            shape,
            config,
        } = op
        else {
            unreachable!("called for batchnorm ops only")
        };
        self.same_grad_type("batchnorm backward", *x, shape.dtype)?;
        let gpu = self.gpu;
        let (xb, gb) = (self.operand_of(*x), self.slots[*gamma].buffer.clone());
        let channels = shape.channels as usize;
        let dx = self.target_or_discard(*x, self.slots[*x].len);
        let dgamma = self.target_or_discard(*gamma, channels);
        let dbeta = self.target_or_discard(*beta, channels);
        let scratch = self.scratch(batchnorm::batchnorm_scratch_len(gpu, shape, config));
        let saved = NormSaved {
            x: &xb,
            mean,
            rstd,
            gain: &gb,
        };
        let (dx, dg, db) = (dx.grad(), dgamma.grad(), dbeta.grad());
        let pass = self.pass();
        batchnorm::batchnorm_backward(gpu, pass, dx, dg, db, &scratch, dy, saved, shape, config)
    }
}
