//! Pipeline cache keyed by (shader, entry point, override constants), built inside error
//! scopes, and the one dispatch helper every launcher goes through.

use wgpu::util::DeviceExt;

use super::bind_groups::BindKey;
use super::context::{Gpu, PipelineKey, lock};
use super::profile::Work;
use super::record::{Dispatch, Recorder};
use crate::error::{Error, Result};

/// Most distinct uniform buffers kept for reuse (see `Gpu::uniform`).
const UNIFORM_CACHE_LIMIT: usize = 1 << 16;

/// A WGSL source file: its family name (for errors and cache keys), its text, and the size
/// of the Rust struct its launchers pass as the uniform `p` (`tests/shaders_validate.rs`
/// checks it against the WGSL struct's size with naga).
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub(crate) name: &'static str,
    pub(crate) wgsl: &'static str,
    pub(crate) uniform_bytes: usize,
}

impl Shader {
    /// A shader of the caller's own, for the unsafe [`Gpu::pipeline`].
    pub const fn new(name: &'static str, wgsl: &'static str, uniform_bytes: usize) -> Shader {
        Shader {
            name,
            wgsl,
            uniform_bytes,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn wgsl(&self) -> &'static str {
        self.wgsl
    }

    /// Bytes of the uniform struct `p` its launchers bind at binding 0.
    pub fn uniform_bytes(&self) -> usize {
        self.uniform_bytes
    }
}

/// One compute entry point of a shader, with its override constants, and the work one
/// dispatch of it does (what a profile's rates are computed from).
#[derive(Clone, Debug)]
pub struct Kernel<'a> {
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: &'a [(&'static str, f64)],
    pub work: Work,
}

impl<'a> Kernel<'a> {
    pub fn new(shader: Shader, entry: &'static str) -> Kernel<'a> {
        Kernel::with(shader, entry, &[])
    }

    /// An entry point with override constants (its work uncounted until [`Kernel::work`]).
    pub fn with(
        shader: Shader,
        entry: &'static str,
        constants: &'a [(&'static str, f64)],
    ) -> Kernel<'a> {
        Kernel {
            shader,
            entry,
            constants,
            work: Work::Uncounted,
        }
    }

    /// The same kernel, counting `work` per dispatch.
    pub fn work(mut self, work: Work) -> Kernel<'a> {
        self.work = work;
        self
    }
}

/// Workgroup counts for `groups` workgroups laid out in x (up to the per-dimension limit)
/// then y. Shaders recover the flat index as `wg.y * num_workgroups.x + wg.x`.
pub(crate) fn grid_1d(groups: u64, max_per_dim: u32) -> [u32; 3] {
    let groups = groups.max(1);
    let x = groups.min(max_per_dim as u64);
    let y = groups.div_ceil(x);
    [x as u32, y as u32, 1]
}

impl Gpu {
    /// The compute pipeline for `kernel`, built on first use and cached.
    ///
    /// # Safety
    ///
    /// The pipeline is built without wgpu's runtime bounds checks unless this `Gpu` builds
    /// checked shaders ([`Gpu::checked_shaders`]). The caller must bind, to every dispatch
    /// of it, buffers that hold every element the shader can index for that dispatch's
    /// workgroups and parameters, and must keep its loops bounded and its divisors nonzero:
    /// a shader that reads or writes past a buffer's end is undefined behaviour on the GPU.
    /// rezero's own shaders are reachable safely only through the launchers of
    /// [`crate::kernels`], which check every size before they record; a pipeline built here
    /// is cached apart from theirs (by its whole source), whatever the shader's name.
    pub unsafe fn pipeline(&self, kernel: &Kernel) -> Result<wgpu::ComputePipeline> {
        self.build_pipeline(kernel, Some(kernel.shader.wgsl))
    }

    /// [`Gpu::pipeline`] for the launchers, which check their sizes first.
    pub(crate) fn cached_pipeline(&self, kernel: &Kernel) -> Result<wgpu::ComputePipeline> {
        self.build_pipeline(kernel, None)
    }

    /// The pipeline of `kernel` from the cache, or built and cached; `caller_source` is
    /// the source of a caller's shader (its cache key), `None` for rezero's own.
    fn build_pipeline(
        &self,
        kernel: &Kernel,
        caller_source: Option<&'static str>,
    ) -> Result<wgpu::ComputePipeline> {
        let key = PipelineKey {
            shader: kernel.shader.name,
            entry: kernel.entry,
            constants: kernel
                .constants
                .iter()
                .map(|&(n, v)| (n, v.to_bits()))
                .collect(),
            caller_source,
        };
        if let Some(p) = lock(&self.pipelines).get(&key) {
            return Ok(p.clone());
        }
        let scope = ErrorScope::push(&self.device);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(kernel.shader.name),
            source: wgpu::ShaderSource::Wgsl(kernel.shader.wgsl.into()),
        };
        let checks = if self.checked_shaders() {
            wgpu::ShaderRuntimeChecks::checked()
        } else {
            wgpu::ShaderRuntimeChecks::unchecked()
        };
        // SAFETY: without runtime checks a shader may not index out of bounds, divide by
        // zero or loop forever. Every launcher in `kernels` validates its buffer lengths
        // and dimensions (all nonzero) before it records a dispatch, and each kernel only
        // forms indices below the lengths so validated; its loops are bounded by those
        // dimensions. `tests/checked_modes.rs` runs every kernel family at edge sizes both
        // ways and requires identical results. A caller's own shader comes through the
        // unsafe `Gpu::pipeline`, whose contract passes this obligation on.
        let module = unsafe { self.device.create_shader_module_trusted(desc, checks) };
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: None,
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: kernel.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(message) = scope.pop() {
            return Err(Error::Pipeline {
                shader: kernel.shader.name,
                entry: kernel.entry,
                message,
            });
        }
        lock(&self.pipelines).insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A uniform buffer holding `params`, shared by every dispatch with the same bytes: a
    /// training loop repeats the same shapes, so after its first step it allocates none.
    /// (One allocation per dispatch made a 4,000-layer step quadratic in the allocator.)
    pub(crate) fn uniform(&self, params: &[u8]) -> wgpu::Buffer {
        let mut bytes = params.to_vec();
        bytes.resize(bytes.len().next_multiple_of(16).max(16), 0);
        let mut cache = lock(&self.uniforms);
        if let Some(buffer) = cache.get(&bytes) {
            return buffer.clone();
        }
        if cache.len() >= UNIFORM_CACHE_LIMIT {
            // Values that keep changing (an optimizer's step count) would grow it forever;
            // buffers still in use stay alive through their bind groups.
            cache.clear();
        }
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        cache.insert(bytes, buffer.clone());
        buffer
    }

    /// Errors unless `bytes` fits in one storage binding on this device.
    pub fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.limits().max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(Error::Limits {
                what: format!("{what}: storage binding size in bytes"),
                needed: bytes,
                limit,
            });
        }
        Ok(())
    }

    /// Errors unless a kernel's workgroup memory and size fit this device.
    pub fn check_workgroup(&self, what: &str, storage_bytes: u64, invocations: u32) -> Result<()> {
        let limits = self.limits();
        let limit = limits.max_compute_workgroup_storage_size as u64;
        if storage_bytes > limit {
            return Err(Error::Limits {
                what: format!("{what}: workgroup storage in bytes"),
                needed: storage_bytes,
                limit,
            });
        }
        let limit = limits.max_compute_invocations_per_workgroup;
        if invocations > limit {
            return Err(Error::Limits {
                what: format!("{what}: invocations per workgroup"),
                needed: invocations as u64,
                limit: limit as u64,
            });
        }
        Ok(())
    }

    /// Records one dispatch of `kernel` into `pass`: `params` is bound at binding 0 as a
    /// uniform, `buffers` at bindings 1, 2, ... (outputs first, then inputs).
    pub(crate) fn dispatch<P: bytemuck::Pod>(
        &self,
        pass: &mut dyn Recorder,
        kernel: &Kernel,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<()> {
        let numbered: Vec<(u32, &wgpu::Buffer)> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32 + 1, *b))
            .collect();
        self.dispatch_bound(pass, kernel, params, &numbered, groups)
    }

    /// Like [`Gpu::dispatch`] with each buffer's binding number given, for entry points
    /// that share some bindings with others of their shader and skip the rest. The one
    /// place every launcher's dispatch goes through; the launcher has checked its sizes.
    pub(crate) fn dispatch_bound<P: bytemuck::Pod>(
        &self,
        pass: &mut dyn Recorder,
        kernel: &Kernel,
        params: &P,
        buffers: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) -> Result<()> {
        let max = self.limits().max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Limits {
                what: format!("{}: workgroups per dimension", kernel.entry),
                needed: *groups.iter().max().unwrap() as u64,
                limit: max as u64,
            });
        }
        for (_, b) in buffers {
            self.check_binding(kernel.entry, b.size())?;
        }
        if groups.contains(&0) {
            return Ok(());
        }
        debug_assert_eq!(
            std::mem::size_of::<P>(),
            kernel.shader.uniform_bytes,
            "{}: the uniform passed is not the shader's",
            kernel.entry
        );
        let dispatch = Dispatch {
            kernel,
            params: bytemuck::bytes_of(params),
            buffers,
            groups,
        };
        pass.take(self, dispatch)
    }

    /// The bind group of a dispatch recorded now: from the bind-group cache when it is on,
    /// else made for this dispatch alone.
    pub(crate) fn bind_group(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        uniform: &wgpu::Buffer,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let mut cache = lock(&self.bind_groups);
        if !cache.enabled() {
            cache.count_uncached();
            drop(cache);
            return self.make_bind_group(label, pipeline, uniform, buffers);
        }
        let key = BindKey {
            pipeline: pipeline.clone(),
            uniform: uniform.clone(),
            buffers: buffers.iter().map(|&(i, b)| (i, b.clone())).collect(),
        };
        cache.get_or_make(key, |key| {
            let buffers: Vec<(u32, &wgpu::Buffer)> =
                key.buffers.iter().map(|(i, b)| (*i, b)).collect();
            self.make_bind_group(label, &key.pipeline, &key.uniform, &buffers)
        })
    }

    pub(crate) fn make_bind_group(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        uniform: &wgpu::Buffer,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (binding, b) in buffers {
            entries.push(wgpu::BindGroupEntry {
                binding: *binding,
                resource: b.as_entire_binding(),
            });
        }
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Runs `record` in a fresh encoder and compute pass and submits it; the future
    /// resolves when the work is done (see [`Gpu::sync`]). Convenient for tests, benches
    /// and one-off work; training records many ops per pass.
    pub async fn run<F>(&self, record: F) -> Result<()>
    where
        F: FnOnce(&mut wgpu::ComputePass<'_>) -> Result<()>,
    {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let timestamps = self.profile_pass_timestamps();
            let mut pass = super::profile::begin_pass(&mut encoder, None, timestamps.as_ref());
            record(&mut pass)?;
        }
        self.queue.submit([encoder.finish()]);
        self.sync().await
    }
}

/// A validation error scope around one pipeline's creation. On native wgpu the scope's
/// answer is ready as soon as it is popped, so it is read without waiting (the library
/// never blocks on a future). On WebGPU the answer comes back later through a promise,
/// so no scope is pushed there: a failed build shows as the device's uncaptured error.
struct ErrorScope {
    #[cfg(not(target_arch = "wasm32"))]
    guard: wgpu::ErrorScopeGuard,
}

impl ErrorScope {
    fn push(device: &wgpu::Device) -> ErrorScope {
        #[cfg(target_arch = "wasm32")]
        let _ = device;
        ErrorScope {
            #[cfg(not(target_arch = "wasm32"))]
            guard: device.push_error_scope(wgpu::ErrorFilter::Validation),
        }
    }

    /// The validation error raised inside the scope, if any.
    fn pop(self) -> Option<String> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            use std::future::Future;
            let mut answer = std::pin::pin!(self.guard.pop());
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            match answer.as_mut().poll(&mut context) {
                std::task::Poll::Ready(error) => error.map(|e| e.to_string()),
                // Not wgpu-core's behaviour; were it ever pending, the error (if any)
                // would be lost rather than waited for.
                std::task::Poll::Pending => None,
            }
        }
        #[cfg(target_arch = "wasm32")]
        None
    }
}
