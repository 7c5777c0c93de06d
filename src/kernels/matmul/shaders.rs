//! The matmul shader modules: `shaders/matmul.wgsl` (four variants) and
//! `shaders/matmul_coop.wgsl` (tensor cores), each built for the element types it takes.
//! The element prelude (`elem_*.wgsl`) names the type of the operands and of the output;
//! the kernels are written once over those names and compute in f32 whatever they are.

use super::super::Dtype;
use super::CoopSize;
use crate::gpu::Shader;

/// The four variants after `$elem` (an element prelude).
macro_rules! variants {
    ($name:literal, $elem:literal) => {
        Shader {
            name: $name,
            wgsl: super::super::wgsl!(
                $elem,
                "activation.wgsl",
                "matmul_io.wgsl",
                "tile.wgsl",
                "matmul.wgsl"
            ),
            uniform_bytes: std::mem::size_of::<super::Params>(),
        }
    };
}

/// The tensor-core kernel for `$tiles` (a tile prelude) after `$elem`.
macro_rules! coop {
    ($name:literal, $elem:literal, $tiles:literal) => {
        Shader {
            name: $name,
            wgsl: super::super::wgsl!(
                "coop_enable.wgsl",
                $elem,
                $tiles,
                "activation.wgsl",
                "matmul_io.wgsl",
                "matmul_coop.wgsl"
            ),
            uniform_bytes: std::mem::size_of::<super::Params>(),
        }
    };
}

/// f32 operands and output.
pub(crate) const F32: Shader = variants!("matmul", "elem_f32.wgsl");
/// f16 operands, f32 output.
pub(crate) const F16: Shader = variants!("matmul_f16", "elem_f16.wgsl");
/// f16 operands and output.
pub(crate) const F16_OUT16: Shader = variants!("matmul_f16_out16", "elem_f16_out16.wgsl");
pub(crate) const COOP8: Shader = coop!("matmul_coop8", "elem_f16.wgsl", "coop8.wgsl");
pub(crate) const COOP8_OUT16: Shader =
    coop!("matmul_coop8_out16", "elem_f16_out16.wgsl", "coop8.wgsl");
pub(crate) const COOP16: Shader = coop!("matmul_coop16", "elem_f16.wgsl", "coop16.wgsl");
pub(crate) const COOP16_OUT16: Shader =
    coop!("matmul_coop16_out16", "elem_f16_out16.wgsl", "coop16.wgsl");

/// Every matmul module, for the shader checks.
pub(crate) const ALL: [Shader; 7] = [
    F32,
    F16,
    F16_OUT16,
    COOP8,
    COOP8_OUT16,
    COOP16,
    COOP16_OUT16,
];

/// The module of the plain variants for (operands, output): None for f32 operands with an
/// f16 output, which no kernel takes.
pub(crate) fn variants(operands: Dtype, output: Dtype) -> Option<Shader> {
    match (operands, output) {
        (Dtype::F32, Dtype::F32) => Some(F32),
        (Dtype::F16, Dtype::F32) => Some(F16),
        (Dtype::F16, Dtype::F16) => Some(F16_OUT16),
        (Dtype::F32, Dtype::F16) => None,
    }
}

/// The tensor-core module for `size` writing `output`.
pub(crate) fn coop(size: CoopSize, output: Dtype) -> Shader {
    match (size, output) {
        (CoopSize::Eight, Dtype::F32) => COOP8,
        (CoopSize::Eight, Dtype::F16) => COOP8_OUT16,
        (CoopSize::Sixteen, Dtype::F32) => COOP16,
        (CoopSize::Sixteen, Dtype::F16) => COOP16_OUT16,
    }
}
