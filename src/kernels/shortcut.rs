//! Launchers for `shaders/shortcut.wgsl`: the zero-padded identity shortcut of a
//! downsampling ResNet block (subsample by the stride, append zero channels) and its
//! backward, on f32 or f16 activations (`ShortcutShape::dtype`).

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result};

use super::precision::{check_len_of, require};
use super::{Dtype, Typed, check_nonempty, elements, grid_stride};

pub(crate) const SHADERS: Typed = super::typed!("shortcut", Params, "grid.wgsl", "shortcut.wgsl");

/// Images [batch, c_in, h, w] in, [batch, c_out, ⌈h/stride⌉, ⌈w/stride⌉] out, of `dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortcutShape {
    pub batch: u32,
    pub c_in: u32,
    pub c_out: u32,
    pub h: u32,
    pub w: u32,
    pub stride: u32,
    /// The type of x, y, dy and dx.
    pub dtype: Dtype,
}

impl ShortcutShape {
    pub fn out_h(&self) -> u32 {
        self.h.div_ceil(self.stride.max(1))
    }

    pub fn out_w(&self) -> u32 {
        self.w.div_ceil(self.stride.max(1))
    }

    pub fn input_len(&self) -> usize {
        [self.batch, self.c_in, self.h, self.w]
            .iter()
            .map(|&d| d as usize)
            .product()
    }

    pub fn output_len(&self) -> usize {
        [self.batch, self.c_out, self.out_h(), self.out_w()]
            .iter()
            .map(|&d| d as usize)
            .product()
    }

    fn check(
        &self,
        op: &'static str,
        gpu: &Gpu,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<()> {
        require(gpu, op, self.dtype)?;
        check_nonempty(
            op,
            &[
                ("batch", self.batch),
                ("c_in", self.c_in),
                ("h", self.h),
                ("w", self.w),
                ("stride", self.stride),
            ],
        )?;
        if self.c_out < self.c_in {
            return Err(Error::Shape {
                op,
                expected: format!("at least the {} input channels out", self.c_in),
                got: format!("{} output channels", self.c_out),
            });
        }
        elements(op, &[self.batch, self.c_out, self.h, self.w])?;
        let (dtype, out_len) = (self.dtype, self.output_len() as u64);
        check_len_of(
            op,
            "[batch, c_in, h, w]",
            input,
            self.input_len() as u64,
            dtype,
        )?;
        check_len_of(op, "[batch, c_out, oh, ow]", output, out_len, dtype)
    }

    fn params(&self, accumulate: bool) -> Params {
        Params {
            batch: self.batch,
            c_in: self.c_in,
            c_out: self.c_out,
            stride: self.stride,
            h: self.h,
            w: self.w,
            oh: self.out_h(),
            ow: self.out_w(),
            accumulate: accumulate as u32,
            ..Default::default()
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    c_in: u32,
    c_out: u32,
    stride: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    accumulate: u32,
    _pad: [u32; 3],
}

/// y[n, c, i, j] = x[n, c, i·stride, j·stride] for c < c_in, 0 for the added channels.
pub fn shortcut_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    shape: &ShortcutShape,
) -> Result<()> {
    shape.check("shortcut_forward", gpu, x, y)?;
    gpu.dispatch(
        pass,
        &Kernel::new(SHADERS.get(shape.dtype), "shortcut_forward"),
        &shape.params(false),
        &[y, x],
        grid_stride(shape.output_len() as u64),
    )
}

/// dx (+)= dy at the sampled pixels of the first c_in channels, 0 elsewhere.
pub fn shortcut_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    shape: &ShortcutShape,
    accumulate: bool,
) -> Result<()> {
    shape.check("shortcut_backward", gpu, dx, dy)?;
    gpu.dispatch(
        pass,
        &Kernel::new(SHADERS.get(shape.dtype), "shortcut_backward"),
        &shape.params(accumulate),
        &[dx, dy],
        grid_stride(shape.input_len() as u64),
    )
}
