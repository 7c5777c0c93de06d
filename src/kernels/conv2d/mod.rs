//! Launchers for `shaders/conv2d.wgsl`: 2D convolution over NCHW images as an implicit
//! GEMM (forward, backward to the input, backward to the weights in two stages, backward
//! to the bias) tiled or register-blocked, and the direct-loop forward kept as the simple
//! variant. The shape and its checks live in `shape.rs`.

mod shape;

pub use shape::Conv2d;

use super::{check_len, elements, grid_stride};
use crate::gpu::{Error, Gpu, Kernel, Result, Shader};

pub(crate) const SHADER: Shader = Shader {
    name: "conv2d",
    wgsl: include_str!("../../../shaders/conv2d.wgsl"),
};

/// Reduction depth of one workgroup-memory slab (the shader's `BK`).
const BK: u32 = 16;

impl Conv2d {
    fn params(&self, m: u32, n: u32, k: u32) -> Params {
        Params {
            batch: self.batch,
            c_in: self.c_in,
            h: self.h,
            w: self.w,
            c_out: self.c_out,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            pad: self.pad,
            oh: self.out_h(),
            ow: self.out_w(),
            m,
            n,
            k,
            k_split: k,
            splits: 1,
            ..Default::default()
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    has_bias: u32,
    accumulate: u32,
    m: u32,
    n: u32,
    k: u32,
    k_split: u32,
    splits: u32,
    _pad: [u32; 2],
}

/// Which kernel runs a convolution pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvVariant {
    /// One invocation per output, a plain loop over the window (the reference; forward
    /// only, the backward passes run `Gemm`).
    Direct,
    /// The implicit GEMM tiled in workgroup memory.
    Gemm,
    /// 8 channels × 4 pixels per invocation straight from storage, no workgroup memory.
    Reg,
    /// Per device and pass, from measurements (BENCHMARKS.md, "Convolution"): `Reg` on
    /// CPU adapters (2-13× `Gemm` on lavapipe); on GPUs `Gemm`, except `Reg` for the
    /// backward to the input at stride > 1, which skips the taps that miss (1.3-1.5× on an
    /// H200, where `Gemm` beats `Reg` by up to 2.3× elsewhere).
    Auto,
}

/// The three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

impl ConvVariant {
    /// The concrete variants (what `Auto` chooses from).
    pub const ALL: [ConvVariant; 3] = [ConvVariant::Direct, ConvVariant::Gemm, ConvVariant::Reg];

    pub fn name(&self) -> &'static str {
        match self {
            ConvVariant::Direct => "direct",
            ConvVariant::Gemm => "gemm",
            ConvVariant::Reg => "reg8x4",
            ConvVariant::Auto => "auto",
        }
    }

    /// The concrete kernel this variant runs for `pass` of `shape` on `gpu`.
    pub fn resolve(self, gpu: &Gpu, pass: ConvPass, shape: &Conv2d) -> ConvVariant {
        self.resolve_for(gpu.is_software(), pass, shape.stride)
    }

    fn resolve_for(self, software: bool, pass: ConvPass, stride: u32) -> ConvVariant {
        match self {
            ConvVariant::Auto if software => ConvVariant::Reg,
            ConvVariant::Auto if pass == ConvPass::BackwardInput && stride > 1 => ConvVariant::Reg,
            ConvVariant::Auto => ConvVariant::Gemm,
            ConvVariant::Direct if pass != ConvPass::Forward => ConvVariant::Gemm,
            concrete => concrete,
        }
    }
}

/// Invocations of a register-blocked kernel for GEMM rows `m` and columns `n`, laid out
/// in workgroups of 64.
fn reg_groups(gpu: &Gpu, m: u32, n: u32) -> [u32; 3] {
    let invocations = m.div_ceil(8) as u64 * n.div_ceil(4) as u64;
    crate::gpu::grid_1d(
        invocations.div_ceil(64),
        gpu.limits().max_compute_workgroups_per_dimension,
    )
}

/// Rows of the GEMM tile: the smallest of 16, 32, 64 that covers `m` (ResNet channels).
fn tile_rows(m: u32) -> u32 {
    match m {
        0..=16 => 16,
        17..=32 => 32,
        _ => 64,
    }
}

const TILE_COLS: u32 = 64;

/// Override constants of the implicit-GEMM kernel for `mode` and tile rows `bm`, after
/// checking the tile's workgroup memory against the device.
fn gemm_constants(gpu: &Gpu, mode: u32, bm: u32) -> Result<[(&'static str, f64); 4]> {
    let storage = (bm + TILE_COLS) as u64 * BK as u64 * 4;
    gpu.check_workgroup("conv2d gemm", storage, (bm / 4) * (TILE_COLS / 4))?;
    Ok([
        ("MODE", mode as f64),
        ("BM", bm as f64),
        ("BN", TILE_COLS as f64),
        ("BK", BK as f64),
    ])
}

fn gemm_kernel<'a>(constants: &'a [(&'static str, f64)]) -> Kernel<'a> {
    Kernel {
        shader: SHADER,
        entry: "conv2d_gemm",
        constants,
    }
}

/// y (+)= conv(x, w) (+ bias). y: [batch, c_out, oh, ow]; x: [batch, c_in, h, w];
/// w: [c_out, c_in, kh, kw]; bias: [c_out].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    shape: &Conv2d,
    variant: ConvVariant,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "conv2d_forward";
    shape.check_buffers(OP, Some(("x", x)), Some(("y", y)), Some(("w", w)))?;
    if let Some(b) = bias {
        check_len(OP, "bias: [c_out]", b, shape.c_out as u64)?;
    }
    let (m, n, k) = shape.forward_gemm();
    let mut params = shape.params(m, n, k);
    params.has_bias = bias.is_some() as u32;
    params.accumulate = accumulate as u32;
    let buffers = [y, w, x, bias.unwrap_or(w)];
    match variant.resolve(gpu, ConvPass::Forward, shape) {
        ConvVariant::Direct => gpu.dispatch(
            pass,
            &Kernel::new(SHADER, "conv2d_direct"),
            &params,
            &buffers,
            grid_stride(shape.output_len() as u64),
        ),
        ConvVariant::Gemm => {
            let bm = tile_rows(m);
            let constants = gemm_constants(gpu, 0, bm)?;
            let kernel = gemm_kernel(&constants);
            let groups = [n.div_ceil(TILE_COLS), m.div_ceil(bm), 1];
            gpu.dispatch(pass, &kernel, &params, &buffers, groups)
        }
        ConvVariant::Auto => unreachable!("resolve returns a concrete variant"),
        ConvVariant::Reg => gpu.dispatch(
            pass,
            &Kernel::new(SHADER, "conv2d_forward_reg"),
            &params,
            &buffers,
            reg_groups(gpu, m, n),
        ),
    }
}

/// dx (+)= ∂L/∂x given dy. dx: [batch, c_in, h, w]; dy: [batch, c_out, oh, ow];
/// w: [c_out, c_in, kh, kw].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_input(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    dx: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    w: &wgpu::Buffer,
    shape: &Conv2d,
    variant: ConvVariant,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "conv2d_backward_input";
    shape.check_buffers(OP, Some(("dx", dx)), Some(("dy", dy)), Some(("w", w)))?;
    let (m, n, k) = shape.backward_input_gemm();
    elements(OP, &[n])?;
    let mut params = shape.params(m, n, k);
    params.accumulate = accumulate as u32;
    if variant.resolve(gpu, ConvPass::BackwardInput, shape) == ConvVariant::Reg {
        let kernel = Kernel::new(SHADER, "conv2d_backward_input_reg");
        // 8 channels × 4 same-remainder pixels of a row per invocation (see the shader).
        let s = shape.stride;
        let chunks = shape.w.div_ceil(s).div_ceil(4) as u64;
        let col_blocks = shape.batch as u64 * shape.h as u64 * s as u64 * chunks;
        let invocations = m.div_ceil(8) as u64 * col_blocks;
        if invocations > u32::MAX as u64 {
            return Err(Error::Limits {
                what: format!("{OP}: invocations addressable by a u32 index"),
                needed: invocations,
                limit: u32::MAX as u64,
            });
        }
        let groups = crate::gpu::grid_1d(
            invocations.div_ceil(64),
            gpu.limits().max_compute_workgroups_per_dimension,
        );
        return gpu.dispatch(pass, &kernel, &params, &[dx, w, dy], groups);
    }
    let bm = tile_rows(m);
    let constants = gemm_constants(gpu, 1, bm)?;
    let kernel = gemm_kernel(&constants);
    let groups = [n.div_ceil(TILE_COLS), m.div_ceil(bm), 1];
    gpu.dispatch(pass, &kernel, &params, &[dx, w, dy, w], groups)
}

/// How the backward-to-weight reduction (length batch·oh·ow) is split over workgroups for
/// `variant`: (splits, reduction length per split, a multiple of the slab depth).
fn weight_splits(gpu: &Gpu, shape: &Conv2d, variant: ConvVariant) -> (u32, u32) {
    let (m, n, k) = shape.backward_weight_gemm();
    // Enough parallel work to fill the device; a CPU adapter wants little and long.
    let (parallel, wanted) = if variant == ConvVariant::Reg {
        let blocks = m.div_ceil(8) * n.div_ceil(4);
        (blocks, if gpu.is_software() { 512 } else { 65536 })
    } else {
        let tiles = n.div_ceil(TILE_COLS) * m.div_ceil(tile_rows(m));
        (tiles, if gpu.is_software() { 8 } else { 512 })
    };
    let most = k.div_ceil(4 * BK).max(1);
    let splits = (wanted as u32).div_ceil(parallel).clamp(1, most);
    let per_split = k.div_ceil(splits).div_ceil(BK) * BK;
    (k.div_ceil(per_split), per_split)
}

/// Length (f32 elements) of the scratch buffer `conv2d_backward_weight` needs on `gpu`
/// (enough for every variant).
pub fn conv2d_weight_scratch_len(gpu: &Gpu, shape: &Conv2d) -> usize {
    let splits = [ConvVariant::Gemm, ConvVariant::Reg]
        .map(|v| weight_splits(gpu, shape, v).0)
        .into_iter()
        .max()
        .unwrap_or(1);
    splits as usize * shape.weight_len()
}

/// dw (+)= ∂L/∂w given dy, through `scratch` (see [`conv2d_weight_scratch_len`]); `Direct`
/// runs the `Gemm` kernel.
/// dw: [c_out, c_in, kh, kw]; dy: [batch, c_out, oh, ow]; x: [batch, c_in, h, w].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    dw: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    shape: &Conv2d,
    variant: ConvVariant,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "conv2d_backward_weight";
    shape.check_buffers(OP, Some(("x", x)), Some(("dy", dy)), Some(("dw", dw)))?;
    let scratch_len = conv2d_weight_scratch_len(gpu, shape);
    check_len(OP, "scratch", scratch, scratch_len as u64)?;
    let (m, n, k) = shape.backward_weight_gemm();
    let variant = variant.resolve(gpu, ConvPass::BackwardWeight, shape);
    let (splits, per_split) = weight_splits(gpu, shape, variant);
    let mut params = shape.params(m, n, k);
    params.k_split = per_split;
    params.splits = splits;
    params.accumulate = accumulate as u32;
    if variant == ConvVariant::Reg {
        let blocks = m.div_ceil(8) * n.div_ceil(4);
        let kernel = Kernel::new(SHADER, "conv2d_backward_weight_reg");
        let groups = [blocks.div_ceil(64), splits, 1];
        gpu.dispatch(pass, &kernel, &params, &[scratch, dy, x], groups)?;
    } else {
        let bm = tile_rows(m);
        let constants = gemm_constants(gpu, 2, bm)?;
        let kernel = gemm_kernel(&constants);
        let groups = [n.div_ceil(TILE_COLS), m.div_ceil(bm), splits];
        gpu.dispatch(pass, &kernel, &params, &[scratch, dy, x, dy], groups)?;
    }
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, "conv2d_weight_finish"),
        &params,
        &[dw, scratch],
        grid_stride(shape.weight_len() as u64),
    )
}

/// db (+)= Σ over images and pixels of dy. db: [c_out]; dy: [batch, c_out, oh, ow].
pub fn conv2d_backward_bias(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    db: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    shape: &Conv2d,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "conv2d_backward_bias";
    shape.check_buffers(OP, None, Some(("dy", dy)), None)?;
    check_len(OP, "db: [c_out]", db, shape.c_out as u64)?;
    let (m, n, k) = shape.forward_gemm();
    let mut params = shape.params(m, n, k);
    params.accumulate = accumulate as u32;
    let constants = [("WG", gpu.row_workgroup_size() as f64)];
    let kernel = Kernel {
        shader: SHADER,
        entry: "conv2d_bias_backward",
        constants: &constants,
    };
    gpu.dispatch(pass, &kernel, &params, &[db, dy], [shape.c_out, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::{ConvPass::*, ConvVariant::*};

    #[test]
    fn auto_follows_the_measurements() {
        for pass in [Forward, BackwardInput, BackwardWeight] {
            assert_eq!(
                Auto.resolve_for(true, pass, 1),
                Reg,
                "CPU adapters: {pass:?}"
            );
            assert_eq!(
                Gemm.resolve_for(true, pass, 2),
                Gemm,
                "a concrete choice stays"
            );
        }
        assert_eq!(Auto.resolve_for(false, Forward, 2), Gemm);
        assert_eq!(Auto.resolve_for(false, BackwardWeight, 2), Gemm);
        assert_eq!(Auto.resolve_for(false, BackwardInput, 1), Gemm);
        assert_eq!(Auto.resolve_for(false, BackwardInput, 2), Reg);
        assert_eq!(Direct.resolve_for(false, Forward, 1), Direct);
        assert_eq!(Direct.resolve_for(false, BackwardWeight, 1), Gemm);
    }
}
