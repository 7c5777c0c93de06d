//! f16 kernel checks: inputs rounded to f16 on the host, the f32 (f64-summed) reference
//! computed on those same values, and tolerances derived from f16's spacing and the
//! reduction length rather than tuned.

use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::Dtype;
use rezero::kernels::bias::Activation;
use rezero::kernels::matmul::{Matmul, matmul, matmul_activation};

use super::{assert_close, atol_for};

/// (atol, rtol) for an f16-operand product summed over `k` and written as `output`.
///
/// A product of two f16 values is exact in f32 (11-bit significands give 22 bits of the
/// 24 f32 has), so against a reference on the same f16-rounded inputs the only errors are
/// the f32 sums', as for f32 kernels: `atol_for(k)` and 1e-4 relative. An f16 output is
/// rounded once on each side (the kernel's f32 result and the reference's): two values
/// within the f32 bound round at most one f16 spacing apart, `F16_EPSILON` relative for
/// normal values and 2⁻²⁴ absolute for subnormal ones.
pub fn tolerance(k: u32, output: Dtype) -> (f32, f32) {
    widen((atol_for(k as usize), 1e-4), output)
}

/// An f32 kernel's (atol, rtol) for an output stored as `dtype`: an f16 output is the f32
/// result rounded once, which moves it by at most half a spacing (`F16_EPSILON` / 2
/// relative for normal values, 2⁻²⁵ absolute for subnormal ones); both are allowed in full.
pub fn widen((atol, rtol): (f32, f32), dtype: Dtype) -> (f32, f32) {
    match dtype {
        Dtype::F32 => (atol, rtol),
        Dtype::F16 => (atol + 2f32.powi(-24), rtol + cpu::F16_EPSILON),
    }
}

/// The element types a kernel test runs on this device: f32, and f16 where the adapter
/// has `SHADER_F16` (said visibly where it has not; failing in CI, whose devices have it).
pub fn dtypes(gpu: &Gpu) -> Vec<Dtype> {
    if gpu.features().contains(wgpu::Features::SHADER_F16) {
        vec![Dtype::F32, Dtype::F16]
    } else {
        super::skip("the f16 cases: the adapter lacks SHADER_F16");
        vec![Dtype::F32]
    }
}

/// `values` as a buffer of `dtype` holds them: rounded to the nearest f16 for f16.
pub fn exact(values: &[f32], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F32 => values.to_vec(),
        Dtype::F16 => cpu::round_f16(values),
    }
}

/// Reads `len` elements of `buffer`, stored as `dtype`, as f32.
pub fn read_as_f32(gpu: &Gpu, buffer: &wgpu::Buffer, len: usize, dtype: Dtype) -> Vec<f32> {
    pollster::block_on(rezero::kernels::precision::read_as(gpu, buffer, len, dtype)).unwrap()
}

pub use rezero::kernels::precision::upload_as;

/// The element count of A, B and C for `desc`.
fn lengths(desc: &Matmul) -> [usize; 3] {
    desc.lengths("test").unwrap().map(|n| n as usize)
}

/// Runs `desc` (f16 operands; its variant and output type as given) on seeded f16 inputs,
/// with a bias when `with_bias` and through `matmul_activation` when an `activation` is
/// given, and compares C (and pre) with the reference within [`tolerance`].
pub fn check_matmul_f16(gpu: &Gpu, desc: Matmul, with_bias: bool, activation: Option<Activation>) {
    let [len_a, len_b, len_c] = lengths(&desc);
    let a = cpu::round_f16(&cpu::seeded(1, len_a, -1.0, 1.0));
    let b = cpu::round_f16(&cpu::seeded(2, len_b, -1.0, 1.0));
    let bias = cpu::round_f16(&cpu::seeded(4, desc.n as usize, -1.0, 1.0));
    let c0 = match desc.output {
        Dtype::F16 => cpu::round_f16(&cpu::seeded(3, len_c, -1.0, 1.0)),
        Dtype::F32 => cpu::seeded(3, len_c, -1.0, 1.0),
    };
    let mut pre_want = c0.clone();
    cpu::matmul::matmul(&mut pre_want, &a, &b, with_bias.then_some(&bias[..]), &desc);
    let out_want: Vec<f32> = match activation {
        None => pre_want.clone(),
        Some(act) => pre_want
            .iter()
            .map(|&x| cpu::bias::activate(act, x as f64) as f32)
            .collect(),
    };
    let ga = upload_as(gpu, "a", &a, desc.operands);
    let gb = upload_as(gpu, "b", &b, desc.operands);
    let gbias = upload_as(gpu, "bias", &bias, desc.operands);
    let gc = upload_as(gpu, "c", &c0, desc.output);
    let gpre = upload_as(gpu, "pre", &c0, desc.output);
    let bias_buffer = with_bias.then_some(&gbias);
    pollster::block_on(gpu.run(|pass| match activation {
        None => matmul(gpu, pass, &gc, &ga, &gb, bias_buffer, &desc).map(drop),
        Some(act) => {
            matmul_activation(gpu, pass, &gc, &gpre, &ga, &gb, bias_buffer, act, &desc).map(drop)
        }
    }))
    .unwrap();
    let what = format!(
        "{} bias {with_bias} {activation:?} out {}",
        super::matmul_label(&desc),
        desc.output
    );
    let (atol, rtol) = tolerance(desc.k, desc.output);
    let got = read_as_f32(gpu, &gc, len_c, desc.output);
    assert_close(&what, &got, &out_want, atol, rtol);
    if activation.is_some() {
        let pre = read_as_f32(gpu, &gpre, len_c, desc.output);
        assert_close(&format!("{what} (pre)"), &pre, &pre_want, atol, rtol);
    }
}
