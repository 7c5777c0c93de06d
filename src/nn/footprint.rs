//! What a training configuration will need, estimated from its flags before anything is
//! allocated: parameters (with their gradients and the optimizer's state), the activations
//! of one step at its precision (f16 activations at 2 bytes, with the f16 copies of the
//! weights and the ops that still run in f32), and the largest single buffer. All
//! arithmetic is checked, so no flag value can overflow it; [`Footprint::check`] turns a
//! configuration the device or the host cannot hold into an error that names the flags.

use crate::gpu::{BufferPool, Error, Gpu, Result};
use crate::kernels::Dtype;

/// The estimate: parameters in f32 elements, the step's buffers in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint {
    /// The flags the sizes come from, for error messages ("--depth 64 --width 256").
    pub flags: String,
    pub params: u64,
    /// Bytes of the activations and their gradients for one training step (and, at f16,
    /// the weights' f16 copies and the f32 buffers of the ops that run in f32).
    pub activation_bytes: u64,
    /// The largest single buffer in bytes, and what it holds.
    pub largest: (u64, &'static str),
    /// Parameter tensors: each has a buffer, its gradient's and the optimizer's state.
    pub param_tensors: u64,
    /// Buffers one training step holds at once besides those (an upper estimate, from
    /// counts on lavapipe).
    pub step_buffers: u64,
}

/// `a · b · ...` of sizes, or an error naming the flags when it overflows.
pub fn product(flags: &str, sizes: &[u64]) -> Result<u64> {
    sizes
        .iter()
        .try_fold(1u64, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| too_large(flags))
}

/// The sum of sizes, or an error naming the flags when it overflows.
pub fn sum(flags: &str, sizes: &[u64]) -> Result<u64> {
    sizes
        .iter()
        .try_fold(0u64, |acc, &s| acc.checked_add(s))
        .ok_or_else(|| too_large(flags))
}

/// The bytes a tape's buffer of `elements` of `dtype` really takes: its pool rounds every
/// request up to a power of two of at least 256 bytes (`BufferPool::size_class`), so a
/// step can hold up to twice the bytes its tensors need.
pub fn pooled(flags: &str, elements: u64, dtype: Dtype) -> Result<u64> {
    let bytes = product(flags, &[elements, dtype.bytes()])?;
    BufferPool::size_class(bytes).ok_or_else(|| too_large(flags))
}

/// The pool bytes of the f16 copies an f16 step makes of f32 weights of these sizes (each
/// cast once a step for the products that read it); none at f32.
fn weight_copies(flags: &str, sizes: &[u64], dtype: Dtype) -> Result<u64> {
    if dtype == Dtype::F32 {
        return Ok(0);
    }
    let copies: Vec<u64> = sizes
        .iter()
        .map(|&n| pooled(flags, n, dtype))
        .collect::<Result<_>>()?;
    sum(flags, &copies)
}

fn too_large(flags: &str) -> Error {
    Error::Invalid {
        what: flags.to_string(),
        why: "the sizes multiply beyond any memory (the count overflows 64 bits)".into(),
    }
}

/// How many memory mappings a process may hold (Linux: vm.max_map_count), if known.
fn max_map_count() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?;
    text.trim().parse().ok()
}

/// This machine's memory in bytes (Linux: MemTotal), if known.
fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

impl Footprint {
    /// Bytes of the whole step: parameters, their gradients, `optimizer_states` buffers of
    /// the parameters' size, and the activations.
    pub fn total_bytes(&self, optimizer_states: u64) -> Result<u64> {
        let params = product(&self.flags, &[self.params, 2 + optimizer_states, 4])?;
        sum(&self.flags, &[params, self.activation_bytes])
    }

    /// Errors, naming the flags, when the largest buffer is over the device's buffer or
    /// binding limit, or the whole (on a software adapter, whose memory is the host's) or
    /// the host copies of parameters and optimizer state are over this machine's memory;
    /// on a software adapter, also when its buffers are over the process's memory mappings.
    pub fn check(&self, gpu: &Gpu, optimizer_states: u64) -> Result<()> {
        self.check_memory(gpu, optimizer_states)?;
        match gpu.is_software() {
            true => self.check_mappings(optimizer_states, max_map_count()),
            false => Ok(()),
        }
    }

    /// The largest buffer against the device's limit, and the whole step against the
    /// machine's memory.
    fn check_memory(&self, gpu: &Gpu, optimizer_states: u64) -> Result<()> {
        let limits = gpu.limits();
        let limit = limits
            .max_buffer_size
            .min(limits.max_storage_buffer_binding_size);
        let (largest_bytes, what) = self.largest;
        if largest_bytes > limit {
            return Err(Error::Limits {
                what: format!("{}: one buffer ({what}) in bytes", self.flags),
                needed: largest_bytes,
                limit,
            });
        }
        let total = self.total_bytes(optimizer_states)?;
        let host_copies = product(&self.flags, &[self.params, 1 + optimizer_states, 4])?;
        let Some(host) = host_memory() else {
            return Ok(());
        };
        let needed = if gpu.is_software() {
            total
        } else {
            host_copies
        };
        if needed > host {
            return Err(Error::Invalid {
                what: self.flags.clone(),
                why: format!(
                    "a training step needs about {} ({} of parameters), more than this \
                     machine's {} of memory",
                    gib(total),
                    gib(product(&self.flags, &[self.params, 4])?),
                    gib(host)
                ),
            });
        }
        Ok(())
    }

    /// Buffers a training step holds at once, with `optimizer_states` per parameter.
    pub fn buffers(&self, optimizer_states: u64) -> Result<u64> {
        let per_tensor = sum(&self.flags, &[2, optimizer_states])?;
        let params = product(&self.flags, &[self.param_tensors, per_tensor])?;
        sum(&self.flags, &[params, self.step_buffers, 512])
    }

    /// A software Vulkan driver maps every buffer into the process's memory separately, and
    /// a process past Linux's vm.max_map_count (`limit`) crashes with a segfault, not an
    /// error: refuse a model with more buffers than nine tenths of it.
    pub fn check_mappings(&self, optimizer_states: u64, limit: Option<u64>) -> Result<()> {
        let (Some(limit), buffers) = (limit, self.buffers(optimizer_states)?) else {
            return Ok(());
        };
        if buffers <= limit / 10 * 9 {
            return Ok(());
        }
        Err(Error::Invalid {
            what: self.flags.clone(),
            why: format!(
                "training needs about {buffers} buffers, and the software Vulkan driver maps \
                 each into memory: more than this machine's vm.max_map_count ({limit}) \
                 allows. Raise it (as root: sysctl -w vm.max_map_count={}) or use fewer layers",
                (buffers + buffers / 4).next_power_of_two()
            ),
        })
    }
}

impl super::MlpConfig {
    /// The footprint of training this MLP on batches of `batch` with activations of `dtype`.
    pub fn footprint(&self, batch: usize, dtype: Dtype) -> Result<Footprint> {
        let flags = format!(
            "--depth {} --width {} --batch {batch}",
            self.depth, self.width
        );
        let (d, w, b) = (self.depth as u64, self.width as u64, batch as u64);
        let (i, c) = (self.inputs as u64, self.classes as u64);
        let block = sum(&flags, &[product(&flags, &[w, w])?, 3 * w + 1])?;
        let params = sum(
            &flags,
            &[
                product(&flags, &[d, block])?,
                product(&flags, &[w, i + 1])?,
                product(&flags, &[c, w + 1])?,
            ],
        )?;
        // Per block: the pre-activation, the activation and the output, and their
        // gradients, each a pool buffer of [batch, width].
        let block = pooled(&flags, product(&flags, &[b, w])?, dtype)?;
        let blocks = product(&flags, &[d, block, 6])?;
        // Outside the blocks: the input batch, the input layer's two [batch, width] and the
        // logits [batch, classes], with gradients.
        let input = pooled(&flags, product(&flags, &[b, i])?, dtype)?;
        let logits = pooled(&flags, product(&flags, &[b, c])?, dtype)?;
        // At f16: each block's weight and bias, the input layer's and the classifier's.
        let block_copies = weight_copies(&flags, &[product(&flags, &[w, w])?, w], dtype)?;
        let copies = sum(
            &flags,
            &[
                product(&flags, &[d, block_copies])?,
                weight_copies(&flags, &[product(&flags, &[w, i])?, w, w * c], dtype)?,
            ],
        )?;
        let activation_bytes = sum(
            &flags,
            &[
                blocks,
                input,
                product(&flags, &[block, 4])?,
                product(&flags, &[logits, 2])?,
                copies,
            ],
        )?;
        let (f32_bytes, act_bytes) = (4, dtype.bytes());
        let largest = [
            (
                product(&flags, &[w, w, f32_bytes])?,
                "a block's weight [width, width]",
            ),
            (
                product(&flags, &[w, i, f32_bytes])?,
                "the input weight [width, inputs]",
            ),
            (
                product(&flags, &[b, w, act_bytes])?,
                "a block's activations [batch, width]",
            ),
            (
                product(&flags, &[b, i, act_bytes])?,
                "the input batch [batch, inputs]",
            ),
        ];
        let param_tensors = sum(&flags, &[product(&flags, &[2, d])?, 5])?;
        // At f16 each block's weight and bias copy is one more buffer.
        let per_block = if dtype == Dtype::F16 { 10 } else { 8 };
        let step_buffers = sum(&flags, &[product(&flags, &[per_block, d])?, 16])?;
        Ok(Footprint {
            flags,
            params,
            activation_bytes,
            largest: largest.into_iter().max_by_key(|l| l.0).expect("four"),
            param_tensors,
            step_buffers,
        })
    }
}

impl super::TransformerConfig {
    /// The footprint of training this Transformer on `batch` windows of its `seq` bytes
    /// with activations of `dtype`.
    pub fn footprint(&self, batch: usize, dtype: Dtype) -> Result<Footprint> {
        let flags = format!(
            "--layers {} --d-model {} --d-ff {} --heads {} --seq {} --batch {batch}",
            self.layers, self.d_model, self.d_ff, self.heads, self.seq
        );
        let (l, d, f) = (self.layers as u64, self.d_model as u64, self.d_ff as u64);
        let (h, t, b) = (self.heads as u64, self.seq as u64, batch as u64);
        let times = |k: u64, x: u64| product(&flags, &[k, x]);
        let params = transformer_params(&flags, (l, d, f, t))?;
        let rows = product(&flags, &[b, t])?;
        // Pool buffers (see `pooled`) of [rows, width], of `dtype` or of f32.
        let buffer = |width: u64, dtype| pooled(&flags, product(&flags, &[rows, width])?, dtype);
        let act = |width: u64| buffer(width, dtype);
        // Per layer: the qkv projection [rows, 3·d]; the attention output, the projection,
        // the feed-forward's output, the two sublayer sums and two norms (seven [rows, d],
        // five without norms); the feed-forward (two [rows, d_ff]) and each head's f32
        // log-sum-exp [rows, heads] (the fused attention keeps no [seq, seq] scores);
        // gradients as much again; at f16, the weights' f16 copies.
        let per_layer = sum(
            &flags,
            &[
                buffer(h, Dtype::F32)?,
                act(times(3, d)?)?,
                times(7, act(d)?)?,
                times(2, act(f)?)?,
            ],
        )?;
        // The products' weights [3·d, d], [d, d], [d_ff, d], [d, d_ff] and their biases.
        let (qkv, ff) = (times(3, d)?, product(&flags, &[d, f])?);
        let weights = [
            product(&flags, &[qkv, d])?,
            times(d, d)?,
            ff,
            ff,
            qkv,
            d,
            f,
            d,
        ];
        let copies = product(&flags, &[l, weight_copies(&flags, &weights, dtype)?])?;
        let layers = sum(&flags, &[product(&flags, &[l, per_layer, 2])?, copies])?;
        // Outside the blocks: the two embeddings and their sum, a final norm, the logits
        // [rows, 256], with gradients.
        let outside = sum(&flags, &[times(4, act(d)?)?, act(256)?])?;
        let head = weight_copies(&flags, &[times(256, d)?], dtype)?;
        let activation_bytes = sum(
            &flags,
            &[
                layers,
                times(2, outside)?,
                head,
                times(4, transformer_tuning(&flags, b, h, t, d, f)?)?,
            ],
        )?;
        let param_tensors = sum(&flags, &[product(&flags, &[12, l])?, 8])?;
        let per_layer = if dtype == Dtype::F16 { 48 } else { 40 }; // and 8 weight copies
        let step_buffers = sum(&flags, &[product(&flags, &[per_layer, l])?, 32])?;
        Ok(Footprint {
            largest: transformer_largest(&flags, (rows, d, f), dtype)?,
            flags,
            params,
            activation_bytes,
            param_tensors,
            step_buffers,
        })
    }
}

/// A Transformer's parameters: per layer the products' weights (4·d² + 2·d·d_ff), their
/// biases and the norms (9·d + d_ff + 2); the token (256) and position (seq) embeddings
/// and the output head (256·d).
fn transformer_params(flags: &str, (l, d, f, t): (u64, u64, u64, u64)) -> Result<u64> {
    let times = |k: u64, x: u64| product(flags, &[k, x]);
    let layer = sum(
        flags,
        &[
            product(flags, &[d, sum(flags, &[times(4, d)?, times(2, f)?])?])?,
            sum(flags, &[times(9, d)?, f, 2])?,
        ],
    )?;
    sum(
        flags,
        &[product(flags, &[l, layer])?, product(flags, &[d, 512 + t])?],
    )
}

/// The largest single buffer of a Transformer step, in bytes: the qkv projection, the
/// feed-forward or the logits (of `dtype`), or a feed-forward weight (f32).
fn transformer_largest(
    flags: &str,
    (rows, d, f): (u64, u64, u64),
    dtype: Dtype,
) -> Result<(u64, &'static str)> {
    let qkv = product(flags, &[rows, 3, d, dtype.bytes()])?;
    let largest = [
        (qkv, "the qkv projection [batch·seq, 3·d_model]"),
        (
            product(flags, &[rows, f.max(256), dtype.bytes()])?,
            "feed-forward or logits [batch·seq, d_ff]",
        ),
        (
            product(flags, &[d, f, 4])?,
            "a feed-forward weight [d_model, d_ff]",
        ),
    ];
    Ok(largest.into_iter().max_by_key(|l| l.0).expect("three"))
}

/// Floats the first step's tuning holds on top of the activations (freed after): the
/// attention tuner's q, k, v, o, their gradients and dO (8·rows·d_model) with lse and
/// delta (2·batch·heads·seq), or the matmul tuner's three operands of the largest product
/// ([rows, d_model] times [d_model, n] for n = 3·d_model, d_ff or the 256 logits),
/// whichever is more.
fn transformer_tuning(flags: &str, b: u64, h: u64, t: u64, d: u64, f: u64) -> Result<u64> {
    let rows = product(flags, &[b, t])?;
    let attention = sum(
        flags,
        &[
            product(flags, &[8, rows, d])?,
            product(flags, &[2, b, h, t])?,
        ],
    )?;
    let mut matmul = 0;
    for n in [product(flags, &[3, d])?, f, 256] {
        let operands = [
            product(flags, &[rows, sum(flags, &[d, n])?])?,
            product(flags, &[d, n])?,
        ];
        matmul = matmul.max(sum(flags, &operands)?);
    }
    Ok(attention.max(matmul))
}

impl super::ResnetConfig {
    /// The footprint of training this ResNet on `batch` images of `size`×`size` with
    /// activations of `dtype`.
    pub fn footprint(&self, batch: usize, size: usize, dtype: Dtype) -> Result<Footprint> {
        let flags = format!("--depth {} --batch {batch}", self.depth);
        let (n, b, s) = (self.blocks_per_stage() as u64, batch as u64, size as u64);
        let (in_channels, classes) = (self.in_channels as u64, self.classes as u64);
        let mut params = 16 * 9 * in_channels + 65 * classes;
        // The input images and the stem's convolution, norm and activation with gradients;
        // at f16, the f16 copies of the stem's and the classifier's weights.
        let input = pooled(&flags, product(&flags, &[b, in_channels, s, s])?, dtype)?;
        let stem = pooled(&flags, product(&flags, &[b, 16, s, s])?, dtype)?;
        let ends = weight_copies(&flags, &[16 * 9 * in_channels, 64 * classes], dtype)?;
        let mut activation_bytes = sum(&flags, &[input, product(&flags, &[stem, 6])?, ends])?;
        for (stage, &c) in super::resnet::STAGE_CHANNELS.iter().enumerate() {
            let c = c as u64;
            let side = s >> stage;
            params = sum(
                &flags,
                &[params, product(&flags, &[n, 2 * 9 * c * c + 4 * c])?],
            )?;
            // Per block: two convolutions, their norms and activations, the sum: about 8
            // maps, each a pool buffer of [batch, c, side, side]; gradients as much again;
            // at f16, the copies of the two filters [c, c, 3, 3].
            let map = pooled(&flags, product(&flags, &[b, c, side, side])?, dtype)?;
            let copies = weight_copies(&flags, &[9 * c * c, 9 * c * c], dtype)?;
            let block = sum(&flags, &[product(&flags, &[map, 16])?, copies])?;
            activation_bytes = sum(&flags, &[activation_bytes, product(&flags, &[n, block])?])?;
        }
        let largest = (
            product(&flags, &[b, 16, s, s, dtype.bytes()])?,
            "a first-stage map [batch, 16, h, w]",
        );
        let param_tensors = sum(&flags, &[product(&flags, &[18, n])?, 10])?;
        let per_stage = if dtype == Dtype::F16 { 78 } else { 72 }; // and 6 filter copies
        let step_buffers = sum(&flags, &[product(&flags, &[per_stage, n])?, 32])?;
        Ok(Footprint {
            flags,
            params,
            activation_bytes,
            largest,
            param_tensors,
            step_buffers,
        })
    }
}
