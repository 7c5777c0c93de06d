//! What the `Auto` variants of matmul, conv2d and attention share: the blocked tiles worth
//! trying on each kind of adapter, the timing that ranks a fixed list of candidates, and
//! the rule that uses the tuning table's choice when the device can run it and a fixed
//! default for the adapter's kind otherwise. A launcher never measures: the classes it met
//! without a choice are noted as untuned, and [`tune`] measures them when asked (`rezero
//! tune`, `rezero train --tune`, the step benchmarks), before any step runs.

use std::future::Future;
use web_time::Instant;

use super::attention::{AttentionKernel, AttentionShape};
use super::attention_tune::{self, Pass};
use super::conv2d::{self, Conv2d, ConvPass};
use super::matmul::{self, Block, Matmul};
use super::{Dtype, elementwise};
use crate::gpu::{Gpu, Result};

/// Blocked tiles tried on GPUs: large tiles for large products, narrow ones for the thin
/// products of small layers and convolutions.
pub const GPU_BLOCKS: [Block; 8] = [
    Block::new(128, 128, 16, 8, 8),
    Block::new(128, 128, 8, 8, 8),
    Block::new(128, 64, 16, 8, 8),
    Block::new(64, 128, 16, 8, 8),
    Block::new(64, 64, 16, 8, 8),
    Block::new(64, 64, 16, 4, 4),
    Block::new(32, 64, 16, 4, 4),
    Block::new(64, 32, 16, 4, 4),
];

/// Blocked tiles tried on software adapters, where every barrier switches between all of a
/// workgroup's SIMD groups: big register blocks (on lavapipe 128x128x16:8x8 ran a 1024³
/// product 1.3-1.4x as fast as reg8x4; BENCHMARKS.md).
pub const SOFTWARE_BLOCKS: [Block; 2] =
    [Block::new(128, 128, 16, 8, 8), Block::new(64, 64, 16, 8, 8)];

/// The blocked tiles `Auto` tries on `gpu` that fit its limits.
pub fn blocks(gpu: &Gpu) -> Vec<Block> {
    let list: &[Block] = if gpu.is_software() {
        &SOFTWARE_BLOCKS
    } else {
        &GPU_BLOCKS
    };
    list.iter()
        .copied()
        .filter(|b| b.check(gpu).is_ok())
        .collect()
}

/// A zeroed buffer of `len` floats filled with 0.5: what candidates are timed on (never
/// zeros, which can run faster than real data).
pub(crate) async fn filled(gpu: &Gpu, label: &str, len: u64) -> Result<wgpu::Buffer> {
    filled_as(gpu, label, len, Dtype::F32).await
}

/// [`filled`] for `len` elements of `dtype`: f16 buffers hold 0.5 too (two halves of
/// 0x3800 to a word), never the zeros and 1.75s that f32 0.5 would read as.
pub(crate) async fn filled_as(
    gpu: &Gpu,
    label: &str,
    len: u64,
    dtype: Dtype,
) -> Result<wgpu::Buffer> {
    let words = (len.max(1) * dtype.bytes()).div_ceil(4);
    let buffer = gpu.zeroed_f32(label, words as usize);
    let n = words.min(u32::MAX as u64) as u32;
    let value = match dtype {
        Dtype::F32 => 0.5,
        Dtype::F16 => f32::from_bits(0x3800_3800),
    };
    gpu.run(|pass| elementwise::fill(gpu, pass, &buffer, value, n, Dtype::F32))
        .await?;
    Ok(buffer)
}

/// Times `run` (one submitted, waited-for dispatch set) for every candidate: the fastest of
/// at least 2 runs, and of up to 20 within 20 ms, after a warm-up run that also builds the
/// pipelines. Returns (candidate, seconds) in candidate order.
pub(crate) async fn time_each<V: Copy, F: Future<Output = Result<()>>>(
    candidates: &[V],
    run: impl Fn(V) -> F,
) -> Result<Vec<(V, f64)>> {
    let mut times = Vec::new();
    for &candidate in candidates {
        run(candidate).await?;
        let (mut fastest, mut spent, mut runs) = (f64::INFINITY, 0.0, 0);
        while runs < 2 || (runs < 20 && spent < 0.02) {
            let start = Instant::now();
            run(candidate).await?;
            let t = start.elapsed().as_secs_f64();
            (fastest, spent, runs) = (fastest.min(t), spent + t, runs + 1);
        }
        times.push((candidate, fastest));
    }
    Ok(times)
}

/// The fastest of measured (candidate, seconds), if any.
pub(crate) fn fastest<V: Clone>(times: &[(V, f64)]) -> Option<V> {
    times
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(v, _)| v.clone())
}

/// The variant for tuning class `key`: the table's choice when it parses and `usable`
/// accepts it, otherwise `default` (a fixed choice for this kind of adapter). Nothing is
/// measured here: a class without a usable choice is noted as untuned, with `request`, for
/// an explicit [`tune`] to measure.
pub(crate) fn choose<V: Copy>(
    gpu: &Gpu,
    key: &str,
    parse: impl Fn(&str) -> Option<V>,
    usable: impl Fn(V) -> bool,
    default: V,
    request: TuneRequest,
) -> V {
    if let Some(choice) = gpu.tuned(key).and_then(|text| parse(&text)) {
        if usable(choice) {
            return choice;
        }
    }
    gpu.note_untuned(key, || Box::new(request));
    default
}

/// A shape class of a kernel family with an `Auto` variant: what measuring its candidates
/// needs.
#[derive(Clone, Copy, Debug)]
pub enum TuneRequest {
    Matmul(Matmul),
    Conv(ConvPass, Conv2d),
    Attention(Pass, AttentionShape),
}

/// One class measured by [`tune`]: its key, every candidate's name and time (seconds; 0
/// for a lone candidate, which is not run) and the winner's name.
#[derive(Clone, Debug)]
pub struct Tuned {
    pub key: String,
    pub times: Vec<(String, f64)>,
    pub winner: String,
}

impl TuneRequest {
    /// The class's key in the tuning table.
    pub fn key(&self) -> String {
        match self {
            TuneRequest::Matmul(desc) => matmul::tuning_key(desc),
            TuneRequest::Conv(pass, shape) => conv2d::tuning_key(*pass, shape),
            TuneRequest::Attention(pass, shape) => attention_tune::tuning_key(*pass, shape),
        }
    }

    /// Times every candidate now (each run submitted and waited for) and records the
    /// fastest in the tuning table.
    pub async fn measure(&self, gpu: &Gpu) -> Result<Tuned> {
        let times = gpu.unprofiled(self.times(gpu)).await?;
        let best = fastest(&times).expect("every tuned kernel has a candidate");
        let key = self.key();
        gpu.set_tuned(&key, &best);
        Ok(Tuned {
            key,
            times,
            winner: best,
        })
    }

    async fn times(&self, gpu: &Gpu) -> Result<Vec<(String, f64)>> {
        Ok(match self {
            TuneRequest::Matmul(desc) => {
                let times = matmul::measure_candidates(gpu, desc).await?;
                named(times, |v| v.name())
            }
            TuneRequest::Conv(pass, shape) => {
                let times = conv2d::measure_candidates(gpu, *pass, shape).await?;
                named(times, |v| v.name())
            }
            TuneRequest::Attention(pass, shape) => {
                let times = attention_tune::measure_candidates(gpu, *pass, shape).await?;
                named(times, AttentionKernel::name)
            }
        })
    }
}

/// Measured (candidate, seconds) with each candidate named.
fn named<V>(times: Vec<(V, f64)>, name: impl Fn(V) -> String) -> Vec<(String, f64)> {
    times.into_iter().map(|(v, t)| (name(v), t)).collect()
}

/// The classes `Auto` met since the last call with no usable choice in the table (each ran
/// its default), in key order. Taking them forgets them.
pub fn take_untuned(gpu: &Gpu) -> Vec<TuneRequest> {
    gpu.take_untuned()
        .into_iter()
        .filter_map(|any| any.downcast::<TuneRequest>().ok().map(|r| *r))
        .collect()
}

/// Measures every request's candidates now and records the winners (the one place rezero
/// tunes: `rezero tune`, `rezero train --tune` and the step benchmarks call it before
/// their first step, never a launcher).
pub async fn tune(gpu: &Gpu, requests: &[TuneRequest]) -> Result<Vec<Tuned>> {
    let mut tuned = Vec::with_capacity(requests.len());
    for request in requests {
        tuned.push(request.measure(gpu).await?);
    }
    Ok(tuned)
}
