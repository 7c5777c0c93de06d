//! Which kernel computes a product: the variants, their names and how they are parsed.

use super::{Block, CoopSize};
use crate::gpu::{Error, Result};

/// Which kernel computes the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// The variant the tuning table names for the shape's class (measured by an explicit
    /// tune, remembered on disk when the `Gpu` has a tuning cache), or a fixed default for
    /// the adapter's kind ([`default_variant`]).
    Auto,
    /// One invocation per output: the reference and the fallback.
    Naive,
    /// A 4×4 block per invocation from workgroup-memory slabs of a [`Tile`].
    Tiled,
    /// 8×4 register blocks from vec4 loads, no barriers (what software Vulkan wants).
    /// Needs each operand's contiguous dimension and batch stride to be multiples of 4.
    Reg8x4,
    /// The established GPU design ([`Block`]): a TM×TN register block per invocation over
    /// double-buffered workgroup slabs, vec4 loads and stores where the shape allows.
    Blocked(Block),
    /// Tensor cores: S×S×S cooperative matrices on f16 operands, f32 accumulators
    /// ([`CoopSize`]); only where the adapter lists the configuration.
    Coop(CoopSize),
}

impl MatmulVariant {
    /// The variants that need no configuration, the reference first.
    pub const SIMPLE: [MatmulVariant; 3] = [
        MatmulVariant::Naive,
        MatmulVariant::Tiled,
        MatmulVariant::Reg8x4,
    ];

    /// `naive`, `tiled`, `reg8x4`, `auto` or `blocked:BMxBNxBK:TMxTN`.
    pub fn name(&self) -> String {
        match self {
            MatmulVariant::Auto => "auto".into(),
            MatmulVariant::Naive => "naive".into(),
            MatmulVariant::Tiled => "tiled".into(),
            MatmulVariant::Reg8x4 => "reg8x4".into(),
            MatmulVariant::Blocked(block) => format!("blocked:{block}"),
            MatmulVariant::Coop(size) => format!("coop{}", size.s()),
        }
    }
}

impl std::str::FromStr for MatmulVariant {
    type Err = Error;
    /// Parses [`MatmulVariant::name`]; plain `blocked` is [`Block::LARGE`].
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Invalid {
            what: "matmul variant".into(),
            why: format!(
                "'{s}' is not one of auto, naive, tiled, reg8x4, blocked, \
                 blocked:BMxBNxBK:TMxTN, coop8, coop16"
            ),
        };
        match s {
            "auto" => return Ok(MatmulVariant::Auto),
            "blocked" => return Ok(MatmulVariant::Blocked(Block::LARGE)),
            "coop8" => return Ok(MatmulVariant::Coop(CoopSize::Eight)),
            "coop16" => return Ok(MatmulVariant::Coop(CoopSize::Sixteen)),
            _ => {}
        }
        if let Some(v) = MatmulVariant::SIMPLE.into_iter().find(|v| v.name() == s) {
            return Ok(v);
        }
        let spec = s.strip_prefix("blocked:").ok_or_else(bad)?;
        let (tile, thread) = spec.split_once(':').ok_or_else(bad)?;
        let nums =
            |text: &str| -> Option<Vec<u32>> { text.split('x').map(|t| t.parse().ok()).collect() };
        match (nums(tile).as_deref(), nums(thread).as_deref()) {
            (Some(&[bm, bn, bk]), Some(&[tm, tn])) => {
                let block = Block::new(bm, bn, bk, tm, tn);
                match block.obstacle() {
                    None => Ok(MatmulVariant::Blocked(block)),
                    Some(why) => Err(Error::Invalid {
                        what: "matmul variant".into(),
                        why: format!("'{s}': {why}"),
                    }),
                }
            }
            _ => Err(bad()),
        }
    }
}
