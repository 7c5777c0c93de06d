//! Storage buffers: upload, zero-filled, the one readback helper, and a reusing pool.

use std::collections::HashMap;

use wgpu::util::DeviceExt;

use super::context::Gpu;
use super::wait::one_shot;
use crate::error::{Error, Result};

/// Usage of every tensor buffer rezero creates: bindable as storage, copyable both ways.
pub const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// The element types rezero's kernels read and write: 4-byte f32, u32 and i32, and the
/// 2-byte `half::f16` of `--precision f16`. Uploads, writes and reads are bounded by it, so
/// an untyped float literal (`&[1.0, 2.0]`, which would otherwise default to f64) is read
/// as f32, never as a buffer of 8-byte values.
pub trait Element: bytemuck::Pod + sealed::Sealed {}

impl Element for f32 {}
impl Element for u32 {}
impl Element for i32 {}
impl Element for half::f16 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
    impl Sealed for half::f16 {}
}

impl Gpu {
    /// A storage buffer holding `data`.
    pub fn upload<T: Element>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        // wgpu rejects zero-sized mapped buffers; keep at least one element's room.
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() {
            return self.zeroed(label, 4);
        }
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: STORAGE_USAGE,
            })
    }

    /// A zero-filled storage buffer of `bytes` bytes (rounded up to a multiple of 4).
    pub fn zeroed(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        })
    }

    /// A zero-filled buffer of `len` f32 values.
    pub fn zeroed_f32(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.zeroed(label, len as u64 * 4)
    }

    /// `buffer`, or placeholder number `slot` when `buffer` is smaller than one vector of
    /// `vector_bytes` (16 for vec4<f32>, 8 for vec4<f16>): for a binding that a kernel
    /// declares as an array of such vectors but, for this shape, never touches. Give each
    /// binding of a dispatch its own slot.
    pub fn vec4_view_or_placeholder<'a>(
        &'a self,
        buffer: &'a wgpu::Buffer,
        slot: usize,
        vector_bytes: u64,
    ) -> &'a wgpu::Buffer {
        if buffer.size() >= vector_bytes {
            return buffer;
        }
        self.placeholder(slot)
    }

    /// Placeholder number `slot` (0 to 7): a 16-byte buffer for a binding that a kernel
    /// declares but, for this launch, never touches. WebGPU refuses a dispatch that binds
    /// one buffer twice where either binding is writable (native backends let it pass), so
    /// a writable binding is never filled with another binding's buffer: give each unused
    /// binding of a dispatch its own slot.
    pub fn placeholder(&self, slot: usize) -> &wgpu::Buffer {
        let all = self
            .placeholders
            .get_or_init(|| std::array::from_fn(|_| self.zeroed("placeholder", 16)));
        &all[slot.min(all.len() - 1)]
    }

    /// An output a kernel writes either as scalars or, with `vec4`, as whole vec4s through
    /// a second binding: (scalar binding, vec4 binding), `buffer` in the one used and
    /// placeholder `slot` in the other (binding it twice is refused on WebGPU).
    pub fn scalar_or_vec4_output<'a>(
        &'a self,
        buffer: &'a wgpu::Buffer,
        vec4: bool,
        slot: usize,
    ) -> (&'a wgpu::Buffer, &'a wgpu::Buffer) {
        match vec4 {
            true => (self.placeholder(slot), buffer),
            false => (buffer, self.placeholder(slot)),
        }
    }

    /// Copies the first `len` elements of `buffer` to the host: a staging copy is submitted
    /// and mapped, and the future resolves when that is done (on native backends awaiting it
    /// waits on the device; in a browser the event loop runs meanwhile).
    pub async fn read<T: Element>(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
        let bytes = (len as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        if bytes > buffer.size() {
            return Err(Error::Shape {
                op: "read",
                expected: format!("a buffer of at least {len} elements ({bytes} bytes)"),
                got: format!("{} bytes", buffer.size()),
            });
        }
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes.next_multiple_of(4));
        let copied = self.queue.submit([encoder.finish()]);
        let (mapped, waiting) = one_shot();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| mapped.set(r));
        self.poll_until(Some(copied))?;
        match waiting.await {
            Some(mapped) => mapped.map_err(|e| Error::Readback(e.to_string()))?,
            None => return Err(dropped_callback("a buffer's mapping")),
        }
        self.take_uncaptured()?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Readback(e.to_string()))?;
        let out = bytemuck::cast_slice::<u8, T>(&view[..bytes as usize]).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Copies `len` f32 values of `buffer` to the host.
    pub async fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        self.read::<f32>(buffer, len).await
    }

    /// Overwrites the start of `buffer` with `data`. wgpu writes whole 4-byte words: an
    /// odd number of f16 values also zeroes the 2 bytes after the last one.
    pub fn write<T: Element>(&self, buffer: &wgpu::Buffer, data: &[T]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.len() % 4 == 0 {
            self.queue.write_buffer(buffer, 0, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            self.queue.write_buffer(buffer, 0, &padded);
        }
    }
}

/// The error for a wgpu callback dropped without being called (the device was lost).
pub(crate) fn dropped_callback(what: &str) -> Error {
    Error::Readback(format!(
        "{what} never completed: the device dropped its callback"
    ))
}

/// Reuses storage buffers by size class (powers of two from 256 bytes), so that a training
/// loop that asks for the same sizes every step allocates nothing after the first step.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    bytes_held: u64,
    peak_bytes_held: u64,
    allocations: u64,
}

impl BufferPool {
    pub fn new() -> BufferPool {
        BufferPool::default()
    }

    /// The size class a request of `bytes` lands in (None past 2⁶³ bytes).
    pub fn size_class(bytes: u64) -> Option<u64> {
        bytes.max(256).checked_next_power_of_two()
    }

    /// A buffer of at least `len` f32 values, reused when one of its size class is free.
    /// Its contents are whatever the last user left; kernels that need zeros must fill.
    pub fn take_f32(&mut self, gpu: &Gpu, len: usize) -> wgpu::Buffer {
        let class = Self::size_class(len as u64 * 4).expect("a buffer of over 2^61 floats");
        if let Some(buffer) = self.free.get_mut(&class).and_then(Vec::pop) {
            return buffer;
        }
        self.allocations += 1;
        self.bytes_held += class;
        self.peak_bytes_held = self.peak_bytes_held.max(self.bytes_held);
        gpu.zeroed("pool", class)
    }

    /// Returns a buffer taken from this pool so a later `take_f32` can reuse it.
    pub fn give(&mut self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        debug_assert!(class.is_power_of_two(), "buffer did not come from a pool");
        self.free.entry(class).or_default().push(buffer);
    }

    /// Drops every free buffer, releasing its memory.
    pub fn trim(&mut self) {
        for (class, buffers) in self.free.drain() {
            self.bytes_held -= class * buffers.len() as u64;
        }
    }

    /// Bytes of all buffers the pool created and has not trimmed (in use or free).
    pub fn bytes_held(&self) -> u64 {
        self.bytes_held
    }

    /// The most bytes the pool ever held at once.
    pub fn peak_bytes_held(&self) -> u64 {
        self.peak_bytes_held
    }

    /// How many buffers the pool has created in all.
    pub fn allocations(&self) -> u64 {
        self.allocations
    }
}
