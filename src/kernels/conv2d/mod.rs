//! Launchers for the convolution shaders: `shaders/conv2d.wgsl` (the blocked implicit
//! GEMM on the tile prelude for the three passes, the direct-loop forward, the split-K
//! finish and the bias gradient) and `shaders/conv2d_reg.wgsl` (register-blocked kernels
//! for software Vulkan), both after `shaders/conv2d_common.wgsl`. The shape and its checks
//! live in `shape.rs`, `Auto`'s choice in `tune.rs`.

mod modules;
mod shape;
mod tune;

pub(crate) use modules::{ALL as SHADERS, SHADER};
pub use shape::Conv2d;
pub use tune::{GPU_BLOCKS, candidates, default_variant, measure_candidates, tuning_key};

use super::matmul::Block;
use super::precision::{check_len_of, require};
use super::{Dtype, check_len, elements, grid_stride};
use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Shader, Work};

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

impl Params {
    /// Multiply-adds × 2 of the convolution, the same for each of its passes (the GEMM
    /// dimensions of the backward to the input count every tap, skipped or not).
    fn flops(&self) -> f64 {
        let outputs = self.batch as f64 * self.c_out as f64 * self.oh as f64 * self.ow as f64;
        2.0 * outputs * (self.c_in * self.kh * self.kw) as f64
    }
}

/// Which kernel runs a convolution pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvVariant {
    /// One invocation per output, a plain loop over the window (the reference; forward
    /// only, the backward passes run `Blocked` with [`ConvVariant::SIMPLE_BLOCK`]).
    Direct,
    /// The implicit GEMM on the tile prelude: a TM×TN register block per invocation over
    /// double-buffered workgroup slabs (what GPUs want).
    Blocked(Block),
    /// 8 channels × 4 pixels per invocation straight from storage, no workgroup memory
    /// (what software Vulkan wants).
    Reg,
    /// The tuning table's choice for the pass and shape class (measured by an explicit
    /// tune, `tune.rs`), or a fixed default for the adapter's kind.
    Auto,
}

/// The three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    Forward,
    BackwardInput,
    BackwardWeight,
}

impl ConvPass {
    pub fn name(self) -> &'static str {
        match self {
            ConvPass::Forward => "fwd",
            ConvPass::BackwardInput => "bwd_input",
            ConvPass::BackwardWeight => "bwd_weight",
        }
    }
}

impl ConvVariant {
    /// The block `Direct` falls back to for the backward passes: the tiled kernel of
    /// earlier versions (4×4 per invocation, 64×64 tiles) with double buffering.
    pub const SIMPLE_BLOCK: Block = Block::new(64, 64, 16, 4, 4);

    /// `direct`, `reg8x4`, `auto` or `blocked:BMxBNxBK:TMxTN`.
    pub fn name(&self) -> String {
        match self {
            ConvVariant::Direct => "direct".into(),
            ConvVariant::Reg => "reg8x4".into(),
            ConvVariant::Auto => "auto".into(),
            ConvVariant::Blocked(block) => format!("blocked:{block}"),
        }
    }

    /// The concrete kernel this variant runs for `pass` of `shape` on `gpu` (`Auto`: the
    /// tuning table's choice, or the default for the adapter; nothing is measured).
    pub fn resolve(self, gpu: &Gpu, pass: ConvPass, shape: &Conv2d) -> Result<ConvVariant> {
        match self {
            ConvVariant::Auto => Ok(tune::pick(gpu, pass, shape)),
            ConvVariant::Direct if pass != ConvPass::Forward => {
                Ok(ConvVariant::Blocked(Self::SIMPLE_BLOCK))
            }
            concrete => Ok(concrete),
        }
    }
}

impl std::str::FromStr for ConvVariant {
    type Err = Error;
    /// Parses [`ConvVariant::name`]; plain `blocked` is [`Block::LARGE`].
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "direct" => Ok(ConvVariant::Direct),
            "reg8x4" => Ok(ConvVariant::Reg),
            "auto" => Ok(ConvVariant::Auto),
            _ => match s.parse::<super::matmul::MatmulVariant>() {
                Ok(super::matmul::MatmulVariant::Blocked(block)) => Ok(ConvVariant::Blocked(block)),
                _ => Err(Error::Invalid {
                    what: "conv2d variant".into(),
                    why: format!(
                        "'{s}' is not one of direct, reg8x4, auto, blocked, blocked:BMxBNxBK:TMxTN"
                    ),
                }),
            },
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

/// Records the blocked kernel of `module` for `mode` (0 forward, 1 backward input, 2
/// backward weight) over `groups`, binding `out`, `a`, `b`, `bias` and the vec4 views of
/// `a` (of `dtype`) and `out` (of `dtype`, f32 in mode 2).
#[allow(clippy::too_many_arguments)]
fn dispatch_blocked(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    params: &Params,
    (module, dtype): (Shader, Dtype),
    block: Block,
    mode: u32,
    (vec4_a, vec4_out): (bool, bool),
    [out, a, b, bias]: [&wgpu::Buffer; 4],
    groups: [u32; 3],
) -> Result<()> {
    block.check(gpu)?;
    let mut constants = vec![
        ("MODE", mode as f64),
        ("VEC4", vec4_a as u8 as f64),
        ("VEC4_OUT", vec4_out as u8 as f64),
    ];
    constants.extend(block.constants());
    let kernel =
        Kernel::with(module, "conv2d_blocked", &constants).work(Work::Flops(params.flops()));
    // The output is bound once: as scalars, or as vec4s with VEC4_OUT (WebGPU refuses a
    // writable buffer bound twice).
    let (out_scalar, out_vec4) = gpu.scalar_or_vec4_output(out, vec4_out, 1);
    let buffers = [
        (1, out_scalar),
        (2, a),
        (3, b),
        (4, bias),
        (5, gpu.vec4_view_or_placeholder(a, 0, 4 * dtype.bytes())),
        (6, out_vec4),
    ];
    gpu.dispatch_bound(pass, &kernel, params, &buffers, groups)
}

/// y (+)= conv(x, w) (+ bias). y: [batch, c_out, oh, ow]; x: [batch, c_in, h, w];
/// w: [c_out, c_in, kh, kw]; bias: [c_out].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    y: &wgpu::Buffer,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    shape: &Conv2d,
    variant: ConvVariant,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "conv2d_forward";
    let dtype = shape.dtype;
    require(gpu, OP, dtype)?;
    shape.check_buffers(OP, Some(("x", x)), Some(("y", y)), Some(("w", w, dtype)))?;
    if let Some(b) = bias {
        check_len_of(OP, "bias: [c_out]", b, shape.c_out as u64, dtype)?;
    }
    let (blocked, reg) = modules::modules(dtype, dtype);
    let (m, n, k) = shape.forward_gemm();
    let mut params = shape.params(m, n, k);
    params.has_bias = bias.is_some() as u32;
    params.accumulate = accumulate as u32;
    let buffers = [y, w, x, bias.unwrap_or(w)];
    match variant.resolve(gpu, ConvPass::Forward, shape)? {
        ConvVariant::Direct => gpu.dispatch(
            pass,
            &Kernel::new(blocked, "conv2d_direct").work(Work::Flops(shape.flops())),
            &params,
            &buffers,
            grid_stride(shape.output_len() as u64),
        ),
        ConvVariant::Blocked(block) => {
            let pixels = shape.out_h() * shape.out_w();
            let vec4 = (k % 4 == 0, pixels % 4 == 0);
            let groups = [n.div_ceil(block.bn), m.div_ceil(block.bm), 1];
            let module = (blocked, dtype);
            dispatch_blocked(gpu, pass, &params, module, block, 0, vec4, buffers, groups)
        }
        ConvVariant::Reg => gpu.dispatch(
            pass,
            &Kernel::new(reg, "conv2d_forward_reg").work(Work::Flops(shape.flops())),
            &params,
            &buffers,
            reg_groups(gpu, m, n),
        ),
        ConvVariant::Auto => unreachable!("resolve returns a concrete variant"),
    }
}

/// dx (+)= ∂L/∂x given dy. dx: [batch, c_in, h, w]; dy: [batch, c_out, oh, ow];
/// w: [c_out, c_in, kh, kw].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_input(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dx: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    w: &wgpu::Buffer,
    shape: &Conv2d,
    variant: ConvVariant,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "conv2d_backward_input";
    let dtype = shape.dtype;
    require(gpu, OP, dtype)?;
    shape.check_buffers(
        OP,
        Some(("dx", dx)),
        Some(("dy", dy)),
        Some(("w", w, dtype)),
    )?;
    let (blocked, reg) = modules::modules(dtype, dtype);
    let (m, n, k) = shape.backward_input_gemm();
    elements(OP, &[n])?;
    let mut params = shape.params(m, n, k);
    params.accumulate = accumulate as u32;
    let s = shape.stride;
    if let ConvVariant::Blocked(block) = variant.resolve(gpu, ConvPass::BackwardInput, shape)? {
        // One z-workgroup per phase (input pixels of one remainder modulo the stride); the
        // grid is as wide as the phase with the most columns.
        let widest = shape.batch as u64 * shape.h.div_ceil(s) as u64 * shape.w.div_ceil(s) as u64;
        let vec4_out = s == 1 && (shape.h * shape.w) % 4 == 0;
        let groups = [
            widest.div_ceil(block.bn as u64) as u32,
            m.div_ceil(block.bm),
            s * s,
        ];
        return dispatch_blocked(
            gpu,
            pass,
            &params,
            (blocked, dtype),
            block,
            1,
            (false, vec4_out),
            [dx, w, dy, w],
            groups,
        );
    }
    let kernel = Kernel::new(reg, "conv2d_backward_input_reg").work(Work::Flops(shape.flops()));
    // 8 channels × 4 same-remainder pixels of a row per invocation (see the shader).
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
    gpu.dispatch(pass, &kernel, &params, &[dx, w, dy], groups)
}

/// How the backward-to-weight reduction (length batch·oh·ow) is split over workgroups for
/// `variant`, with at most `most_splits`: (splits, reduction length per split, a multiple
/// of the slab depth).
fn weight_splits(gpu: &Gpu, shape: &Conv2d, variant: ConvVariant, most_splits: u32) -> (u32, u32) {
    let (m, n, k) = shape.backward_weight_gemm();
    // Enough parallel work to fill the device; a CPU adapter wants little and long.
    let (parallel, wanted, depth) = match variant {
        ConvVariant::Blocked(b) => {
            let tiles = n.div_ceil(b.bn) * m.div_ceil(b.bm);
            (tiles, if gpu.is_software() { 8 } else { 512 }, b.bk)
        }
        _ => {
            let blocks = m.div_ceil(8) * n.div_ceil(4);
            (blocks, if gpu.is_software() { 512 } else { 65536 }, 16)
        }
    };
    let most = k.div_ceil(4 * depth).clamp(1, most_splits.max(1));
    let splits = (wanted as u32).div_ceil(parallel).clamp(1, most);
    let per_split = k.div_ceil(splits).div_ceil(depth) * depth;
    (k.div_ceil(per_split), per_split)
}

/// Length (f32 elements) of the scratch buffer `conv2d_backward_weight` wants on `gpu`:
/// room for the split-K partial sums of every variant `Auto` may pick. A smaller one (of
/// at least one weight tensor) works with fewer splits.
pub fn conv2d_weight_scratch_len(gpu: &Gpu, shape: &Conv2d) -> usize {
    let variants = tune::candidates(gpu, ConvPass::BackwardWeight)
        .into_iter()
        .chain([ConvVariant::Blocked(ConvVariant::SIMPLE_BLOCK)]);
    let splits = variants
        .map(|v| weight_splits(gpu, shape, v, u32::MAX).0)
        .max()
        .unwrap_or(1);
    splits as usize * shape.weight_len()
}

/// dw (+)= ∂L/∂w given dy, through `scratch` (see [`conv2d_weight_scratch_len`]); `Direct`
/// runs the blocked kernel. dw: [c_out, c_in, kh, kw]; dy: [batch, c_out, oh, ow];
/// x: [batch, c_in, h, w].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dw: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    shape: &Conv2d,
    variant: ConvVariant,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "conv2d_backward_weight";
    let dtype = shape.dtype;
    require(gpu, OP, dtype)?;
    shape.check_buffers(
        OP,
        Some(("x", x)),
        Some(("dy", dy)),
        Some(("dw", dw, Dtype::F32)),
    )?;
    let (blocked, reg) = modules::modules(dtype, Dtype::F32);
    check_len(OP, "scratch", scratch, shape.weight_len() as u64)?;
    let most_splits = (scratch.size() / 4 / shape.weight_len() as u64).min(u32::MAX as u64);
    let (m, n, k) = shape.backward_weight_gemm();
    let variant = variant.resolve(gpu, ConvPass::BackwardWeight, shape)?;
    let (splits, per_split) = weight_splits(gpu, shape, variant, most_splits as u32);
    let mut params = shape.params(m, n, k);
    params.k_split = per_split;
    params.splits = splits;
    params.accumulate = accumulate as u32;
    if let ConvVariant::Blocked(block) = variant {
        let vec4 = ((shape.out_h() * shape.out_w()) % 4 == 0, n % 4 == 0);
        let groups = [n.div_ceil(block.bn), m.div_ceil(block.bm), splits];
        dispatch_blocked(
            gpu,
            pass,
            &params,
            (blocked, dtype),
            block,
            2,
            vec4,
            [scratch, dy, x, dy],
            groups,
        )?;
    } else {
        let blocks = m.div_ceil(8) * n.div_ceil(4);
        let kernel =
            Kernel::new(reg, "conv2d_backward_weight_reg").work(Work::Flops(shape.flops()));
        let groups = [blocks.div_ceil(64), splits, 1];
        gpu.dispatch(pass, &kernel, &params, &[scratch, dy, x], groups)?;
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
    pass: &mut dyn Recorder,
    db: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    shape: &Conv2d,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "conv2d_backward_bias";
    require(gpu, OP, shape.dtype)?;
    shape.check_buffers(OP, None, Some(("dy", dy)), None)?;
    let (module, _) = modules::modules(shape.dtype, Dtype::F32);
    check_len(OP, "db: [c_out]", db, shape.c_out as u64)?;
    let (m, n, k) = shape.forward_gemm();
    let mut params = shape.params(m, n, k);
    params.accumulate = accumulate as u32;
    let constants = [("WG", gpu.row_workgroup_size() as f64)];
    let kernel = Kernel::with(module, "conv2d_bias_backward", &constants);
    gpu.dispatch(pass, &kernel, &params, &[db, dy], [shape.c_out, 1, 1])
}
