//! The convolution shader modules, each built for the element types it takes: the blocked,
//! direct and reduction kernels (`shaders/conv2d.wgsl` on the tile prelude) and the
//! register-blocked ones (`shaders/conv2d_reg.wgsl`), after an element prelude. f16
//! convolutions read f16 images, filters and gradients of the output and write f16
//! outputs and input gradients; the weight gradient's partial sums stay f32.

use super::Params;
use crate::gpu::Shader;
use crate::kernels::{Dtype, wgsl};

/// The blocked module after `$elem`.
macro_rules! blocked {
    ($name:literal, $elem:literal) => {
        Shader {
            name: $name,
            wgsl: wgsl!(
                $elem,
                "tile.wgsl",
                "grid.wgsl",
                "conv2d_common.wgsl",
                "conv2d.wgsl"
            ),
            uniform_bytes: std::mem::size_of::<Params>(),
        }
    };
}

/// The register-blocked module after `$elem`.
macro_rules! reg {
    ($name:literal, $elem:literal) => {
        Shader {
            name: $name,
            wgsl: wgsl!($elem, "conv2d_common.wgsl", "conv2d_reg.wgsl"),
            uniform_bytes: std::mem::size_of::<Params>(),
        }
    };
}

pub(crate) const SHADER: Shader = blocked!("conv2d", "elem_f32.wgsl");
pub(crate) const REG_SHADER: Shader = reg!("conv2d_reg", "elem_f32.wgsl");
const F16: Shader = blocked!("conv2d_f16", "elem_f16.wgsl");
const F16_OUT16: Shader = blocked!("conv2d_f16_out16", "elem_f16_out16.wgsl");
const REG_F16: Shader = reg!("conv2d_reg_f16", "elem_f16.wgsl");
const REG_F16_OUT16: Shader = reg!("conv2d_reg_f16_out16", "elem_f16_out16.wgsl");

/// Every convolution module, for the shader checks.
pub(crate) const ALL: [Shader; 6] = [SHADER, REG_SHADER, F16, F16_OUT16, REG_F16, REG_F16_OUT16];

/// The (blocked, register-blocked) modules for operands of `dtype` writing `output`.
pub(super) fn modules(dtype: Dtype, output: Dtype) -> (Shader, Shader) {
    match (dtype, output) {
        (Dtype::F16, Dtype::F16) => (F16_OUT16, REG_F16_OUT16),
        (Dtype::F16, Dtype::F32) => (F16, REG_F16),
        _ => (SHADER, REG_SHADER),
    }
}
