//! The shape of a convolution: its dimensions, output size, tensor lengths, FLOPs, the GEMM
//! dimensions of each pass, and the checks every launcher runs before dispatch.

use crate::gpu::{Error, Result};
use crate::kernels::precision::check_len_of;
use crate::kernels::{Dtype, check_nonempty, elements};

/// The shape of one convolution: `batch` images of `c_in` × `h` × `w` (NCHW), `c_out`
/// filters of `c_in` × `kh` × `kw`, zero padding `pad` on every side, step `stride`.
///
/// ```
/// use rezero::kernels::conv2d::Conv2d;
/// // The second stage of a CIFAR ResNet entered with a stride-2 3×3 convolution.
/// let conv = Conv2d::new(128, 16, 32, 32, 32, 3).stride(2).pad(1);
/// assert_eq!((conv.out_h(), conv.out_w()), (16, 16));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub batch: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    /// Element type of the images, filters, outputs and their gradients (f16 needs
    /// `SHADER_F16`); the weight and bias gradients are f32 either way.
    pub dtype: Dtype,
}

impl Conv2d {
    /// A square `kernel` × `kernel` convolution with stride 1 and no padding.
    pub fn new(batch: u32, c_in: u32, h: u32, w: u32, c_out: u32, kernel: u32) -> Conv2d {
        Conv2d {
            batch,
            c_in,
            h,
            w,
            c_out,
            kh: kernel,
            kw: kernel,
            stride: 1,
            pad: 0,
            dtype: Dtype::F32,
        }
    }

    /// Images, filters, outputs and their gradients of `dtype` (sums f32 either way).
    pub fn dtype(mut self, dtype: Dtype) -> Conv2d {
        self.dtype = dtype;
        self
    }

    pub fn stride(mut self, stride: u32) -> Conv2d {
        self.stride = stride;
        self
    }

    pub fn pad(mut self, pad: u32) -> Conv2d {
        self.pad = pad;
        self
    }

    /// Output height: ⌊(h + 2·pad − kh) / stride⌋ + 1 (0 if the window does not fit).
    pub fn out_h(&self) -> u32 {
        out_extent(self.h, self.kh, self.stride, self.pad)
    }

    pub fn out_w(&self) -> u32 {
        out_extent(self.w, self.kw, self.stride, self.pad)
    }

    /// Elements of the input x: [batch, c_in, h, w].
    pub fn input_len(&self) -> usize {
        self.batch as usize * self.c_in as usize * self.h as usize * self.w as usize
    }

    /// Elements of the output y: [batch, c_out, out_h, out_w].
    pub fn output_len(&self) -> usize {
        self.batch as usize * self.c_out as usize * self.out_h() as usize * self.out_w() as usize
    }

    /// Elements of the weights: [c_out, c_in, kh, kw].
    pub fn weight_len(&self) -> usize {
        self.c_out as usize * self.c_in as usize * self.kh as usize * self.kw as usize
    }

    /// Multiply-adds of the forward pass, times two (each backward costs the same).
    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64 * (self.c_in * self.kh * self.kw) as f64
    }

    /// Errors unless every dimension is positive, the window fits the padded image and
    /// every tensor is addressable with a u32 index.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        check_nonempty(
            op,
            &[
                ("batch", self.batch),
                ("c_in", self.c_in),
                ("h", self.h),
                ("w", self.w),
                ("c_out", self.c_out),
                ("kh", self.kh),
                ("kw", self.kw),
                ("stride", self.stride),
            ],
        )?;
        if self.out_h() == 0 || self.out_w() == 0 {
            return Err(Error::Shape {
                op,
                expected: format!(
                    "a {}×{} kernel that fits the {}×{} image padded by {}",
                    self.kh, self.kw, self.h, self.w, self.pad
                ),
                got: "no output pixel".into(),
            });
        }
        elements(op, &[self.batch, self.c_in, self.h, self.w])?;
        elements(op, &[self.batch, self.c_out, self.out_h(), self.out_w()])?;
        elements(op, &[self.c_out, self.c_in, self.kh, self.kw])?;
        Ok(())
    }

    /// Validates the shape, then errors unless each given buffer holds its tensor: an
    /// image-side tensor (x or dx: [batch, c_in, h, w]), an output-side one (y or dy:
    /// [batch, c_out, oh, ow]), both of the shape's dtype, and a filter-side one (w, of the
    /// shape's dtype, or dw, f32: [c_out, c_in, kh, kw]); names label the error.
    pub(super) fn check_buffers(
        &self,
        op: &'static str,
        image: Option<(&str, &wgpu::Buffer)>,
        output: Option<(&str, &wgpu::Buffer)>,
        filter: Option<(&str, &wgpu::Buffer, Dtype)>,
    ) -> Result<()> {
        self.validate(op)?;
        let filter_dtype = filter.map_or(self.dtype, |f| f.2);
        let filter = filter.map(|(name, buffer, _)| (name, buffer));
        let sides = [
            (image, "[batch, c_in, h, w]", self.input_len(), self.dtype),
            (
                output,
                "[batch, c_out, oh, ow]",
                self.output_len(),
                self.dtype,
            ),
            (
                filter,
                "[c_out, c_in, kh, kw]",
                self.weight_len(),
                filter_dtype,
            ),
        ];
        for (given, shape, len, dtype) in sides {
            if let Some((name, buffer)) = given {
                check_len_of(op, &format!("{name}: {shape}"), buffer, len as u64, dtype)?;
            }
        }
        Ok(())
    }

    /// (m, n, k) of the forward GEMM: [c_out, batch·oh·ow] = [c_out, c_in·kh·kw] · [.., ..].
    pub fn forward_gemm(&self) -> (u32, u32, u32) {
        (
            self.c_out,
            self.batch * self.out_h() * self.out_w(),
            self.c_in * self.kh * self.kw,
        )
    }

    /// (m, n, k) of the backward-to-input GEMM.
    pub fn backward_input_gemm(&self) -> (u32, u32, u32) {
        (
            self.c_in,
            self.batch * self.h * self.w,
            self.c_out * self.kh * self.kw,
        )
    }

    /// (m, n, k) of the backward-to-weight GEMM.
    pub fn backward_weight_gemm(&self) -> (u32, u32, u32) {
        (
            self.c_out,
            self.c_in * self.kh * self.kw,
            self.batch * self.out_h() * self.out_w(),
        )
    }
}

fn out_extent(size: u32, kernel: u32, stride: u32, pad: u32) -> u32 {
    let padded = size as u64 + 2 * pad as u64;
    if stride == 0 || padded < kernel as u64 {
        return 0;
    }
    ((padded - kernel as u64) / stride as u64 + 1) as u32
}
