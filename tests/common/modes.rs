//! Two devices, one with shaders built without wgpu's runtime checks (the default) and
//! one with them, and the comparison the `checked_modes*` tests make between them.
#![allow(dead_code)]

use rezero::kernels::Dtype;
use std::sync::OnceLock;

use rezero::cpu::seeded;
use rezero::kernels::elementwise as ew;
use rezero::{Gpu, GpuOptions, Result};

/// One device of each mode, shared by this binary's tests.
pub fn modes() -> Option<&'static [Gpu; 2]> {
    static MODES: OnceLock<Option<[Gpu; 2]>> = OnceLock::new();
    super::gpu()?;
    MODES
        .get_or_init(|| {
            let open = |checked_shaders| {
                pollster::block_on(Gpu::new(&GpuOptions {
                    checked_shaders,
                    ..Default::default()
                }))
                .unwrap()
            };
            let pair = [open(true), open(false)];
            assert!(pair[0].checked_shaders() && !pair[1].checked_shaders());
            Some(pair)
        })
        .as_ref()
}

/// Runs `work` (which uploads its inputs, records its kernels and reads its outputs back)
/// on both devices and requires the outputs to be identical, bit for bit.
pub fn same(what: &str, work: impl Fn(&Gpu) -> Result<Vec<Vec<f32>>>) {
    let Some([checked, unchecked]) = modes() else {
        return;
    };
    let want = work(checked).unwrap_or_else(|e| panic!("{what} (checked): {e}"));
    let got = work(unchecked).unwrap_or_else(|e| panic!("{what} (unchecked): {e}"));
    assert_eq!(want.len(), got.len());
    for (o, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.len(), g.len(), "{what}: output {o} length");
        if let Some(i) = (0..w.len()).find(|&i| w[i].to_bits() != g[i].to_bits()) {
            panic!(
                "{what}: output {o} differs at {i}: checked {} unchecked {}",
                w[i], g[i]
            );
        }
    }
}

pub fn up(gpu: &Gpu, seed: u64, len: usize) -> wgpu::Buffer {
    gpu.upload("in", &seeded(seed, len.max(1), -1.0, 1.0))
}

/// Output buffers start poisoned with NaN, so an element a kernel skips shows up.
pub fn out(gpu: &Gpu, len: usize) -> Result<wgpu::Buffer> {
    let buffer = gpu.zeroed_f32("out", len.max(1));
    pollster::block_on(
        gpu.run(|pass| ew::fill(gpu, pass, &buffer, f32::NAN, len.max(1) as u32, Dtype::F32)),
    )?;
    Ok(buffer)
}

pub fn read(gpu: &Gpu, buffers: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>> {
    buffers
        .iter()
        .map(|(b, len)| pollster::block_on(gpu.read_f32(b, *len)))
        .collect()
}
