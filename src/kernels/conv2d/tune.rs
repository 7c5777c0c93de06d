//! `ConvVariant::Auto`: which kernel runs a pass of a convolution, chosen like matmul's
//! (`kernels::autotune`): per pass and shape class (the kernel's size, stride and padding
//! exactly, the pass's GEMM rows, columns and reduction each to within a factor of two),
//! from a fixed list of at most 10 candidates timed when a tune is asked for (none when the
//! list has one); a fixed default until then.

use super::{Conv2d, ConvPass, ConvVariant, conv2d_backward_input, conv2d_backward_weight};
use super::{conv2d_forward, conv2d_weight_scratch_len};
use crate::gpu::{Gpu, Result};
use crate::kernels::autotune;
use crate::kernels::matmul::Block;

/// The (m, n, k) of `pass`'s GEMM.
fn gemm(pass: ConvPass, shape: &Conv2d) -> (u32, u32, u32) {
    match pass {
        ConvPass::Forward => shape.forward_gemm(),
        ConvPass::BackwardInput => shape.backward_input_gemm(),
        ConvPass::BackwardWeight => shape.backward_weight_gemm(),
    }
}

/// The class of `pass` of `shape` in the tuning table, e.g.
/// `conv2d/fwd/k3x3/s1/p1/m16/n131072/k256`.
pub fn tuning_key(pass: ConvPass, shape: &Conv2d) -> String {
    let (m, n, k) = gemm(pass, shape);
    let class = |d: u32| d.max(1).next_power_of_two();
    // f16 convolutions are classes of their own (`conv2d-f16/...`).
    let dtype = match shape.dtype {
        crate::kernels::Dtype::F32 => "",
        crate::kernels::Dtype::F16 => "-f16",
    };
    format!(
        "conv2d{dtype}/{}/k{}x{}/s{}/p{}/m{}/n{}/k{}",
        pass.name(),
        shape.kh,
        shape.kw,
        shape.stride,
        shape.pad,
        class(m),
        class(n),
        class(k)
    )
}

/// Blocked tiles tried for convolutions on GPUs: a ResNet's GEMM rows are its channels
/// (16-64), so short tiles as well as the square ones.
pub const GPU_BLOCKS: [Block; 8] = [
    Block::new(128, 64, 16, 8, 8),
    Block::new(64, 128, 16, 8, 8),
    Block::new(64, 64, 16, 8, 8),
    Block::new(64, 64, 16, 4, 4),
    Block::new(32, 128, 16, 4, 8),
    Block::new(32, 64, 16, 4, 4),
    Block::new(16, 128, 16, 4, 8),
    Block::new(16, 64, 16, 4, 4),
];

/// The fixed list of kernels `Auto` times for `pass` on `gpu` (at most 10). On GPUs: the
/// register-blocked kernel, the blocked tiles that fit the device and, forward, the direct
/// loop (the fastest for some strided forwards on an H200; BENCHMARKS.md). On software
/// adapters the register-blocked kernel alone: it beat every blocked tile there by 1.3-10x
/// at the ResNet shapes (BENCHMARKS.md), so nothing is measured.
pub fn candidates(gpu: &Gpu, pass: ConvPass) -> Vec<ConvVariant> {
    let mut list = vec![ConvVariant::Reg];
    if gpu.is_software() {
        return list;
    }
    if pass == ConvPass::Forward {
        list.push(ConvVariant::Direct);
    }
    let fits = GPU_BLOCKS.into_iter().filter(|b| b.check(gpu).is_ok());
    list.extend(fits.map(ConvVariant::Blocked));
    list
}

/// Times every candidate of `pass` on scratch tensors of `shape` (see
/// `autotune::time_each`). Returns (variant, seconds) in candidate order.
pub async fn measure_candidates(
    gpu: &Gpu,
    pass: ConvPass,
    shape: &Conv2d,
) -> Result<Vec<(ConvVariant, f64)>> {
    shape.validate("conv2d tuning")?;
    let list = candidates(gpu, pass);
    if let [only] = list[..] {
        return Ok(vec![(only, 0.0)]); // nothing to choose between: not run (its time reads 0)
    }
    let dtype = shape.dtype;
    let x = autotune::filled_as(gpu, "tune x", shape.input_len() as u64, dtype).await?;
    let w = autotune::filled_as(gpu, "tune w", shape.weight_len() as u64, dtype).await?;
    let y = autotune::filled_as(gpu, "tune y", shape.output_len() as u64, dtype).await?;
    let scratch = match pass {
        ConvPass::BackwardWeight => conv2d_weight_scratch_len(gpu, shape),
        _ => 1,
    };
    let scratch = gpu.zeroed_f32("tune scratch", scratch);
    let dw = gpu.zeroed_f32("tune dw", shape.weight_len());
    let (x, w, y, scratch, dw) = (&x, &w, &y, &scratch, &dw);
    autotune::time_each(&list, |v| {
        gpu.run(move |p| match pass {
            ConvPass::Forward => conv2d_forward(gpu, p, y, x, w, None, shape, v, false),
            ConvPass::BackwardInput => conv2d_backward_input(gpu, p, x, y, w, shape, v, false),
            ConvPass::BackwardWeight => {
                conv2d_backward_weight(gpu, p, dw, scratch, y, x, shape, v, false)
            }
        })
    })
    .await
}

/// The kernel `Auto` runs for a pass when the table has no choice for its class: the
/// register-blocked kernel on software adapters (what `candidates` offers there alone); on
/// GPUs the 64×64 block of 4×4 an invocation (the blocked tile an H200 picked for most
/// ResNet passes; BENCHMARKS.md) when it fits, else the register-blocked kernel.
pub fn default_variant(gpu: &Gpu) -> ConvVariant {
    let block = Block::new(64, 64, 16, 4, 4);
    if !gpu.is_software() && block.check(gpu).is_ok() {
        ConvVariant::Blocked(block)
    } else {
        ConvVariant::Reg
    }
}

/// The kernel `Auto` runs for `pass` of `shape`: the table's choice for its class, or
/// [`default_variant`] (the class noted as untuned; see `autotune`).
pub(super) fn pick(gpu: &Gpu, pass: ConvPass, shape: &Conv2d) -> ConvVariant {
    autotune::choose(
        gpu,
        &tuning_key(pass, shape),
        |text| text.parse().ok(),
        |variant| match variant {
            ConvVariant::Blocked(block) => block.check(gpu).is_ok(),
            ConvVariant::Auto => false,
            _ => true,
        },
        default_variant(gpu),
        autotune::TuneRequest::Conv(pass, *shape),
    )
}
