//! Where a launcher's dispatches go. Every launcher takes `&mut dyn Recorder`, which is
//! a `wgpu::ComputePass` (the dispatches are recorded now), a [`Prepared`] (they are built
//! once, pipeline, uniform and bind group, and recorded later by [`Prepared::record`], as
//! often as the caller likes, at the cost of three wgpu calls a dispatch), a [`Discard`]
//! (a dry run: sizes checked and kernels chosen, nothing built) or a [`KernelList`] (a dry
//! run that lists the pipelines it would build).
//!
//! ```no_run
//! # async fn demo(gpu: &rezero::Gpu, x: &wgpu::Buffer, y: &wgpu::Buffer) -> rezero::Result<()> {
//! use rezero::gpu::Prepared;
//! use rezero::kernels::{Dtype, elementwise::relu};
//! let mut prepared = Prepared::new();
//! relu(gpu, &mut prepared, y, x, 256, Dtype::F32)?; // checks sizes, builds, records nothing
//! let mut encoder = gpu.device.create_command_encoder(&Default::default());
//! {
//!     let mut pass = encoder.begin_compute_pass(&Default::default());
//!     prepared.record(&mut pass); // sets the pipeline and bind group, dispatches
//! }
//! gpu.queue.submit([encoder.finish()]);
//! # Ok(()) }
//! ```

use super::context::Gpu;
use super::pipeline::{Kernel, Shader};
use crate::error::Result;

/// What a launcher hands its recorder: one dispatch whose sizes it has checked.
pub struct Dispatch<'a> {
    pub(crate) kernel: &'a Kernel<'a>,
    /// The uniform's bytes (binding 0).
    pub(crate) params: &'a [u8],
    /// Storage buffers by binding number.
    pub(crate) buffers: &'a [(u32, &'a wgpu::Buffer)],
    pub(crate) groups: [u32; 3],
}

pub(crate) mod sealed {
    /// The one method a recorder has; private to the crate, so that only launchers (which
    /// check every size first) can hand a recorder a dispatch.
    pub trait Sink {
        fn take(&mut self, gpu: &super::Gpu, dispatch: super::Dispatch<'_>) -> super::Result<()>;
    }
}

/// A compute pass, a [`Prepared`] or a [`Discard`]: what every launcher records into.
pub trait Recorder: sealed::Sink {}

impl<T: sealed::Sink + ?Sized> Recorder for T {}

impl sealed::Sink for wgpu::ComputePass<'_> {
    /// Records now: the pipeline and uniform from the `Gpu`'s caches, the bind group from
    /// its bind-group cache when that is on (see `Gpu::set_bind_group_cache_limits`).
    fn take(&mut self, gpu: &Gpu, d: Dispatch<'_>) -> Result<()> {
        let pipeline = gpu.cached_pipeline(d.kernel)?;
        let uniform = gpu.uniform(d.params);
        let bind_group = gpu.bind_group(d.kernel.entry, &pipeline, &uniform, d.buffers);
        gpu.profiled(self, d.kernel.entry, d.kernel.work, |pass| {
            dispatch(pass, &pipeline, &bind_group, d.groups)
        });
        Ok(())
    }
}

/// The three calls a recorded dispatch is: set the pipeline, set the bind group, dispatch.
fn dispatch(
    pass: &mut wgpu::ComputePass<'_>,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    groups: [u32; 3],
) {
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
}

/// One dispatch, built.
#[derive(Clone, Debug)]
struct Built {
    pipeline: wgpu::ComputePipeline,
    /// The parameters (also held by the bind group; kept here so that what a dispatch
    /// holds is plain to see).
    _uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// The storage buffers the bind group binds (it keeps them alive either way).
    buffers: Vec<wgpu::Buffer>,
    groups: [u32; 3],
}

/// Launches built once and recorded many times: each holds its pipeline, its uniform and
/// its bind group (and through it the caller's buffers, for as long as the `Prepared`
/// lives). Build it by passing `&mut prepared` to launchers in place of a compute pass;
/// nothing is recorded, submitted or waited for then. [`Prepared::record`] then only sets
/// state and dispatches, in the order the launchers were called.
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    dispatches: Vec<Built>,
}

impl Prepared {
    pub fn new() -> Prepared {
        Prepared::default()
    }

    /// Records every dispatch into `pass`: set the pipeline, set the bind group, dispatch.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            dispatch(pass, &d.pipeline, &d.bind_group, d.groups);
        }
    }

    /// Dispatches held (a launcher may make several: a backward and its reduction, say).
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// Every storage buffer the dispatches bind, in order, repeats included: what this
    /// `Prepared` keeps alive besides its pipelines and uniforms.
    pub fn buffers(&self) -> impl Iterator<Item = &wgpu::Buffer> {
        self.dispatches.iter().flat_map(|d| &d.buffers)
    }
}

impl sealed::Sink for Prepared {
    /// Builds the dispatch: pipeline (from the `Gpu`'s cache), a uniform and a bind group
    /// of its own (never cached: the `Prepared` owns them).
    fn take(&mut self, gpu: &Gpu, d: Dispatch<'_>) -> Result<()> {
        let pipeline = gpu.cached_pipeline(d.kernel)?;
        let uniform = gpu.uniform(d.params);
        let bind_group = gpu.make_bind_group(d.kernel.entry, &pipeline, &uniform, d.buffers);
        self.dispatches.push(Built {
            pipeline,
            _uniform: uniform,
            bind_group,
            buffers: d.buffers.iter().map(|&(_, b)| b.clone()).collect(),
            groups: d.groups,
        });
        Ok(())
    }
}

/// Takes dispatches and keeps nothing: no pipeline is built, nothing is recorded. A
/// launcher given one still checks every size and makes every `Auto` choice, so a dry run
/// of a step (`Tape::dry`) finds the tuning classes it meets before anything is compiled
/// (`kernels::autotune::take_untuned`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl sealed::Sink for Discard {
    fn take(&mut self, _gpu: &Gpu, _dispatch: Dispatch<'_>) -> Result<()> {
        Ok(())
    }
}

/// One pipeline a launch asks for: its shader, entry point and override constants (in the
/// order the launcher gives them).
#[derive(Clone, Debug)]
pub struct KernelConfig {
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
}

impl KernelConfig {
    /// `shader/entry` followed by each `NAME=value`: one line that names the configuration.
    pub fn name(&self) -> String {
        let mut name = format!("{}/{}", self.shader.name(), self.entry);
        for (constant, value) in &self.constants {
            name.push_str(&format!(" {constant}={value}"));
        }
        name
    }
}

/// A dry run, as [`Discard`], that keeps the configuration of every pipeline its launches
/// would build (repeats included): what a caller compiles ahead of time, and what
/// `tests/translate.rs` hands to every backend's shader compiler.
#[derive(Clone, Debug, Default)]
pub struct KernelList {
    pub kernels: Vec<KernelConfig>,
}

impl sealed::Sink for KernelList {
    fn take(&mut self, _gpu: &Gpu, d: Dispatch<'_>) -> Result<()> {
        self.kernels.push(KernelConfig {
            shader: d.kernel.shader,
            entry: d.kernel.entry,
            constants: d.kernel.constants.to_vec(),
        });
        Ok(())
    }
}
