//! The `Tape`: slots for every tensor of a step, the ops recorded on them, the open
//! command encoder and compute pass they are recorded into, and the buffer pool that
//! activations and gradients come from.

use crate::gpu::{BufferPool, Discard, Error, Gpu, Recorder, Result};
use crate::kernels::{Dtype, elementwise};

pub(crate) use super::op::{Node, Op, Slot};
use super::tensor::{Param, Tensor, check_data_len};

/// Records ops on GPU tensors as they run forward and replays them in reverse in
/// [`Tape::backward`]. Lives across training steps: [`Tape::reset`] ends a step and hands
/// its buffers back to the pool, so steady-state steps allocate nothing.
pub struct Tape<'g> {
    pub(crate) gpu: &'g Gpu,
    pub(crate) pool: BufferPool,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Set for a dry tape (`Tape::dry`): ops record into it, and nothing is built or run.
    dry: Option<Discard>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) slots: Vec<Slot>,
    /// Pool buffers handed out this step; back to the pool at `reset`.
    taken: Vec<wgpu::Buffer>,
    /// Pool buffers holding gradients of the last backward; back to the pool at the next
    /// backward or at `reset`.
    grads_taken: Vec<wgpu::Buffer>,
    grad_enabled: bool,
    /// Scratch for two-stage reductions, shared by every op: the dispatches that use it
    /// run one after another, so one buffer serves them all. Grows as needed.
    scratch: Option<wgpu::Buffer>,
    /// Ops recorded into the open encoder.
    recorded: usize,
    /// The last submission, waited for before the next chunk of a long step goes in.
    in_flight: Option<wgpu::SubmissionIndex>,
    /// Command buffers submitted so far.
    submissions: u64,
    /// Dropout for the step being recorded (`set_dropout`), the sites drawn so far this
    /// step, and the one-element buffer holding the step's key.
    pub(crate) dropout: Option<super::dropout::DropoutStep>,
    pub(crate) dropout_sites: u32,
    pub(crate) dropout_step: Option<wgpu::Buffer>,
    /// The activations' type (`Tape::set_precision`): f32, or f16 for mixed precision.
    pub(crate) dtype: Dtype,
    /// The loss scaler's state the cross-entropy multiplies its gradient by (mixed
    /// precision), if any.
    pub(crate) loss_scale: Option<wgpu::Buffer>,
}

/// Ops recorded into one command buffer before a long step is submitted in chunks.
const OPS_PER_SUBMISSION: usize = 4096;

impl<'g> Tape<'g> {
    pub fn new(gpu: &'g Gpu) -> Tape<'g> {
        Tape {
            gpu,
            pool: BufferPool::new(),
            encoder: None,
            pass: None,
            dry: None,
            nodes: Vec::new(),
            slots: Vec::new(),
            taken: Vec::new(),
            grads_taken: Vec::new(),
            grad_enabled: true,
            scratch: None,
            recorded: 0,
            in_flight: None,
            submissions: 0,
            dropout: None,
            dropout_sites: 0,
            dropout_step: None,
            dtype: Dtype::F32,
            loss_scale: None,
        }
    }

    /// A dry tape: every op checks its sizes, allocates its outputs and chooses its kernels
    /// as on a real tape, but records into a [`Discard`], so no pipeline is compiled and
    /// nothing runs. A step recorded on it shows which tuning classes the real step will
    /// meet (`kernels::autotune::take_untuned`) before anything is built for them. Reading
    /// a tensor of a dry tape reads whatever its buffer holds.
    pub fn dry(gpu: &'g Gpu) -> Tape<'g> {
        let mut tape = Tape::new(gpu);
        tape.dry = Some(Discard);
        tape
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Whether ops are recorded for backward. Off for evaluation: ops still run, nothing
    /// is kept for a backward pass.
    pub fn set_grad_enabled(&mut self, enabled: bool) {
        self.grad_enabled = enabled;
    }

    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    /// The compute pass ops record into, opened on first use (a dry tape's `Discard`).
    /// While a profile times only whole passes (see `gpu::profile`), every op gets a pass
    /// of its own.
    pub(crate) fn pass(&mut self) -> &mut dyn Recorder {
        if self.dry.is_none() {
            return self.open_pass();
        }
        self.dry.get_or_insert(Discard)
    }

    fn open_pass(&mut self) -> &mut wgpu::ComputePass<'static> {
        if self.recorded >= OPS_PER_SUBMISSION {
            self.submit_chunk();
        }
        self.recorded += 1;
        let timestamps = self.gpu.profile_pass_timestamps();
        if timestamps.is_some() {
            self.pass = None; // ends the previous op's pass
        }
        let encoder = self.encoder.get_or_insert_with(|| {
            self.gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("tape"),
                })
        });
        self.pass.get_or_insert_with(|| {
            crate::gpu::begin_pass(encoder, Some("tape"), timestamps.as_ref()).forget_lifetime()
        })
    }

    /// Records extra work (an optimizer step, say) into the tape's pass.
    pub fn record<T>(
        &mut self,
        work: impl FnOnce(&Gpu, &mut dyn Recorder) -> Result<T>,
    ) -> Result<T> {
        let gpu = self.gpu;
        work(gpu, self.pass())
    }

    /// Submits everything recorded so far (no wait).
    pub fn flush(&mut self) {
        self.pass = None;
        self.recorded = 0;
        if let Some(encoder) = self.encoder.take() {
            self.in_flight = Some(self.gpu.queue.submit([encoder.finish()]));
            self.submissions += 1;
        }
    }

    /// Command buffers this tape has submitted: work recorded while this read `n` has been
    /// submitted once it reads more.
    pub fn submissions(&self) -> u64 {
        self.submissions
    }

    /// Submits the open encoder mid-step and waits for the submission before it, so that
    /// at most two chunks of a very deep step are alive at once (software Vulkan runs out
    /// of descriptor memory with a whole 10,000-layer step in one command buffer).
    fn submit_chunk(&mut self) {
        let previous = self.in_flight.take();
        self.flush();
        if let Some(index) = previous {
            // A failed wait only means less overlap; errors surface at the next sync.
            let _ = self.gpu.device.poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            });
        }
    }

    /// Ends the step: submits what is recorded, forgets the ops and tensors, and gives the
    /// step's buffers back to the pool. Tensors of this step must not be used afterwards.
    pub fn reset(&mut self) {
        self.flush();
        self.dropout_sites = 0;
        self.nodes.clear();
        self.slots.clear();
        // Back in the reverse of the order they were taken, so that the pool (last in,
        // first out) hands the next step the same buffer for the same tensor, and its
        // dispatches find their bind groups cached.
        let taken = self.taken.drain(..).chain(self.grads_taken.drain(..));
        for buffer in taken.collect::<Vec<_>>().into_iter().rev() {
            self.pool.give(buffer);
        }
    }

    /// The shared scratch buffer, at least `len` floats.
    pub(crate) fn scratch(&mut self, len: usize) -> wgpu::Buffer {
        match &self.scratch {
            Some(buffer) if buffer.size() >= len as u64 * 4 => buffer.clone(),
            _ => {
                let buffer = self.gpu.zeroed_f32("tape scratch", len);
                self.scratch = Some(buffer.clone());
                buffer
            }
        }
    }

    /// A pool buffer for a gradient of the current backward pass: `len` f32.
    pub(crate) fn take_grad(&mut self, len: usize) -> wgpu::Buffer {
        self.take_grad_as(len, Dtype::F32)
    }

    /// A pool buffer for a gradient of the current backward pass: `len` of `dtype`.
    pub(crate) fn take_grad_as(&mut self, len: usize, dtype: Dtype) -> wgpu::Buffer {
        let buffer = self.pool.take_f32(self.gpu, words(len, dtype));
        self.grads_taken.push(buffer.clone());
        buffer
    }

    /// Forgets the activation gradients of the last backward and returns their buffers to
    /// the pool. Only after a flush: a later host write must not reach a buffer that
    /// unsubmitted work still reads.
    pub(crate) fn release_grads(&mut self) {
        debug_assert!(self.encoder.is_none(), "release_grads needs a flushed tape");
        for slot in &mut self.slots {
            slot.grad = None;
        }
        for buffer in self.grads_taken.drain(..) {
            self.pool.give(buffer);
        }
    }

    /// A pool buffer of at least `len` floats for this step (contents undefined).
    pub(crate) fn take(&mut self, len: usize) -> wgpu::Buffer {
        self.take_as(len, Dtype::F32)
    }

    /// A pool buffer of at least `len` elements of `dtype` for this step.
    pub(crate) fn take_as(&mut self, len: usize, dtype: Dtype) -> wgpu::Buffer {
        let buffer = self.pool.take_f32(self.gpu, words(len, dtype));
        self.taken.push(buffer.clone());
        buffer
    }

    /// A pool buffer of `len` floats filled with `value` (recorded into the pass), held
    /// until the next backward or reset.
    pub(crate) fn take_filled(&mut self, len: usize, value: f32) -> Result<wgpu::Buffer> {
        let buffer = self.take_grad(len);
        let gpu = self.gpu;
        elementwise::fill(gpu, self.pass(), &buffer, value, len as u32, Dtype::F32)?;
        Ok(buffer)
    }

    /// Adds a slot and returns its tensor.
    pub(crate) fn push(
        &mut self,
        buffer: wgpu::Buffer,
        shape: &[usize],
        requires_grad: bool,
        param_grad: Option<wgpu::Buffer>,
        dtype: Dtype,
    ) -> Tensor {
        let len = shape.iter().product();
        self.slots.push(Slot {
            buffer: buffer.clone(),
            len,
            dtype,
            operand: None,
            param_grad,
            grad: None,
            requires_grad,
        });
        Tensor {
            id: self.slots.len() - 1,
            shape: shape.to_vec(),
            buffer,
            dtype,
        }
    }

    /// A fresh output tensor of the tape's activation type from the pool.
    pub(crate) fn output(&mut self, shape: &[usize], requires_grad: bool) -> Tensor {
        self.output_as(shape, requires_grad, self.dtype)
    }

    /// A fresh output tensor of `dtype` from the pool (an f32 loss of an f16 tape).
    pub(crate) fn output_as(
        &mut self,
        shape: &[usize],
        requires_grad: bool,
        dtype: Dtype,
    ) -> Tensor {
        let buffer = self.take_as(shape.iter().product(), dtype);
        self.push(
            buffer,
            shape,
            requires_grad && self.grad_enabled,
            None,
            dtype,
        )
    }

    /// Records `op` as producing `out` when gradients are wanted.
    pub(crate) fn record_op(&mut self, out: &Tensor, op: Op) {
        if self.grad_enabled && self.slots[out.id].requires_grad {
            self.nodes.push(Node { out: out.id, op });
        }
    }

    pub(crate) fn requires_grad(&self, t: &Tensor) -> bool {
        self.slots[t.id].requires_grad
    }

    /// Data (no gradient) uploaded into a pool buffer, as the tape's activation type (f16
    /// rounded to nearest on the host). `data.len()` must match `shape`.
    pub fn input(&mut self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        check_data_len("input", data.len(), shape)?;
        let dtype = self.dtype;
        let buffer = self.take_as(data.len(), dtype);
        crate::kernels::precision::write_as(self.gpu, &buffer, data, dtype);
        Ok(self.push(buffer, shape, false, None, dtype))
    }

    /// Data that gradients flow back to (read them with [`Tape::grad`] after backward):
    /// the input of a Jacobian, say.
    pub fn variable(&mut self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let t = self.input(data, shape)?;
        self.slots[t.id].requires_grad = self.grad_enabled;
        Ok(t)
    }

    /// A parameter: its gradient flows into `param.grad` (accumulated).
    pub fn param(&mut self, param: &Param) -> Tensor {
        self.push(
            param.value.clone(),
            &param.shape,
            true,
            Some(param.grad.clone()),
            Dtype::F32,
        )
    }

    /// An existing buffer used as a constant (no gradient), e.g. a fixed α.
    pub fn constant(&mut self, buffer: &wgpu::Buffer, shape: &[usize]) -> Result<Tensor> {
        let len: usize = shape.iter().product();
        if buffer.size() < len as u64 * 4 {
            return Err(Error::Shape {
                op: "constant",
                expected: format!("a buffer of {len} floats for shape {shape:?}"),
                got: format!("{} bytes", buffer.size()),
            });
        }
        Ok(self.push(buffer.clone(), shape, false, None, Dtype::F32))
    }

    /// The same tensor seen with another shape of the same size (no copy; shares the
    /// gradient).
    pub fn reshape(&self, t: &Tensor, shape: &[usize]) -> Result<Tensor> {
        check_data_len("reshape", t.len(), shape)?;
        Ok(Tensor {
            id: t.id,
            shape: shape.to_vec(),
            buffer: t.buffer.clone(),
            dtype: t.dtype,
        })
    }

    /// Copies `t` into `dst` at byte `offset` (a multiple of 4), after the work recorded so
    /// far (the open pass ends; no readback, no submission). Nothing happens on a dry tape.
    pub fn copy_into(&mut self, t: &Tensor, dst: &wgpu::Buffer, offset: u64) -> Result<()> {
        let bytes = t.len() as u64 * t.dtype.bytes();
        let end = offset.checked_add(bytes);
        if offset % 4 != 0 || bytes % 4 != 0 || end.is_none_or(|end| end > dst.size()) {
            return Err(Error::Shape {
                op: "tape copy_into",
                expected: format!(
                    "{bytes} bytes (a multiple of 4) at a byte offset that is a multiple of 4"
                ),
                got: format!("offset {offset} in a buffer of {} bytes", dst.size()),
            });
        }
        if self.dry.is_some() {
            return Ok(());
        }
        self.pass = None;
        let device = &self.gpu.device;
        let encoder = (self.encoder).get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tape"),
            })
        });
        encoder.copy_buffer_to_buffer(&t.buffer, 0, dst, offset, bytes);
        Ok(())
    }
}

/// The 4-byte words `len` elements of `dtype` take (at least one).
fn words(len: usize, dtype: Dtype) -> usize {
    (len.max(1) * dtype.bytes() as usize).div_ceil(4)
}

impl Drop for Tape<'_> {
    /// Submits what is recorded; the device's bind-group cache holds the pool's buffers
    /// alive, so it lets them go.
    fn drop(&mut self) {
        self.flush();
        self.gpu.clear_bind_groups();
    }
}
