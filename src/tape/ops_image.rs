//! The image ops of the tape (NCHW tensors): convolution, batch normalisation and global
//! average pooling. Like `ops.rs`, each checks shapes, records its kernels and, when
//! gradients are wanted, the `Op` that backward replays.

use crate::gpu::{Error, Result};
use crate::kernels::batchnorm::{self as bn, BatchNormConfig, BatchNormShape};
use crate::kernels::conv2d::{Conv2d, ConvVariant, conv2d_forward};
use crate::kernels::pool;
use crate::kernels::shortcut::{ShortcutShape, shortcut_forward};

use super::ops::{dim_u32, f32_parameter, shape_error};
use super::tape::{Op, Tape};
use super::tensor::Tensor;

/// The kernels the tape's convolutions run: chosen per device and pass.
pub(super) const CONV_VARIANT: ConvVariant = ConvVariant::Auto;

/// The running statistics a batch norm keeps between steps (updated in training mode,
/// used in eval mode). running_mean, running_var: [channels]
pub struct RunningStats<'a> {
    pub mean: &'a wgpu::Buffer,
    pub var: &'a wgpu::Buffer,
}

fn nchw(op: &'static str, x: &Tensor) -> Result<[u32; 4]> {
    match x.shape[..] {
        [n, c, h, w] => Ok([
            dim_u32(op, n)?,
            dim_u32(op, c)?,
            dim_u32(op, h)?,
            dim_u32(op, w)?,
        ]),
        _ => Err(shape_error(
            op,
            "an NCHW tensor [batch, channels, h, w]",
            &[x],
        )),
    }
}

impl<'g> Tape<'g> {
    /// 2D convolution: x [batch, c_in, h, w], w [c_out, c_in, kh, kw], bias [c_out]
    /// → [batch, c_out, oh, ow], zero padding `pad` on every side.
    pub fn conv2d(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        stride: u32,
        pad: u32,
    ) -> Result<Tensor> {
        const OP: &str = "tape conv2d";
        let [batch, c_in, h, wd] = nchw(OP, x)?;
        let [c_out, wc, kh, kw] = nchw(OP, w)?;
        if wc != c_in || bias.is_some_and(|b| b.len() != c_out as usize) {
            let mut got = vec![x, w];
            got.extend(bias);
            return Err(shape_error(
                OP,
                format!("weights [c_out, {c_in}, kh, kw] and a bias [c_out]"),
                &got,
            ));
        }
        let shape = Conv2d {
            batch,
            c_in,
            h,
            w: wd,
            c_out,
            kh,
            kw,
            stride,
            pad,
            dtype: self.dtype,
        };
        shape.validate(OP)?;
        let grad = self.requires_grad(x)
            || self.requires_grad(w)
            || bias.is_some_and(|b| self.requires_grad(b));
        let out_shape = [batch, c_out, shape.out_h(), shape.out_w()].map(|d| d as usize);
        // f16 products read f16 copies of the f32 filters and bias (`operand`).
        let [xb, wb] = [self.operand(x)?, self.operand(w)?];
        let bias_buffer = bias.map(|b| self.operand(b)).transpose()?;
        let out = self.output(&out_shape, grad);
        let gpu = self.gpu;
        conv2d_forward(
            gpu,
            self.pass(),
            &out.buffer,
            &xb,
            &wb,
            bias_buffer.as_ref(),
            &shape,
            CONV_VARIANT,
            false,
        )?;
        let op = Op::Conv2d {
            x: x.id,
            w: w.id,
            bias: bias.map(|b| b.id),
            shape,
            variant: CONV_VARIANT,
        };
        self.record_op(&out, op);
        Ok(out)
    }

    /// Batch normalisation of x [batch, channels, h, w] per channel, with gamma and beta
    /// [channels]. Training mode normalises with the batch statistics and updates
    /// `running`; eval mode normalises with `running` and has no backward (disable
    /// gradients for it).
    pub fn batchnorm(
        &mut self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        running: &RunningStats,
        training: bool,
        config: &BatchNormConfig,
    ) -> Result<Tensor> {
        const OP: &str = "tape batchnorm";
        let [batch, channels, h, w] = nchw(OP, x)?;
        if gamma.len() != channels as usize || beta.len() != channels as usize {
            return Err(shape_error(
                OP,
                format!("gamma and beta of {channels} elements"),
                &[x, gamma, beta],
            ));
        }
        f32_parameter(OP, gamma)?;
        f32_parameter(OP, beta)?;
        let shape = BatchNormShape {
            batch,
            channels,
            pixels: dim_u32(OP, h as usize * w as usize)?,
            dtype: self.dtype,
        };
        let grad = self.requires_grad(x) || self.requires_grad(gamma) || self.requires_grad(beta);
        if !training && grad && self.grad_enabled() {
            return Err(Error::Invalid {
                what: OP.into(),
                why: "eval mode has no backward; disable gradients (Tape::set_grad_enabled)".into(),
            });
        }
        let xb = self.operand(x)?;
        let out = self.output(&x.shape, grad);
        let gpu = self.gpu;
        if !training {
            bn::batchnorm_eval_forward(
                gpu,
                self.pass(),
                &out.buffer,
                &xb,
                running.mean,
                running.var,
                &gamma.buffer,
                &beta.buffer,
                &shape,
                config,
            )?;
            return Ok(out);
        }
        let (mean, rstd) = (self.take(channels as usize), self.take(channels as usize));
        let scratch = self.scratch(bn::batchnorm_scratch_len(gpu, &shape, config));
        bn::batchnorm_train_forward(
            gpu,
            self.pass(),
            &out.buffer,
            &mean,
            &rstd,
            running.mean,
            running.var,
            &scratch,
            &xb,
            &gamma.buffer,
            &beta.buffer,
            &shape,
            config,
        )?;
        let op = Op::BatchNorm {
            x: x.id,
            gamma: gamma.id,
            beta: beta.id,
            mean,
            rstd,
            shape,
            config: *config,
        };
        self.record_op(&out, op);
        Ok(out)
    }

    /// Mean over the pixels of each (image, channel): [batch, channels, h, w] → [batch, channels].
    pub fn global_avg_pool(&mut self, x: &Tensor) -> Result<Tensor> {
        const OP: &str = "tape global_avg_pool";
        let [batch, channels, h, w] = nchw(OP, x)?;
        let rows = dim_u32(OP, batch as usize * channels as usize)?;
        let pixels = dim_u32(OP, h as usize * w as usize)?;
        let xb = self.operand(x)?;
        let out = self.output(&[batch as usize, channels as usize], self.requires_grad(x));
        let (gpu, dtype) = (self.gpu, self.dtype);
        let y = &out.buffer;
        pool::global_avg_pool_forward(gpu, self.pass(), y, &xb, rows, pixels, dtype)?;
        self.record_op(
            &out,
            Op::GlobalAvgPool {
                x: x.id,
                rows,
                pixels,
            },
        );
        Ok(out)
    }

    /// The zero-padded identity shortcut: x [batch, c_in, h, w] subsampled by `stride` and
    /// padded with zero channels to [batch, c_out, ⌈h/stride⌉, ⌈w/stride⌉].
    pub fn shortcut(&mut self, x: &Tensor, c_out: usize, stride: u32) -> Result<Tensor> {
        const OP: &str = "tape shortcut";
        let [batch, c_in, h, w] = nchw(OP, x)?;
        let shape = ShortcutShape {
            batch,
            c_in,
            c_out: dim_u32(OP, c_out)?,
            h,
            w,
            stride,
            dtype: self.dtype,
        };
        let out_shape = [batch, shape.c_out, shape.out_h(), shape.out_w()].map(|d| d as usize);
        let xb = self.operand(x)?;
        let out = self.output(&out_shape, self.requires_grad(x));
        let gpu = self.gpu;
        shortcut_forward(gpu, self.pass(), &out.buffer, &xb, &shape)?;
        self.record_op(&out, Op::Shortcut { x: x.id, shape });
        Ok(out)
    }
}
