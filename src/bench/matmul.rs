//! Matmul cases: f32 and f16 products of every variant on seeded inputs, the tensor-core
//! variant where the adapter lists it, and the CPU sgemm they are measured beside.

use super::{Case, Work, check_buffers, median_seconds, wait};
use crate::cpu;
use crate::gpu::{Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::autotune::{self, TuneRequest};
use crate::kernels::matmul::{Block, CoopSize, Matmul, MatmulVariant, matmul, tuning_key};

/// Refuses a matmul whose operands are over the device's binding limit, before the CPU
/// reference is run or anything is allocated.
pub fn check_matmul_size(gpu: &Gpu, size: &str, [m, n, k]: [u32; 3]) -> Result<()> {
    let (m, n, k) = (m as u64, n as u64, k as u64);
    let operands = [
        ("A [M, K]", m * k),
        ("B [K, N]", k * n),
        ("C [M, N]", m * n),
    ];
    check_buffers(gpu, &format!("matmul {size}"), &operands)
}

/// C[m, n] = A[m, k]·B[k, n] on seeded f32 inputs with the given variant.
pub fn matmul_case(gpu: &Gpu, m: u32, n: u32, k: u32, variant: MatmulVariant) -> Result<Case> {
    typed_matmul_case(gpu, [m, n, k], variant, Dtype::F32)
}

/// Seeded values in [-1, 1) as `dtype` holds them (rounded to f16 for f16), and the
/// buffer holding them (f16 for f16: what `torch.mm` on half tensors does; sums are f32).
fn upload(gpu: &Gpu, label: &str, seed: u64, len: u32, dtype: Dtype) -> (Vec<f32>, wgpu::Buffer) {
    let values = cpu::seeded(seed, len as usize, -1.0, 1.0);
    let buffer = crate::kernels::precision::upload_as(gpu, label, &values, dtype);
    match dtype {
        Dtype::F32 => (values, buffer),
        Dtype::F16 => (cpu::round_f16(&values), buffer),
    }
}

/// Checks 64 seeded elements of C (one product of A [m, k] and B [k, n]) against f64 dot
/// products on the host, so a benchmark never times a kernel that computes the wrong thing
/// (the tensor-core kernel's first run on a new device is in the device script). The bound
/// is loose on purpose, 1e-2 + 1e-2·Σ|a·b|: it catches wrong elements, not rounding.
fn verify_sample(
    gpu: &Gpu,
    [m, n, k]: [u32; 3],
    a: &[f32],
    b: &[f32],
    c: &wgpu::Buffer,
    dtype: Dtype,
) -> Result<()> {
    let got = wait(crate::kernels::precision::read_as(
        gpu,
        c,
        (m * n) as usize,
        dtype,
    ))?;
    let (rows, cols) = (cpu::seeded_ids(7, 64, m), cpu::seeded_ids(8, 64, n));
    for (&i, &j) in rows.iter().zip(&cols) {
        let (i, j, k) = (i as usize, j as usize, k as usize);
        let terms = (0..k).map(|kk| a[i * k + kk] as f64 * b[kk * n as usize + j] as f64);
        let (want, size) = terms.fold((0.0, 0.0), |(s, t), x| (s + x, t + x.abs()));
        let value = got[i * n as usize + j] as f64;
        // NaN is never within the bound.
        let within = (value - want).abs() <= 1e-2 + 1e-2 * size;
        if !within {
            return Err(crate::gpu::Error::Invalid {
                what: format!("matmul {m}x{n}x{k} ({dtype})"),
                why: format!(
                    "C[{i}, {j}] is {value}, the host computes {want}: the kernel is wrong here"
                ),
            });
        }
    }
    Ok(())
}

/// C[m, n] = A[m, k]·B[k, n] with A, B and C of `dtype`; the variant's name says `f16:`
/// for f16.
pub fn typed_matmul_case(
    gpu: &Gpu,
    [m, n, k]: [u32; 3],
    variant: MatmulVariant,
    dtype: Dtype,
) -> Result<Case> {
    let (host_a, a) = upload(gpu, "a", 1, m * k, dtype);
    let (host_b, b) = upload(gpu, "b", 2, k * n, dtype);
    let c = gpu.zeroed("c", (m * n) as u64 * dtype.bytes());
    let desc = Matmul::new(m, n, k).dtypes(dtype, dtype).variant(variant);
    // `auto` is timed with the tuning table's choice: a class the table lacks is measured
    // here, before the timed runs (a benchmark is a measurement asked for).
    if variant == MatmulVariant::Auto && gpu.tuned(&tuning_key(&desc)).is_none() {
        wait(autotune::tune(gpu, &[TuneRequest::Matmul(desc)]))?;
    }
    let mut chosen = variant;
    wait(gpu.run(|pass| {
        chosen = matmul(gpu, pass, &c, &a, &b, None, &desc)?;
        Ok(())
    }))?;
    verify_sample(gpu, [m, n, k], &host_a, &host_b, &c, dtype)?;
    let desc = desc.variant(chosen);
    let name = if variant == MatmulVariant::Auto {
        format!("auto:{}", chosen.name())
    } else {
        chosen.name().to_string()
    };
    let name = match dtype {
        Dtype::F32 => name,
        Dtype::F16 => format!("f16:{name}"),
    };
    Ok(Case {
        kernel: "matmul",
        shape: format!("{m}x{n}x{k}"),
        variant: name,
        work: Work::Flops(desc.flops()),
        run: Box::new(move |gpu| {
            wait(gpu.run(|pass| matmul(gpu, pass, &c, &a, &b, None, &desc).map(drop)))
        }),
    })
}

/// CPU sgemm (matrixmultiply, all cores) on the same shape: the matmul reference. Seconds.
pub fn cpu_sgemm_seconds(m: usize, n: usize, k: usize, runs: usize) -> Result<f64> {
    let a = cpu::seeded(1, m * k, -1.0, 1.0);
    let b = cpu::seeded(2, k * n, -1.0, 1.0);
    let mut c = vec![0.0f32; m * n];
    median_seconds(
        || {
            // SAFETY: the pointers cover m·k, k·n and m·n elements with the given row strides.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
            Ok(())
        },
        1,
        runs,
    )
}

/// The (variant, element type) rows `rezero bench matmul` times by default for a product
/// of `flops`: naive where small, tiled, reg8x4, blocked and auto in f32; where the device
/// has f16, blocked and auto on f16 and each tensor-core size the adapter lists.
pub fn default_matmul_rows(gpu: &Gpu, flops: f64) -> Vec<(MatmulVariant, Dtype)> {
    let mut rows = Vec::new();
    if flops <= 3e8 {
        rows.push(MatmulVariant::Naive);
    }
    rows.extend([
        MatmulVariant::Tiled,
        MatmulVariant::Reg8x4,
        MatmulVariant::Blocked(Block::LARGE),
        MatmulVariant::Auto,
    ]);
    let mut rows: Vec<_> = rows.into_iter().map(|v| (v, Dtype::F32)).collect();
    if gpu.features().contains(wgpu::Features::SHADER_F16) {
        let f16 = [MatmulVariant::Blocked(Block::LARGE), MatmulVariant::Auto]
            .into_iter()
            .chain(
                CoopSize::available(gpu)
                    .into_iter()
                    .map(MatmulVariant::Coop),
            );
        rows.extend(f16.map(|v| (v, Dtype::F16)));
    }
    rows
}
