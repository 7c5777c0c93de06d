//! Launchers for `shaders/matmul.wgsl` and `shaders/matmul_coop.wgsl`:
//! C = op(A)·op(B) (+ bias) (+ C), batched, in four variants plus the tensor-core one, on
//! f32 or f16 operands ([`Matmul::dtypes`]), and `Auto`, which uses the variant the tuning
//! table names for the shape's class, or a default (`tune.rs`).

mod block;
mod coop;
mod shaders;
mod tune;
mod variant;

pub use block::{Block, Tile};
pub use coop::{CoopSize, describe as describe_cooperative};
pub use tune::{candidates, default_variant, measure_candidates, tuning_key};
pub use variant::MatmulVariant;

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Shader, Work};

use super::bias::Activation;
use super::precision::{Dtype, check_len_of, require};
use super::{check_nonempty, elements};

/// Every matmul shader module (f32, f16 and the tensor-core ones), for the shader checks.
pub(crate) const SHADERS: [Shader; 7] = shaders::ALL;

/// The shape and options of one (batched) product.
///
/// `C[b] = op(A[b])·op(B[b])`, C: [m, n]; A: [m, k] or [k, m] when `trans_a`;
/// B: [k, n] or [n, k] when `trans_b`. Batch strides default to contiguous;
/// a stride of 0 reuses one operand for every batch.
///
/// ```
/// use rezero::kernels::matmul::{Block, Matmul, MatmulVariant};
/// // A Transformer's feed-forward input: [4096 tokens, 512] · Wᵀ with W stored [2048, 512].
/// let desc = Matmul::new(4096, 2048, 512).trans_b(true).variant(MatmulVariant::Blocked(Block::LARGE));
/// assert_eq!(desc.flops(), 2.0 * 4096.0 * 2048.0 * 512.0);
/// assert!(desc.vec4_obstacle().is_none());
/// // An odd reduction length rules the vec4 loads out (the blocked kernel then reads floats).
/// assert!(Matmul::new(8, 8, 7).vec4_obstacle().is_some());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Matmul {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub accumulate: bool,
    pub stride_a: u32,
    pub stride_b: u32,
    pub stride_c: u32,
    pub variant: MatmulVariant,
    pub tile: Tile,
    /// Element type of A, B and bias (f16 needs `SHADER_F16`).
    pub operands: Dtype,
    /// Element type of C (and pre): f16 only with f16 operands.
    pub output: Dtype,
}

impl Matmul {
    /// C[m, n] = A[m, k] · B[k, n], one batch, auto variant.
    pub fn new(m: u32, n: u32, k: u32) -> Matmul {
        Matmul {
            m,
            n,
            k,
            batch: 1,
            trans_a: false,
            trans_b: false,
            accumulate: false,
            stride_a: m.wrapping_mul(k),
            stride_b: k.wrapping_mul(n),
            stride_c: m.wrapping_mul(n),
            variant: MatmulVariant::Auto,
            tile: Tile::default(),
            operands: Dtype::F32,
            output: Dtype::F32,
        }
    }
    /// A, B and bias hold `operands`, C (and pre) `output`: f32 and f32 (the default),
    /// f16 and f32, or f16 and f16. Products and sums are f32 in every case.
    pub fn dtypes(mut self, operands: Dtype, output: Dtype) -> Matmul {
        self.operands = operands;
        self.output = output;
        self
    }
    /// `batch` products with contiguous strides.
    pub fn batch(mut self, batch: u32) -> Matmul {
        self.batch = batch;
        self
    }
    /// A is stored [k, m].
    pub fn trans_a(mut self, yes: bool) -> Matmul {
        self.trans_a = yes;
        self
    }
    /// B is stored [n, k].
    pub fn trans_b(mut self, yes: bool) -> Matmul {
        self.trans_b = yes;
        self
    }
    /// C += product instead of C = product.
    pub fn accumulate(mut self, yes: bool) -> Matmul {
        self.accumulate = yes;
        self
    }
    /// Element strides between batches (0 broadcasts an operand).
    pub fn strides(mut self, a: u32, b: u32, c: u32) -> Matmul {
        self.stride_a = a;
        self.stride_b = b;
        self.stride_c = c;
        self
    }
    pub fn variant(mut self, variant: MatmulVariant) -> Matmul {
        self.variant = variant;
        self
    }
    pub fn tile(mut self, tile: Tile) -> Matmul {
        self.tile = tile;
        self
    }

    /// Multiply-adds times two.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }

    /// Why A and B cannot be read as vec4 (what `reg8x4` needs), if they cannot.
    pub fn vec4_obstacle(&self) -> Option<String> {
        let (a_dim, a_name) = if self.trans_a {
            (self.m, "m (A transposed)")
        } else {
            (self.k, "k")
        };
        let (b_dim, b_name) = if self.trans_b {
            (self.k, "k (B transposed)")
        } else {
            (self.n, "n")
        };
        if a_dim % 4 != 0 {
            return Some(format!("{a_name} = {a_dim} is not a multiple of 4"));
        }
        if b_dim % 4 != 0 {
            return Some(format!("{b_name} = {b_dim} is not a multiple of 4"));
        }
        if self.batch > 1 && (self.stride_a % 4 != 0 || self.stride_b % 4 != 0) {
            return Some("batch strides of A and B must be multiples of 4".into());
        }
        None
    }

    /// Whether C, too, can be written as vec4 (the blocked kernel's vec4 entry point).
    fn c_is_vec4(&self) -> bool {
        self.n % 4 == 0 && (self.batch == 1 || self.stride_c % 4 == 0)
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    trans_a: u32,
    trans_b: u32,
    accumulate: u32,
    has_bias: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    _pad: u32,
}

impl Matmul {
    /// Elements A, B and C must hold (the last batch's offset plus one matrix), after
    /// checking that no dimension is 0 and that each count fits a u32 index.
    pub fn lengths(&self, op: &'static str) -> Result<[u64; 3]> {
        check_nonempty(
            op,
            &[
                ("m", self.m),
                ("n", self.n),
                ("k", self.k),
                ("batch", self.batch),
            ],
        )?;
        let last = self.batch as u64 - 1;
        let need_a = last * self.stride_a as u64 + elements(op, &[self.m, self.k])?;
        let need_b = last * self.stride_b as u64 + elements(op, &[self.k, self.n])?;
        let need_c = last * self.stride_c as u64 + elements(op, &[self.m, self.n])?;
        for (what, need) in [("A", need_a), ("B", need_b), ("C", need_c)] {
            if need > u32::MAX as u64 {
                return Err(Error::Limits {
                    what: format!("{op}: elements of {what}"),
                    needed: need,
                    limit: u32::MAX as u64,
                });
            }
        }
        Ok([need_a, need_b, need_c])
    }
}

/// Checks shapes and buffer sizes; returns nothing on success.
fn check(
    desc: &Matmul,
    c: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
) -> Result<()> {
    const OP: &str = "matmul";
    let [need_a, need_b, need_c] = desc.lengths(OP)?;
    let a_shape = if desc.trans_a { "A [k, m]" } else { "A [m, k]" };
    let b_shape = if desc.trans_b { "B [n, k]" } else { "B [k, n]" };
    let (operands, output) = (desc.operands, desc.output);
    check_len_of(OP, a_shape, a, need_a, operands)?;
    check_len_of(OP, b_shape, b, need_b, operands)?;
    check_len_of(OP, "C [m, n]", c, need_c, output)?;
    if let Some(bias) = bias {
        check_len_of(OP, "bias [n]", bias, desc.n as u64, operands)?;
    }
    Ok(())
}

/// Where a variant starts: its entry point, override constants and workgroups.
type Entry = (&'static str, Vec<(&'static str, f64)>, [u32; 3]);

/// What runs a variant: its shader module, entry point, override constants and workgroups.
type Plan = (Shader, &'static str, Vec<(&'static str, f64)>, [u32; 3]);

/// The shader module for `desc`'s element types, after checking that `gpu` can run them.
fn module(gpu: &Gpu, desc: &Matmul, variant: MatmulVariant) -> Result<Shader> {
    // The tensor-core variant says first whether the adapter lists its matrices (every
    // device that does has f16).
    if let MatmulVariant::Coop(size) = variant {
        size.check(gpu, desc)?;
        require(gpu, "matmul", desc.operands)?;
        return Ok(shaders::coop(size, desc.output));
    }
    require(gpu, "matmul", desc.operands)?;
    shaders::variants(desc.operands, desc.output).ok_or_else(|| Error::Unsupported {
        op: "matmul",
        variant: variant.name(),
        why: "an f16 output needs f16 operands (f32 A and B write f32)".into(),
    })
}

/// The [`Plan`] of `variant` for `desc`, after checking that the variant can run the shape
/// on `gpu`.
fn plan(gpu: &Gpu, desc: &Matmul, variant: MatmulVariant) -> Result<Plan> {
    let shader = module(gpu, desc, variant)?;
    let (entry, constants, groups) = entry_of(gpu, desc, variant)?;
    Ok((shader, entry, constants, groups))
}

/// Entry point, override constants and workgroups of `variant` for `desc`.
fn entry_of(gpu: &Gpu, desc: &Matmul, variant: MatmulVariant) -> Result<Entry> {
    let transposes = [
        ("TRANS_A", desc.trans_a as u8 as f64),
        ("TRANS_B", desc.trans_b as u8 as f64),
    ];
    Ok(match variant {
        MatmulVariant::Naive | MatmulVariant::Auto => (
            "matmul_naive",
            vec![],
            [desc.n.div_ceil(16), desc.m.div_ceil(16), desc.batch],
        ),
        MatmulVariant::Tiled => {
            let t = desc.tile;
            t.check(gpu)?;
            let constants = vec![
                ("BM", t.bm as f64),
                ("BN", t.bn as f64),
                ("BK", t.bk as f64),
            ];
            let groups = [desc.n.div_ceil(t.bn), desc.m.div_ceil(t.bm), desc.batch];
            ("matmul_tiled", constants, groups)
        }
        MatmulVariant::Reg8x4 => {
            if let Some(why) = desc.vec4_obstacle() {
                return Err(Error::Unsupported {
                    op: "matmul",
                    variant: variant.name(),
                    why,
                });
            }
            // 16×16 invocations, each 4 columns by 8 rows of C.
            let groups = [desc.n.div_ceil(64), desc.m.div_ceil(128), desc.batch];
            ("matmul_reg8x4", transposes.to_vec(), groups)
        }
        MatmulVariant::Blocked(block) => {
            block.check(gpu)?;
            let vec4 = desc.vec4_obstacle().is_none() && desc.c_is_vec4();
            let mut constants = transposes.to_vec();
            constants.extend(block.constants());
            constants.push(("VEC4", vec4 as u8 as f64));
            let groups = [
                desc.n.div_ceil(block.bn),
                desc.m.div_ceil(block.bm),
                desc.batch,
            ];
            ("matmul_blocked", constants, groups)
        }
        MatmulVariant::Coop(size) => {
            let tile = size.tile();
            let wg = CoopSize::workgroup(gpu);
            let groups = [desc.n.div_ceil(tile), desc.m.div_ceil(tile), desc.batch];
            ("matmul_coop", vec![("WG", wg as f64)], groups)
        }
    })
}

/// Records C = op(A)·op(B) (+ bias) (+ C) into `pass` and returns the variant that ran.
/// c: [batch, m, n]; a, b as described by [`Matmul`]; bias: [n].
pub fn matmul(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    c: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    desc: &Matmul,
) -> Result<MatmulVariant> {
    record(gpu, pass, c, None, a, b, bias, desc)
}

/// A linear layer's forward in one kernel: pre = op(A)·op(B) (+ bias) and
/// out = activation(pre), both stored by the product's epilogue (pre is what the backward,
/// [`bias_activation_backward`](crate::kernels::bias::bias_activation_backward), reads).
/// out, pre: [batch, m, n]; the rest as for [`matmul`]; `desc` must not accumulate.
#[allow(clippy::too_many_arguments)]
pub fn matmul_activation(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    pre: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    activation: Activation,
    desc: &Matmul,
) -> Result<MatmulVariant> {
    if desc.accumulate {
        return Err(Error::Invalid {
            what: "matmul_activation".into(),
            why: "an activation's output cannot be added to what C holds".into(),
        });
    }
    record(gpu, pass, out, Some((pre, activation)), a, b, bias, desc)
}

#[allow(clippy::too_many_arguments)]
fn record(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    c: &wgpu::Buffer,
    epilogue: Option<(&wgpu::Buffer, Activation)>,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    desc: &Matmul,
) -> Result<MatmulVariant> {
    check(desc, c, a, b, bias)?;
    if let Some((pre, _)) = epilogue {
        check_len_of(
            "matmul",
            "pre [m, n]",
            pre,
            desc.lengths("matmul")?[2],
            desc.output,
        )?;
    }
    let variant = match desc.variant {
        MatmulVariant::Auto => tune::pick(gpu, desc),
        v => v,
    };
    let params = Params {
        m: desc.m,
        n: desc.n,
        k: desc.k,
        batch: desc.batch,
        trans_a: desc.trans_a as u32,
        trans_b: desc.trans_b as u32,
        accumulate: desc.accumulate as u32,
        has_bias: bias.is_some() as u32,
        stride_a: desc.stride_a,
        stride_b: desc.stride_b,
        stride_c: desc.stride_c,
        _pad: 0,
    };
    // Without a bias, A's buffer fills the (read-only) binding; without an activation a
    // placeholder fills pre's (a writable binding never shares a buffer: WebGPU refuses).
    let (pre, code) = epilogue.map_or((gpu.placeholder(3), 0), |(pre, act)| (pre, act.code()));
    let (shader, entry, mut constants, groups) = plan(gpu, desc, variant)?;
    constants.push(("ACTIVATION", code as f64));
    let kernel = Kernel::with(shader, entry, &constants).work(Work::Flops(desc.flops()));
    // The blocked kernel also binds A, B and C as vec4 arrays (bindings 5-7), which it
    // uses only with VEC4 (then every operand holds whole vec4s, and C is written only
    // as vec4s).
    let vec4 = constants
        .iter()
        .any(|&(name, v)| name == "VEC4" && v != 0.0);
    let (c_scalar, c_vec4) = gpu.scalar_or_vec4_output(c, vec4, 2);
    let buffers = [c_scalar, a, b, bias.unwrap_or(a)];
    let mut numbered: Vec<(u32, &wgpu::Buffer)> = (1..).zip(buffers).collect();
    numbered.push((8, pre));
    if entry == "matmul_blocked" {
        let operand = 4 * desc.operands.bytes();
        let view = |b, slot, bytes| gpu.vec4_view_or_placeholder(b, slot, bytes);
        numbered.extend([
            (5, view(a, 0, operand)),
            (6, view(b, 1, operand)),
            (7, c_vec4),
        ]);
    }
    gpu.dispatch_bound(pass, &kernel, &params, &numbered, groups)?;
    Ok(variant)
}
