//! Element types of the kernels' buffers: f32 everywhere by default; f16 for the operands
//! (and, where asked, the outputs) of the kernels that take it, which needs the device's
//! `SHADER_F16` feature. Arithmetic and accumulation stay f32 in every kernel.

use crate::gpu::{Error, Gpu, Result};

/// The element type of a buffer a kernel reads or writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dtype {
    #[default]
    F32,
    /// IEEE binary16, read into f32 for arithmetic (`enable f16;` in WGSL).
    F16,
}

impl Dtype {
    /// Bytes of one element.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dtype {
    type Err = Error;
    /// `f32` or `f16`.
    fn from_str(s: &str) -> Result<Dtype> {
        match s {
            "f32" => Ok(Dtype::F32),
            "f16" => Ok(Dtype::F16),
            _ => Err(Error::Invalid {
                what: "precision".into(),
                why: format!("'{s}' is not f32 or f16"),
            }),
        }
    }
}

/// Errors unless `gpu` can run kernels on `dtype` (f16 needs `SHADER_F16`): said before
/// anything is built or recorded, naming the feature.
pub fn require(gpu: &Gpu, op: &'static str, dtype: Dtype) -> Result<()> {
    if dtype == Dtype::F16 && !gpu.features().contains(wgpu::Features::SHADER_F16) {
        return Err(Error::Unsupported {
            op,
            variant: "f16".into(),
            why: format!(
                "the adapter '{}' ({:?}) lacks the SHADER_F16 feature (WGSL `enable f16;`), \
                 which f16 buffers need; use f32 on this device",
                gpu.info().name,
                gpu.info().backend
            ),
        });
    }
    Ok(())
}

/// Errors unless `buffer` holds at least `len` elements of `dtype`.
pub(crate) fn check_len_of(
    op: &'static str,
    what: &str,
    buffer: &wgpu::Buffer,
    len: u64,
    dtype: Dtype,
) -> Result<()> {
    let need = len * dtype.bytes();
    // f32 is the default and goes unnamed ("12 elements"); f16 is named ("12 f16 elements").
    let kind = match dtype {
        Dtype::F32 => "",
        Dtype::F16 => " f16",
    };
    if buffer.size() % 4 != 0 {
        // wgpu binds storage buffers in whole 4-byte words.
        return Err(Error::Shape {
            op,
            expected: format!("{what} of a multiple of 4 bytes (wgpu binds whole words)"),
            got: format!("a buffer of {} bytes", buffer.size()),
        });
    }
    if buffer.size() < need {
        return Err(Error::Shape {
            op,
            expected: format!("{what} of at least {len}{kind} elements ({need} bytes)"),
            got: format!(
                "a buffer of {} bytes ({}{kind} elements)",
                buffer.size(),
                buffer.size() / dtype.bytes()
            ),
        });
    }
    Ok(())
}

/// Writes f32 `values` into `buffer` as `dtype` holds them (f16 rounded to nearest, ties to
/// even, on the host), with a queue write.
pub fn write_as(gpu: &Gpu, buffer: &wgpu::Buffer, values: &[f32], dtype: Dtype) {
    match dtype {
        Dtype::F32 => gpu.write(buffer, values),
        Dtype::F16 => gpu.write(buffer, &halves(values)),
    }
}

/// A new buffer holding f32 `values` as `dtype`.
pub fn upload_as(gpu: &Gpu, label: &str, values: &[f32], dtype: Dtype) -> wgpu::Buffer {
    match dtype {
        Dtype::F32 => gpu.upload(label, values),
        Dtype::F16 => gpu.upload(label, &halves(values)),
    }
}

/// `len` elements of `dtype` in `buffer`, read back as f32.
pub async fn read_as(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    len: usize,
    dtype: Dtype,
) -> Result<Vec<f32>> {
    match dtype {
        Dtype::F32 => gpu.read_f32(buffer, len).await,
        Dtype::F16 => {
            let halves = gpu.read::<half::f16>(buffer, len).await?;
            Ok(halves.into_iter().map(f32::from).collect())
        }
    }
}

fn halves(values: &[f32]) -> Vec<half::f16> {
    values.iter().map(|&v| half::f16::from_f32(v)).collect()
}
