//! Parsing the `--sizes` of `rezero bench`.

use crate::gpu::{Error, Result};

/// The `x`-separated positive integers of `s`, or an error naming `what` and `form`.
fn dims(s: &str, what: &str, form: &str) -> Result<Vec<u32>> {
    let bad = || Error::Invalid {
        what: what.into(),
        why: format!("'{s}' is not {form}"),
    };
    let parts = s
        .split('x')
        .map(|p| p.trim().parse::<u32>().map_err(|_| bad()))
        .collect::<Result<Vec<_>>>()?;
    if parts.contains(&0) {
        return Err(bad());
    }
    Ok(parts)
}

/// The error for a size whose element count overflows.
pub fn too_many_elements(size: &str) -> Error {
    Error::Invalid {
        what: "size".into(),
        why: format!("{size} has too many elements"),
    }
}

/// Parses "256" (a cube) or "4096x512x512" (M×N×K) for matmul.
pub fn parse_mnk(s: &str) -> Result<(u32, u32, u32)> {
    match dims(s, "matmul size", "N or MxNxK")?.as_slice() {
        [n] => Ok((*n, *n, *n)),
        [m, n, k] => Ok((*m, *n, *k)),
        _ => Err(Error::Invalid {
            what: "matmul size".into(),
            why: format!("'{s}' is neither N nor MxNxK"),
        }),
    }
}

/// Parses "TOKENSxDIM" or "TOKENSxDIMxVOCAB" (vocabulary 256 when left out) for embedding.
pub fn parse_embedding(s: &str) -> Result<(u32, u32, u32)> {
    match dims(s, "embedding size", "TOKENSxDIM or TOKENSxDIMxVOCAB")?.as_slice() {
        [t, d] => Ok((*t, *d, 256)),
        [t, d, v] => Ok((*t, *d, *v)),
        _ => Err(Error::Invalid {
            what: "embedding size".into(),
            why: format!("'{s}' is neither TOKENSxDIM nor TOKENSxDIMxVOCAB"),
        }),
    }
}

/// Parses "ROWSxCOLS" for softmax, layernorm and cross-entropy.
pub fn parse_rows_cols(s: &str) -> Result<(u32, u32)> {
    match dims(s, "size", "ROWSxCOLS")?.as_slice() {
        [r, c] => Ok((*r, *c)),
        _ => Err(Error::Invalid {
            what: "size".into(),
            why: format!("'{s}' is not ROWSxCOLS"),
        }),
    }
}

/// Parses "DEPTH", "DEPTHxWIDTH" or "DEPTHxWIDTHxBATCH" (width 256, batch 100 by default)
/// for the MLP training step.
pub fn parse_mlp(s: &str) -> Result<(u32, u32, u32)> {
    match dims(s, "MLP size", "DEPTH[xWIDTH[xBATCH]]")?.as_slice() {
        [d] => Ok((*d, 256, 100)),
        [d, w] => Ok((*d, *w, 100)),
        [d, w, b] => Ok((*d, *w, *b)),
        _ => Err(Error::Invalid {
            what: "MLP size".into(),
            why: format!("'{s}' is not DEPTH[xWIDTH[xBATCH]]"),
        }),
    }
}

/// Parses an element count, with an optional K or M suffix (powers of two: 16M = 16·2²⁰).
pub fn parse_count(s: &str) -> Result<u32> {
    let bad = || Error::Invalid {
        what: "element count".into(),
        why: format!("'{s}' is not a count like 1048576, 1M or 16M"),
    };
    let t = s.trim();
    let (digits, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1u64 << 20),
        _ => (t, 1),
    };
    let n = digits.parse::<u64>().map_err(|_| bad())? * mult;
    u32::try_from(n).map_err(|_| bad())
}

/// Parses "T" or "BHxTxD" (8 heads of dimension 64 by default) for attention.
pub fn parse_attention(s: &str) -> Result<(u32, u32, u32)> {
    match dims(s, "attention size", "T or BHxTxD")?.as_slice() {
        [t] => Ok((8, *t, 64)),
        [bh, t, d] => Ok((*bh, *t, *d)),
        _ => Err(Error::Invalid {
            what: "attention size".into(),
            why: format!("'{s}' is neither T nor BHxTxD"),
        }),
    }
}

/// Parses "LAYERSxD_MODELxSEQxBATCH" for the language-model step.
pub fn parse_lm(s: &str) -> Result<(u32, u32, u32, u32)> {
    match dims(s, "language-model size", "LAYERSxD_MODELxSEQxBATCH")?.as_slice() {
        [l, d, t, b] => Ok((*l, *d, *t, *b)),
        _ => Err(Error::Invalid {
            what: "language-model size".into(),
            why: format!("'{s}' is not LAYERSxD_MODELxSEQxBATCH"),
        }),
    }
}

/// Parses "BATCHxC_INxSIZExC_OUTxKxSTRIDE" (square images, padding K/2) for a conv layer.
pub fn parse_conv(s: &str) -> Result<crate::kernels::conv2d::Conv2d> {
    match dims(s, "conv size", "BATCHxC_INxSIZExC_OUTxKxSTRIDE")?.as_slice() {
        [b, ci, size, co, k, stride] => Ok(crate::kernels::conv2d::Conv2d::new(
            *b, *ci, *size, *size, *co, *k,
        )
        .stride(*stride)
        .pad(k / 2)),
        _ => Err(Error::Invalid {
            what: "conv size".into(),
            why: format!("'{s}' is not BATCHxC_INxSIZExC_OUTxKxSTRIDE"),
        }),
    }
}

/// Parses "BATCHxCHANNELSxPIXELS" for batchnorm and pooling.
pub fn parse_batchnorm(s: &str) -> Result<crate::kernels::batchnorm::BatchNormShape> {
    match dims(s, "batchnorm size", "BATCHxCHANNELSxPIXELS")?.as_slice() {
        [batch, channels, pixels] => Ok(crate::kernels::batchnorm::BatchNormShape::new(
            *batch, *channels, *pixels,
        )),
        _ => Err(Error::Invalid {
            what: "batchnorm size".into(),
            why: format!("'{s}' is not BATCHxCHANNELSxPIXELS"),
        }),
    }
}

/// Parses "DEPTHxBATCH" for the ResNet step.
pub fn parse_resnet(s: &str) -> Result<(u32, u32)> {
    match dims(s, "ResNet size", "DEPTHxBATCH")?.as_slice() {
        [depth, batch] => Ok((*depth, *batch)),
        _ => Err(Error::Invalid {
            what: "ResNet size".into(),
            why: format!("'{s}' is not DEPTHxBATCH"),
        }),
    }
}
