//! The choice between the attention kernels of a pass (one row an invocation, or tiled
//! with each tile size that fits), measured per shape class when a tune is asked for and
//! kept in the tuning table like the matmul's; a fixed default until then.

use crate::gpu::{Gpu, Result};

use super::attention::{
    AttentionKernel, AttentionShape, attention_backward_with, attention_forward_with,
};
use super::attention_tiled::Tiles;
use super::{Grad, autotune};

/// The pass a kernel choice is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    Backward,
}

impl AttentionKernel {
    /// `rows` or `tiled:BRxBC`, as the tuning table and the benchmarks name it.
    pub fn name(self) -> String {
        match self {
            AttentionKernel::Rows => "rows".into(),
            AttentionKernel::Tiled(t) => format!("tiled:{}x{}", t.br, t.bc),
            AttentionKernel::PerHead(t) => format!("per-head:{}x{}", t.br, t.bc),
        }
    }

    /// The kernel `name` names, if any.
    pub fn parse(text: &str) -> Option<AttentionKernel> {
        if text == "rows" {
            return Some(AttentionKernel::Rows);
        }
        let tiles = |sizes: &str| {
            let (br, bc) = sizes.split_once('x')?;
            let (br, bc) = (br.parse().ok()?, bc.parse().ok()?);
            Some(Tiles { br, bc })
        };
        if let Some(sizes) = text.strip_prefix("per-head:") {
            return tiles(sizes).map(AttentionKernel::PerHead);
        }
        tiles(text.strip_prefix("tiled:")?).map(AttentionKernel::Tiled)
    }
}

/// The candidates' generation, part of every key: a table (a user's cache) measured
/// before the candidates changed is measured again rather than trusted. Bump it when a
/// kernel is added to or dropped from [`candidates`] or its speed changes. 2: the one-pass
/// backward; 3: tiles of vec4 rows.
const GENERATION: u32 = 3;

/// The tuning class of a pass: its head dimension and its length's power of two.
pub fn tuning_key(pass: Pass, s: &AttentionShape) -> String {
    let name = match pass {
        Pass::Forward => "fwd",
        Pass::Backward => "bwd",
    };
    format!(
        "attention/{name}/g{GENERATION}/d{}/t{}",
        s.d,
        s.t.max(1).next_power_of_two()
    )
}

/// Whether `kernel` can run `pass` with head dimension `d` on this device.
pub fn usable(gpu: &Gpu, pass: Pass, d: u32, kernel: AttentionKernel) -> bool {
    match (kernel, pass) {
        (AttentionKernel::Rows, _) => true,
        (AttentionKernel::Tiled(t), Pass::Forward) => t.check(gpu, d).is_ok(),
        (AttentionKernel::Tiled(t), Pass::Backward) => t.check_backward(gpu, d).is_ok(),
        (AttentionKernel::PerHead(_), Pass::Forward) => false,
        (AttentionKernel::PerHead(t), Pass::Backward) => t.check_per_head(gpu, d).is_ok(),
    }
}

/// The kernels timed for `pass` with head dimension `d`: the row kernel and every tile
/// size that fits, tiled and (the backward) one pass a head.
pub fn candidates(gpu: &Gpu, pass: Pass, d: u32) -> Vec<AttentionKernel> {
    let tiled = Tiles::CANDIDATES.map(AttentionKernel::Tiled);
    let per_head = Tiles::CANDIDATES.map(AttentionKernel::PerHead);
    std::iter::once(AttentionKernel::Rows)
        .chain(tiled)
        .chain(per_head)
        .filter(|&kernel| usable(gpu, pass, d, kernel))
        .collect()
}

/// Times every candidate of `pass` on scratch buffers of shape `s` (see
/// `autotune::time_each`).
pub async fn measure_candidates(
    gpu: &Gpu,
    pass: Pass,
    s: &AttentionShape,
) -> Result<Vec<(AttentionKernel, f64)>> {
    let (input, output) = s.lengths("attention tuning")?;
    let rows = s.bh as u64 * s.t as u64;
    let mut buffers = Vec::new();
    for (label, n) in [
        ("q", input),
        ("k", input),
        ("v", input),
        ("dq", input),
        ("dk", input),
        ("dv", input),
        ("o", output),
        ("do", output),
        ("lse", rows),
        ("delta", rows),
    ] {
        buffers.push(autotune::filled(gpu, &format!("tune {label}"), n).await?);
    }
    let [q, k, v, dq, dk, dv, o, d_o, lse, delta] = &buffers[..] else {
        unreachable!("ten buffers were made")
    };
    let grads = [dq, dk, dv].map(Grad::write);
    autotune::time_each(&candidates(gpu, pass, s.d), |kernel| {
        gpu.run(move |p| match pass {
            Pass::Forward => attention_forward_with(gpu, p, kernel, [o, lse, q, k, v], s),
            Pass::Backward => {
                let inputs = [q, k, v, o, lse, d_o];
                attention_backward_with(gpu, p, kernel, grads, delta, inputs, s)
            }
        })
    })
    .await
}

/// The kernel of `pass` for head dimension `d` when the table has no choice for its class:
/// the first that fits the device of, forward, the 32×32 then 32×16 tiles; backward, on a
/// software adapter the one-pass kernel of 16×32 tiles (lavapipe's winner; BENCHMARKS.md),
/// on a GPU the two-kernel 32×32 then 16×16 tiles (the one-pass kernel has one workgroup a
/// head, too few for a GPU at small batches); the row kernel last.
pub fn default_kernel(gpu: &Gpu, pass: Pass, d: u32) -> AttentionKernel {
    let tiles = |br, bc| Tiles { br, bc };
    let preference = match pass {
        Pass::Forward => vec![
            AttentionKernel::Tiled(tiles(32, 32)),
            AttentionKernel::Tiled(tiles(32, 16)),
            AttentionKernel::Tiled(tiles(16, 16)),
        ],
        Pass::Backward if gpu.is_software() => vec![
            AttentionKernel::PerHead(tiles(16, 32)),
            AttentionKernel::Tiled(tiles(16, 32)),
            AttentionKernel::Tiled(tiles(16, 16)),
        ],
        Pass::Backward => vec![
            AttentionKernel::Tiled(tiles(32, 32)),
            AttentionKernel::Tiled(tiles(16, 16)),
        ],
    };
    preference
        .into_iter()
        .find(|&k| usable(gpu, pass, d, k))
        .unwrap_or(AttentionKernel::Rows)
}

/// The kernel of `pass` for shape `s`: the table's choice for its class, or
/// [`default_kernel`] (the class noted as untuned; see `autotune`).
pub(crate) fn pick(gpu: &Gpu, pass: Pass, s: &AttentionShape) -> AttentionKernel {
    autotune::choose(
        gpu,
        &tuning_key(pass, s),
        AttentionKernel::parse,
        |kernel| usable(gpu, pass, s.d, kernel),
        default_kernel(gpu, pass, s.d),
        autotune::TuneRequest::Attention(pass, *s),
    )
}
