//! Launchers for `shaders/matmul.wgsl`: C = op(A)·op(B) (+ bias) (+ C), batched, with three
//! variants and a per-device choice made by a short measurement at first use.

use std::time::Instant;

use crate::gpu::{Error, Gpu, Kernel, Result, Shader};

use super::{check_len, check_nonempty, elements};

const SHADER: Shader = Shader {
    name: "matmul",
    wgsl: include_str!("../../shaders/matmul.wgsl"),
};

/// Which kernel computes the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulVariant {
    /// Measure the eligible fast variants once per shape bucket and keep the fastest.
    Auto,
    /// One invocation per output: the reference and the fallback.
    Naive,
    /// Workgroup-memory tiles (what real GPUs want).
    Tiled,
    /// 4×4 register blocks from vec4 loads, no barriers (what software Vulkan wants).
    /// Needs each operand's contiguous dimension and batch stride to be multiples of 4.
    Reg4x4,
    /// 8×4 register blocks: as `Reg4x4`, with twice the work per load of B.
    Reg8x4,
}

impl MatmulVariant {
    /// Every concrete variant, the reference first.
    pub const ALL: [MatmulVariant; 4] = [
        MatmulVariant::Naive,
        MatmulVariant::Tiled,
        MatmulVariant::Reg4x4,
        MatmulVariant::Reg8x4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Auto => "auto",
            MatmulVariant::Naive => "naive",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::Reg4x4 => "reg4x4",
            MatmulVariant::Reg8x4 => "reg8x4",
        }
    }

    fn from_name(name: &str) -> Option<MatmulVariant> {
        std::iter::once(MatmulVariant::Auto)
            .chain(MatmulVariant::ALL)
            .find(|v| v.name() == name)
    }
}

impl std::str::FromStr for MatmulVariant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        MatmulVariant::from_name(s).ok_or_else(|| Error::Invalid {
            what: "matmul variant".into(),
            why: format!("'{s}' is not one of auto, naive, tiled, reg4x4, reg8x4"),
        })
    }
}

/// Tile of C per workgroup for the tiled variant (override constants of the shader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
}

impl Default for Tile {
    fn default() -> Tile {
        Tile {
            bm: 64,
            bn: 64,
            bk: 16,
        }
    }
}

impl Tile {
    /// Workgroup memory the tiled kernel declares for this tile.
    pub fn storage_bytes(&self) -> u64 {
        (self.bm as u64 + self.bn as u64) * self.bk as u64 * 4
    }
}

/// The shape and options of one (batched) product.
///
/// `C[b] = op(A[b])·op(B[b])`, C: [m, n]; A: [m, k] or [k, m] when `trans_a`;
/// B: [k, n] or [n, k] when `trans_b`. Batch strides default to contiguous;
/// a stride of 0 reuses one operand for every batch.
///
/// ```
/// use rezero::kernels::matmul::{Matmul, MatmulVariant};
/// // A Transformer's feed-forward input: [4096 tokens, 512] · Wᵀ with W stored [2048, 512].
/// let desc = Matmul::new(4096, 2048, 512).trans_b(true).variant(MatmulVariant::Reg8x4);
/// assert_eq!(desc.flops(), 2.0 * 4096.0 * 2048.0 * 512.0);
/// assert!(desc.reg4x4_obstacle().is_none());
/// // An odd reduction length rules the vec4 variants out (auto then picks tiled).
/// assert!(Matmul::new(8, 8, 7).reg4x4_obstacle().is_some());
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
        }
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

    /// Why the register-blocked variant cannot run this shape, if it cannot.
    pub fn reg4x4_obstacle(&self) -> Option<String> {
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

/// Checks shapes and buffer sizes; returns nothing on success.
fn check(
    desc: &Matmul,
    c: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
) -> Result<()> {
    const OP: &str = "matmul";
    check_nonempty(
        OP,
        &[
            ("m", desc.m),
            ("n", desc.n),
            ("k", desc.k),
            ("batch", desc.batch),
        ],
    )?;
    let last = desc.batch as u64 - 1;
    let need_a = last * desc.stride_a as u64 + elements(OP, &[desc.m, desc.k])?;
    let need_b = last * desc.stride_b as u64 + elements(OP, &[desc.k, desc.n])?;
    let need_c = last * desc.stride_c as u64 + elements(OP, &[desc.m, desc.n])?;
    let a_shape = if desc.trans_a { "A [k, m]" } else { "A [m, k]" };
    let b_shape = if desc.trans_b { "B [n, k]" } else { "B [k, n]" };
    check_len(OP, a_shape, a, need_a)?;
    check_len(OP, b_shape, b, need_b)?;
    check_len(OP, "C [m, n]", c, need_c)?;
    if let Some(bias) = bias {
        check_len(OP, "bias [n]", bias, desc.n as u64)?;
    }
    for (what, need) in [("A", need_a), ("B", need_b), ("C", need_c)] {
        if need > u32::MAX as u64 {
            return Err(Error::Limits {
                what: format!("matmul: elements of {what}"),
                needed: need,
                limit: u32::MAX as u64,
            });
        }
    }
    Ok(())
}

/// Records C = op(A)·op(B) (+ bias) (+ C) into `pass` and returns the variant that ran.
/// c: [batch, m, n]; a, b as described by [`Matmul`]; bias: [n].
pub fn matmul(
    gpu: &Gpu,
    pass: &mut wgpu::ComputePass<'_>,
    c: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: Option<&wgpu::Buffer>,
    desc: &Matmul,
) -> Result<MatmulVariant> {
    check(desc, c, a, b, bias)?;
    let variant = match desc.variant {
        MatmulVariant::Auto => pick_variant(gpu, desc)?,
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
    // Without a bias, A's buffer fills the binding; the shader never reads it.
    let buffers = [c, a, b, bias.unwrap_or(a)];
    match variant {
        MatmulVariant::Naive | MatmulVariant::Auto => {
            let groups = [desc.n.div_ceil(16), desc.m.div_ceil(16), desc.batch];
            gpu.dispatch(
                pass,
                &Kernel::new(SHADER, "matmul_naive"),
                &params,
                &buffers,
                groups,
            )?;
        }
        MatmulVariant::Tiled => {
            let t = desc.tile;
            if t.bm % 4 != 0 || t.bn % 4 != 0 || t.bm == 0 || t.bn == 0 || t.bk == 0 {
                return Err(Error::Unsupported {
                    op: "matmul",
                    variant: "tiled".into(),
                    why: format!(
                        "tile {t:?}: bm and bn must be positive multiples of 4, bk positive"
                    ),
                });
            }
            gpu.check_workgroup("matmul tiled", t.storage_bytes(), (t.bm / 4) * (t.bn / 4))?;
            let constants = [
                ("BM", t.bm as f64),
                ("BN", t.bn as f64),
                ("BK", t.bk as f64),
            ];
            let kernel = Kernel {
                shader: SHADER,
                entry: "matmul_tiled",
                constants: &constants,
            };
            let groups = [desc.n.div_ceil(t.bn), desc.m.div_ceil(t.bm), desc.batch];
            gpu.dispatch(pass, &kernel, &params, &buffers, groups)?;
        }
        MatmulVariant::Reg4x4 | MatmulVariant::Reg8x4 => {
            if let Some(why) = desc.reg4x4_obstacle() {
                return Err(Error::Unsupported {
                    op: "matmul",
                    variant: variant.name().into(),
                    why,
                });
            }
            let constants = [
                ("TRANS_A", desc.trans_a as u8 as f64),
                ("TRANS_B", desc.trans_b as u8 as f64),
            ];
            // 16×16 invocations, each 4 columns by 4 or 8 rows of C.
            let (entry, rows) = if variant == MatmulVariant::Reg4x4 {
                ("matmul_reg4x4", 4)
            } else {
                ("matmul_reg8x4", 8)
            };
            let kernel = Kernel {
                shader: SHADER,
                entry,
                constants: &constants,
            };
            let groups = [desc.n.div_ceil(64), desc.m.div_ceil(16 * rows), desc.batch];
            gpu.dispatch(pass, &kernel, &params, &buffers, groups)?;
        }
    }
    Ok(variant)
}

/// Tuning key: transposes, whether reg4x4 is eligible, and the size to within a factor of 8.
fn bucket(desc: &Matmul) -> String {
    let work = desc.flops().max(1.0).log2().floor() as u32 / 3;
    format!(
        "matmul/{}{}/{}/{}",
        if desc.trans_a { 't' } else { 'n' },
        if desc.trans_b { 't' } else { 'n' },
        if desc.reg4x4_obstacle().is_none() {
            "v4"
        } else {
            "s"
        },
        work
    )
}

/// The fastest eligible fast variant for this shape's bucket, measured once per `Gpu` on
/// scratch buffers of the same shape (the best of 2 to 20 timed runs each, after a warm-up).
fn pick_variant(gpu: &Gpu, desc: &Matmul) -> Result<MatmulVariant> {
    let key = bucket(desc);
    if let Some(name) = gpu.tuned(&key) {
        return Ok(MatmulVariant::from_name(name).unwrap_or(MatmulVariant::Tiled));
    }
    let mut candidates = vec![MatmulVariant::Tiled];
    if desc.reg4x4_obstacle().is_none() {
        candidates.extend([MatmulVariant::Reg4x4, MatmulVariant::Reg8x4]);
    }
    let tile = desc.tile;
    if gpu
        .check_workgroup(
            "matmul tiled",
            tile.storage_bytes(),
            (tile.bm / 4) * (tile.bn / 4),
        )
        .is_err()
    {
        candidates.retain(|&v| v != MatmulVariant::Tiled);
    }
    let best = match candidates.as_slice() {
        [] => MatmulVariant::Naive,
        [only] => *only,
        _ => {
            let last = desc.batch as u64 - 1;
            let len = |stride: u32, rows: u32, cols: u32| {
                last * stride as u64 + rows as u64 * cols as u64
            };
            let a = gpu.zeroed_f32("tune a", len(desc.stride_a, desc.m, desc.k) as usize);
            let b = gpu.zeroed_f32("tune b", len(desc.stride_b, desc.k, desc.n) as usize);
            let c = gpu.zeroed_f32("tune c", len(desc.stride_c, desc.m, desc.n) as usize);
            let mut best = (f64::INFINITY, candidates[0]);
            for &v in &candidates {
                let trial = desc.variant(v);
                gpu.run(|pass| matmul(gpu, pass, &c, &a, &b, None, &trial).map(drop))?;
                // The fastest of at least 2 runs and of up to 20 within 20 ms: small
                // products need several runs to rise above timer and scheduling noise.
                let (mut fastest, mut spent, mut runs) = (f64::INFINITY, 0.0, 0);
                while runs < 2 || (runs < 20 && spent < 0.02) {
                    let start = Instant::now();
                    gpu.run(|pass| matmul(gpu, pass, &c, &a, &b, None, &trial).map(drop))?;
                    let t = start.elapsed().as_secs_f64();
                    (fastest, spent, runs) = (fastest.min(t), spent + t, runs + 1);
                }
                if fastest < best.0 {
                    best = (fastest, v);
                }
            }
            best.1
        }
    };
    gpu.set_tuned(&key, best.name());
    Ok(best)
}
