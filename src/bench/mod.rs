//! Benchmark cases shared by `rezero bench` and `cargo bench`: each case prepares its
//! buffers once, runs one synchronised iteration on demand, and knows how much work
//! (flops or bytes) an iteration does, so a figure can sit next to its same-run reference.

use std::time::Instant;

mod attention;
mod bias;
mod cases;
mod conv;
mod lm;
mod matmul;
mod mlp;
mod optim;
mod parse;
mod resnet;

pub use attention::attention_cases;
pub use bias::bias_cases;
pub use cases::*;
pub use conv::*;
pub use lm::{LmStep, lm_config, lm_step};
pub use matmul::*;
pub use mlp::{MlpStep, mlp_config, mlp_step};
pub use optim::optim_cases;
pub use parse::*;
pub use resnet::{ResnetStep, resnet_config, resnet_conv_flops, resnet_step};

use crate::gpu::{Error, Gpu, Result};

/// What one iteration of a case does.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    Flops(f64),
    /// Bytes read plus bytes written, counting each buffer once.
    Bytes(f64),
}

type RunFn = Box<dyn Fn(&Gpu) -> Result<()>>;

/// A prepared benchmark: buffers allocated, pipeline built on first run.
pub struct Case {
    pub kernel: &'static str,
    pub shape: String,
    pub variant: String,
    pub work: Work,
    run: RunFn,
}

impl Case {
    /// One iteration: record, submit, wait for the GPU.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        (self.run)(gpu)
    }
}

/// Waits for one of the library's futures (a run, a readback) as the command line does.
/// The benchmarks are part of the command line's build (the `cli` feature), shared with
/// `cargo bench`: the library's own code never waits like this.
pub fn wait<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

/// Median wall time (seconds) of `runs` synchronised iterations after `warmup` ones.
pub fn median_seconds(
    mut once: impl FnMut() -> Result<()>,
    warmup: usize,
    runs: usize,
) -> Result<f64> {
    for _ in 0..warmup {
        once()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        once()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The profile of one training step (see `gpu::profile`) and that step's wall time.
#[derive(Clone, Debug)]
pub struct StepProfile {
    pub profile: crate::gpu::Profile,
    pub wall_seconds: f64,
}

/// How a training step is timed: untimed runs, timed runs (the median is reported), and
/// whether one more runs under the profiler.
#[derive(Clone, Copy, Debug)]
pub struct StepTiming {
    pub warmup: usize,
    pub runs: usize,
    pub profile: bool,
}

/// The median seconds of `step` (see [`median_seconds`]) and, if asked, one more step run
/// under the profiler.
pub fn time_step(
    gpu: &Gpu,
    mut step: impl FnMut() -> Result<()>,
    timing: StepTiming,
) -> Result<(f64, Option<StepProfile>)> {
    let seconds = median_seconds(&mut step, timing.warmup, timing.runs)?;
    if !timing.profile {
        return Ok((seconds, None));
    }
    gpu.start_profile()?;
    let start = Instant::now();
    let stepped = step();
    let wall_seconds = start.elapsed().as_secs_f64();
    let profile = wait(gpu.finish_profile());
    stepped?;
    Ok((
        seconds,
        Some(StepProfile {
            profile: profile?,
            wall_seconds,
        }),
    ))
}

/// One line of a benchmark report.
#[derive(Clone, Debug)]
pub struct Record {
    pub kernel: String,
    pub shape: String,
    pub variant: String,
    pub ms: f64,
    /// GFLOP/s or GB/s, as `unit` says.
    pub value: f64,
    pub unit: &'static str,
    pub reference: String,
    pub reference_value: f64,
    /// Anything else measured (memory held, ...), free text; empty for most kernels.
    pub note: String,
}

impl Record {
    pub fn ratio(&self) -> f64 {
        self.value / self.reference_value
    }

    /// One JSON object: kernel, shape, variant, ms, gflops or gbps, reference, reference_value, ratio.
    pub fn to_json(&self) -> String {
        let key = if self.unit == "GFLOP/s" {
            "gflops"
        } else {
            "gbps"
        };
        format!(
            "{{\"kernel\":\"{}\",\"shape\":\"{}\",\"variant\":\"{}\",\"ms\":{:.4},\"{key}\":{:.3},\"reference\":\"{}\",\"reference_value\":{:.3},\"ratio\":{:.3},\"note\":\"{}\"}}",
            self.kernel,
            self.shape,
            self.variant,
            self.ms,
            self.value,
            self.reference,
            self.reference_value,
            self.ratio(),
            self.note
        )
    }

    /// One aligned table row.
    pub fn to_row(&self) -> String {
        format!(
            "{:<18} {:<16} {:<13} {:>10.3} {:>9.2} {:<8} {:<14} {:>9.2} {:>7.2}  {}",
            self.kernel,
            self.shape,
            self.variant,
            self.ms,
            self.value,
            self.unit,
            self.reference,
            self.reference_value,
            self.ratio(),
            self.note
        )
    }

    pub fn header() -> String {
        format!(
            "{:<18} {:<16} {:<13} {:>10} {:>9} {:<8} {:<14} {:>9} {:>7}",
            "kernel", "shape", "variant", "ms", "value", "unit", "reference", "ref value", "ratio"
        )
    }
}

impl Work {
    /// The rate of this work done in `seconds`, and its unit.
    fn rate(self, seconds: f64) -> (f64, &'static str) {
        match self {
            Work::Flops(f) => (f / seconds / 1e9, "GFLOP/s"),
            Work::Bytes(b) => (b / seconds / 1e9, "GB/s"),
        }
    }
}

/// A case's record from its median `seconds`, against the given reference.
fn record(case: &Case, seconds: f64, reference: &str, reference_value: f64) -> Record {
    let (value, unit) = case.work.rate(seconds);
    Record {
        kernel: case.kernel.to_string(),
        shape: case.shape.clone(),
        variant: case.variant.clone(),
        ms: seconds * 1e3,
        value,
        unit,
        reference: reference.to_string(),
        reference_value,
        note: String::new(),
    }
}

/// Times a case and turns it into a record against the given reference.
pub fn measure(
    gpu: &Gpu,
    case: &Case,
    warmup: usize,
    runs: usize,
    reference: &str,
    reference_value: f64,
) -> Result<Record> {
    let seconds = median_seconds(|| case.run(gpu), warmup, runs)?;
    Ok(record(case, seconds, reference, reference_value))
}

/// Times `case` and `reference` in alternating runs, so that drift in the machine's speed
/// hits both alike, and reports the case beside the reference's rate (in its own unit)
/// from those runs. The reference is named `name`.
pub fn measure_alternating(
    gpu: &Gpu,
    case: &Case,
    (reference, name): (&Case, &str),
    warmup: usize,
    runs: usize,
) -> Result<Record> {
    for _ in 0..warmup {
        reference.run(gpu)?;
        case.run(gpu)?;
    }
    let (mut reference_times, mut case_times) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        reference_times.push(median_seconds(|| reference.run(gpu), 0, 1)?);
        case_times.push(median_seconds(|| case.run(gpu), 0, 1)?);
    }
    let median = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let (reference_value, _) = reference.work.rate(median(reference_times));
    Ok(record(case, median(case_times), name, reference_value))
}

/// Times `case` and the plain copy of `n` elements in alternating runs (so drift in the
/// machine's speed hits both alike) and reports the case beside the copy's GB/s.
pub fn measure_against_copy(
    gpu: &Gpu,
    case: &Case,
    n: u32,
    warmup: usize,
    runs: usize,
) -> Result<Record> {
    if !matches!(case.work, Work::Bytes(_)) {
        return Err(Error::Invalid {
            what: "benchmark".into(),
            why: format!("{} is not memory-bound", case.kernel),
        });
    }
    let copy = copy_case(gpu, n);
    measure_alternating(gpu, case, (&copy, "copy"), warmup, runs)
}
