//! `Gpu`: the device, queue, adapter facts, pipeline cache and tuning cache that every launcher takes.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::bind_groups::BindGroupCache;
use super::open::BackendChoice;
use super::tuning::{DeviceId, TuningTable};
use super::wait::one_shot;
use crate::error::{Error, Result};

/// Most bind groups a `Gpu` of rezero's own (`Gpu::new`) keeps for reuse.
const BIND_GROUP_CACHE_ENTRIES: usize = 1 << 16;
/// Most bytes of buffers the cached bind groups may keep alive (see `gpu::bind_groups`).
const BIND_GROUP_CACHE_BYTES: u64 = 4 << 30;

/// How to pick the adapter. The default takes the best one: discrete, then integrated,
/// then software, preferring Vulkan/Metal/DX12 over GL.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Only consider adapters of this backend.
    pub backend: Option<BackendChoice>,
    /// Only consider adapters whose name contains this (case-insensitive).
    pub adapter: Option<String>,
    /// Build shaders with wgpu's runtime checks (bounds clamping, guarded integer
    /// division, bounded loops). Off by default: every launcher checks its sizes before it
    /// records a dispatch, which is what keeps each index a kernel forms in range. On for
    /// debugging a kernel (`--checked-shaders`); results must not differ.
    pub checked_shaders: bool,
    /// Directory of the tuning cache: the kernel variants measured fastest on this adapter
    /// and driver are kept there across runs (see [`crate::gpu::tuning`];
    /// [`crate::gpu::tuning::default_dir`] is the user's cache directory). `None`: choices
    /// last only as long as the `Gpu`.
    pub tuning_cache: Option<std::path::PathBuf>,
}

/// Locks `mutex`, taking its data even if a thread panicked while holding it. Every cache
/// of a `Gpu` stays valid after such a panic (an entry is inserted whole or not at all),
/// so one failed call must not fail every later one, as `lock().unwrap()` would.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Key of the pipeline cache: shader family, entry point and override constants, and for
/// a caller's shader (built through the unsafe `Gpu::pipeline`) its whole source, so that
/// it never shares an entry with one of rezero's shaders of the same name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub shader: &'static str,
    pub entry: &'static str,
    /// (name, value bits) of each override constant, in a fixed order.
    pub constants: Vec<(&'static str, u64)>,
    pub caller_source: Option<&'static str>,
}

/// A wgpu device and queue plus what rezero caches about them.
///
/// Cheap to share by reference; all caches are behind mutexes, so `&Gpu` is `Send + Sync`.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(crate) pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Uniform buffers by content, shared by dispatches with the same parameters.
    pub(crate) uniforms: Mutex<HashMap<Vec<u8>, wgpu::Buffer>>,
    /// Bind groups by (pipeline, uniform, buffers), reused by repeated dispatches.
    pub(crate) bind_groups: Mutex<BindGroupCache>,
    /// Kernel variant chosen by measurement, per tuning key (see `kernels::matmul`).
    tuned: Mutex<TuningTable>,
    /// Tuning classes `Auto` met with no choice in the table (it ran its default), each
    /// with what measuring it needs: a `kernels::autotune::TuneRequest`, which this layer
    /// keeps without knowing its type.
    untuned: Mutex<BTreeMap<String, Box<dyn Any + Send>>>,
    /// Validation errors the device reported outside an error scope (own devices only).
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Workgroup size of the one-workgroup-a-row kernels (softmax, layernorm, ...).
    row_workgroup: AtomicU32,
    /// Whether a probe found subgroups cut from consecutive local invocations (see
    /// `gpu::subgroups`).
    pub(crate) subgroups_consecutive: AtomicBool,
    /// Whether shader modules keep wgpu's runtime checks (see `GpuOptions::checked_shaders`).
    checked_shaders: bool,
    /// The profile being recorded, if any (see `gpu::profile`).
    pub(crate) profiler: Mutex<Option<super::profile::Profiler>>,
    /// 16-byte buffers bound where a kernel declares a vec4 view it will not touch, one per
    /// binding (a dispatch may not bind one buffer both read-only and writable).
    pub(crate) placeholders: std::sync::OnceLock<[wgpu::Buffer; 8]>,
    /// What [`Gpu::exclusive`] locks on backends that need it.
    serial: Mutex<()>,
    /// The cooperative-matrix configurations the adapter lists, where the device was opened
    /// with `EXPERIMENTAL_COOPERATIVE_MATRIX` (see [`Gpu::cooperative_matrices`]).
    cooperative: Vec<wgpu::CooperativeMatrixProperties>,
}

/// A thread's hold on a [`Gpu`] for a stretch of work (see [`Gpu::exclusive`]): the
/// device's lock on the GL backend, nothing elsewhere. Let go when dropped.
#[derive(Debug)]
pub struct Exclusive<'a> {
    _guard: Option<MutexGuard<'a, ()>>,
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

/// 256 invocations on GPUs; on software Vulkan one SIMD width (at least 8), because
/// there every barrier switches between all the SIMD groups of a workgroup: softmax over
/// 4096×256 runs about 7x faster with 8 invocations a row than with 256 on lavapipe.
fn default_row_workgroup(info: &wgpu::AdapterInfo) -> u32 {
    if info.device_type == wgpu::DeviceType::Cpu {
        info.subgroup_max_size.clamp(8, 256).next_power_of_two()
    } else {
        256
    }
}

impl Gpu {
    /// Opens the best adapter that matches `options`, with the adapter's own limits and
    /// the optional features (timestamps, f16, subgroups) it has. Async, as wgpu's adapter
    /// and device requests are: a native program blocks on it (with `pollster`, say), a
    /// browser awaits it.
    pub async fn new(options: &GpuOptions) -> Result<Gpu> {
        let adapter = super::open::choose_adapter(options).await?;
        Gpu::from_adapter(&adapter, options).await
    }

    /// Opens rezero's own device on an adapter the caller chose (a browser's, from
    /// `navigator.gpu` through wgpu's WebGPU backend), as [`Gpu::new`] does on the adapter
    /// it picks: the adapter's limits, the optional features it has, the caches and the
    /// subgroup probe. `options.backend` and `options.adapter` are not consulted.
    pub async fn from_adapter(adapter: &wgpu::Adapter, options: &GpuOptions) -> Result<Gpu> {
        let info = adapter.get_info();
        let (device, queue, cooperative) = super::open::open_device(adapter).await?;
        let mut gpu = Gpu::from_device(device, queue, info)
            .with_checked_shaders(options.checked_shaders)
            .with_cooperative_matrices(cooperative);
        // rezero's own device: a training step binds the same pool buffers every step, so
        // its bind groups are kept (a steady step creates none).
        gpu.set_bind_group_cache_limits(BIND_GROUP_CACHE_ENTRIES, BIND_GROUP_CACHE_BYTES);
        if let Some(dir) = &options.tuning_cache {
            gpu = gpu.with_tuning_cache(dir);
        }
        // Validation errors raised outside an error scope are kept for `Gpu::sync`.
        let sink = gpu.uncaptured.clone();
        gpu.device
            .on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                lock(&sink).push(e.to_string());
            }));
        // Whether the subgroup attention forward may run here (see `gpu::subgroups`).
        gpu.probe_subgroups().await?;
        Ok(gpu)
    }

    /// Wraps a device and queue that another program created. rezero leaves the device's
    /// error handler alone; it only adds its own caches of pipelines and uniforms. It keeps
    /// none of the caller's buffers: the bind-group cache is off (a launcher called on a
    /// compute pass makes a bind group for that dispatch alone; a [`crate::gpu::Prepared`]
    /// holds its own), until [`Gpu::set_bind_group_cache_limits`] turns it on.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Gpu {
        Gpu {
            device,
            queue,
            pipelines: Mutex::new(HashMap::new()),
            uniforms: Mutex::new(HashMap::new()),
            bind_groups: Mutex::new(BindGroupCache::new(0, 0)),
            tuned: Mutex::new(TuningTable::open(DeviceId::of(&info), None)),
            untuned: Mutex::new(BTreeMap::new()),
            uncaptured: Arc::new(Mutex::new(Vec::new())),
            row_workgroup: AtomicU32::new(default_row_workgroup(&info)),
            subgroups_consecutive: AtomicBool::new(false),
            info,
            checked_shaders: false,
            placeholders: std::sync::OnceLock::new(),
            profiler: Mutex::new(None),
            serial: Mutex::new(()),
            cooperative: Vec::new(),
        }
    }

    /// Tells this `Gpu` which cooperative-matrix configurations its adapter lists
    /// (`adapter.cooperative_matrix_properties()`), for a device opened with
    /// `EXPERIMENTAL_COOPERATIVE_MATRIX`: the tensor-core matmul runs only on a listed
    /// configuration. `Gpu::new` does this itself; a wrapped device (`from_device`) has
    /// none until told. Ignored (none kept) when the device lacks the feature.
    pub fn with_cooperative_matrices(
        mut self,
        configs: Vec<wgpu::CooperativeMatrixProperties>,
    ) -> Gpu {
        let coop = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        self.cooperative = if self.device.features().contains(coop) {
            configs
        } else {
            Vec::new()
        };
        self
    }

    /// The cooperative-matrix configurations this `Gpu` may use (see
    /// [`Gpu::with_cooperative_matrices`]).
    pub fn cooperative_matrices(&self) -> &[wgpu::CooperativeMatrixProperties] {
        &self.cooperative
    }

    /// Builds this `Gpu`'s shaders with wgpu's runtime checks on or off (off by default;
    /// see [`GpuOptions::checked_shaders`]). Call before the first dispatch.
    pub fn with_checked_shaders(mut self, checked: bool) -> Gpu {
        self.checked_shaders = checked;
        self.pipelines
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self
    }

    /// Forgets every cached bind group, releasing the buffers they kept alive. Call it
    /// after dropping buffers that were bound to rezero kernels if their memory must be
    /// freed now (otherwise the cache's bounds release it in time).
    pub fn clear_bind_groups(&self) {
        lock(&self.bind_groups).clear();
    }

    /// How many bind groups this `Gpu` has created (a steady training step adds none).
    pub fn bind_groups_created(&self) -> u64 {
        lock(&self.bind_groups).created()
    }

    /// Bind groups cached now, and the bytes of the distinct buffers they keep alive.
    pub fn bind_groups_cached(&self) -> (usize, u64) {
        let cache = lock(&self.bind_groups);
        (cache.len(), cache.held_bytes())
    }

    /// Bounds the bind-group cache; the least recently used entries go first. `Gpu::new`
    /// keeps 65,536 entries and 4 GiB of buffers; `Gpu::from_device` keeps none (0 entries
    /// turns the cache off). A device with little memory, or a program that binds many
    /// short-lived buffers, may want a smaller byte bound.
    pub fn set_bind_group_cache_limits(&self, max_entries: usize, max_bytes: u64) {
        lock(&self.bind_groups).set_limits(max_entries, max_bytes);
    }

    /// Whether this `Gpu` builds its shaders with wgpu's runtime checks.
    pub fn checked_shaders(&self) -> bool {
        self.checked_shaders
    }

    /// Adapter name, backend, driver and device type.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was opened with (the adapter's own, for `Gpu::new`).
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// The optional features the device was opened with.
    pub fn features(&self) -> wgpu::Features {
        self.device.features()
    }

    /// True for CPU (software) adapters such as lavapipe, where barriers are expensive.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Invocations per workgroup of the kernels that give one workgroup to each row
    /// (softmax, layernorm, cross-entropy, row sums).
    pub fn row_workgroup_size(&self) -> u32 {
        self.row_workgroup.load(Ordering::Relaxed)
    }

    /// Overrides [`Gpu::row_workgroup_size`] (a power of two within the device's limit), e.g.
    /// to test the GPU setting on a software device.
    pub fn set_row_workgroup_size(&self, size: u32) -> Result<()> {
        let limit = self.limits().max_compute_invocations_per_workgroup.min(256);
        if !size.is_power_of_two() || size > limit {
            return Err(Error::Invalid {
                what: "row workgroup size".into(),
                why: format!("{size} is not a power of two up to {limit}"),
            });
        }
        self.row_workgroup.store(size, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps this `Gpu`'s tuning choices in the cache directory `dir` (see
    /// [`GpuOptions::tuning_cache`]), loading what is already there.
    pub fn with_tuning_cache(self, dir: &std::path::Path) -> Gpu {
        *lock(&self.tuned) = TuningTable::open(DeviceId::of(&self.info), Some(dir));
        self
    }

    /// The variant chosen for this tuning key, if any (see [`crate::gpu::tuning`]).
    pub fn tuned(&self, key: &str) -> Option<String> {
        lock(&self.tuned).get(key).map(str::to_string)
    }

    /// Records the variant chosen for a tuning key (and saves the cache file, if any).
    pub fn set_tuned(&self, key: &str, variant: &str) {
        lock(&self.tuned).set(key, variant);
        lock(&self.untuned).remove(key);
    }

    /// Notes a tuning class that ran its default for want of a choice (the first request
    /// of a class is kept; later ones allocate nothing).
    pub(crate) fn note_untuned(&self, key: &str, request: impl FnOnce() -> Box<dyn Any + Send>) {
        let mut untuned = lock(&self.untuned);
        if !untuned.contains_key(key) {
            untuned.insert(key.to_string(), request());
        }
    }

    /// The keys of the classes that ran their default so far (see
    /// `kernels::autotune::take_untuned`).
    pub fn untuned_keys(&self) -> Vec<String> {
        lock(&self.untuned).keys().cloned().collect()
    }

    /// Takes the untuned classes' requests, in key order.
    pub(crate) fn take_untuned(&self) -> Vec<Box<dyn Any + Send>> {
        std::mem::take(&mut *lock(&self.untuned))
            .into_values()
            .collect()
    }

    /// Every kernel choice in force on this `Gpu`, by tuning class.
    pub fn tuning_in_force(&self) -> std::collections::BTreeMap<String, String> {
        lock(&self.tuned).in_force()
    }

    /// Makes these kernel choices win for the rest of this `Gpu`'s life without saving
    /// them (a resumed run repeats the choices of the run it continues).
    pub fn pin_tuning(&self, choices: &std::collections::BTreeMap<String, String>) {
        lock(&self.tuned).pin(choices);
    }

    /// The whole tuning table as file text, and its cache file (if any).
    pub fn tuning_table(&self) -> (String, Option<std::path::PathBuf>) {
        let table = lock(&self.tuned);
        (table.to_text(), table.file().map(|p| p.to_path_buf()))
    }

    /// Holds this device for one thread's stretch of work where its backend needs that.
    ///
    /// wgpu's GL backend has one GL context an adapter, and every GL call locks it with a
    /// 6-second timeout. A software GL driver (Mesa's llvmpipe) compiles a shader and runs
    /// a dispatch inside `queue.submit`, holding that lock for longer on a cold shader
    /// cache; a second thread's call on the same device (a buffer created, say) then panics
    /// with "Could not lock adapter context". On GL the hold is a per-device lock: threads
    /// that share one `Gpu` (a test harness does) each hold it around their work, buffers
    /// dropped included. On Vulkan, Metal, DX12 and WebGPU it holds nothing, and threads
    /// share the device freely. rezero itself records from one thread and never takes it.
    pub fn exclusive(&self) -> Exclusive<'_> {
        let needed = self.info.backend == wgpu::Backend::Gl;
        Exclusive {
            _guard: needed.then(|| lock(&self.serial)),
        }
    }

    /// Resolves when the work submitted so far is done, then reports any validation error
    /// the device raised outside an error scope since the last call. On native backends
    /// awaiting it waits on the device; in a browser the event loop runs meanwhile.
    pub async fn sync(&self) -> Result<()> {
        let (done, waiting) = one_shot();
        self.queue.on_submitted_work_done(move || done.set(()));
        self.poll_until(None)?;
        if waiting.await.is_none() {
            return Err(super::buffers::dropped_callback("the submitted work"));
        }
        self.take_uncaptured()
    }

    /// Native backends: waits on the device until submission `index` (all work, when
    /// `None`) is done, which also runs the callbacks waiting on it. WebGPU: nothing (the
    /// browser runs them). Called inside the futures of reads and `sync`, so a native
    /// thread waits only where its caller awaits one of those (the one other wait is the
    /// tape's, between the chunks of a step of over 4,096 ops: `Tape::submit_chunk`).
    pub(crate) fn poll_until(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let wait = wgpu::PollType::Wait {
            submission_index: index,
            timeout: None,
        };
        self.device
            .poll(wait)
            .map(drop)
            .map_err(|e| Error::Readback(e.to_string()))
    }

    /// The validation errors the device raised outside an error scope since the last call,
    /// as one error (own devices only: `from_device` leaves the handler to its program).
    pub(crate) fn take_uncaptured(&self) -> Result<()> {
        let mut errors = lock(&self.uncaptured);
        if errors.is_empty() {
            Ok(())
        } else {
            let why = errors.join("; ");
            errors.clear();
            Err(Error::DeviceError {
                adapter: self.info.name.clone(),
                why,
            })
        }
    }
}
