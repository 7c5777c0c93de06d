//! The byte Transformer's loss in f64, written from the model's description (token plus
//! position embeddings, causal multi-head attention over a packed qkv projection, a GELU or
//! ReLU feed-forward layer, the five ways of combining a sublayer with its input, the final
//! norm of Pre-Norm, the output projection and the mean cross-entropy), independent of the
//! tape and the kernels. Parameters come flat, in `Transformer::params()` order.
#![allow(dead_code)]

use super::reference64::{attention64, cross_entropy64, layernorm64, linear64, relu64};
use rezero::nn::{BlockVariant, TransformerConfig};

const VOCAB: usize = 256;

/// Reads `Transformer::params()` in order from a flat slice.
struct Reader<'a> {
    flat: &'a [f64],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> &'a [f64] {
        let part = &self.flat[self.at..self.at + len];
        self.at += len;
        part
    }
}

/// One sublayer's layer norm, gain then bias.
type Norm<'a> = (&'a [f64], &'a [f64]);

/// The length of each parameter in `Transformer::params()` order, for `c`.
pub fn param_lengths(c: &TransformerConfig) -> Vec<usize> {
    let (dm, ff) = (c.d_model, c.d_ff);
    let mut lens = vec![VOCAB * dm, c.seq * dm];
    for _ in 0..c.layers {
        lens.extend([3 * dm * dm, 3 * dm, dm * dm, dm, ff * dm, ff, dm * ff, dm]);
        if matches!(
            c.variant,
            BlockVariant::PostNorm | BlockVariant::PreNorm | BlockVariant::RezeroPostNorm
        ) {
            lens.extend([dm; 4]);
        }
    }
    if c.variant.has_alpha() {
        lens.push(c.layers * if c.alpha_per_sublayer { 2 } else { 1 });
    }
    if c.variant == BlockVariant::PreNorm {
        lens.extend([dm; 2]);
    }
    lens.extend([VOCAB * dm, VOCAB]);
    lens
}

fn gelu64(x: &[f64]) -> Vec<f64> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    x.iter()
        .map(|&v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh()))
        .collect()
}

/// Mean cross-entropy of the model `c` with flat parameters `flat` on `ids` → `targets`
/// (batch rows of equal length).
pub fn transformer_loss64(
    c: &TransformerConfig,
    flat: &[f64],
    ids: &[u32],
    targets: &[u32],
    batch: usize,
) -> f64 {
    let (dm, ff, rows) = (c.d_model, c.d_ff, ids.len());
    let t = rows / batch;
    let norms = !matches!(c.variant, BlockVariant::Rezero | BlockVariant::Residual);
    let mut r = Reader { flat, at: 0 };
    let (tokens, positions) = (r.take(VOCAB * dm), r.take(c.seq * dm));
    let mut x: Vec<f64> = (0..rows * dm)
        .map(|i| tokens[ids[i / dm] as usize * dm + i % dm] + positions[(i / dm) % t * dm + i % dm])
        .collect();
    let blocks: Vec<_> = (0..c.layers)
        .map(|_| {
            let linears: Vec<_> = [(3 * dm, dm), (dm, dm), (ff, dm), (dm, ff)]
                .iter()
                .map(|&(o, i)| (r.take(o * i), r.take(o)))
                .collect();
            let n = norms.then(|| ((r.take(dm), r.take(dm)), (r.take(dm), r.take(dm))));
            (linears, n)
        })
        .collect();
    let alphas = c
        .variant
        .has_alpha()
        .then(|| r.take(c.layers * if c.alpha_per_sublayer { 2 } else { 1 }));
    let final_norm = (c.variant == BlockVariant::PreNorm).then(|| (r.take(dm), r.take(dm)));
    let (out_w, out_b) = (r.take(VOCAB * dm), r.take(VOCAB));
    assert_eq!(r.at, flat.len(), "parameters left over");
    for (i, (l, n)) in blocks.iter().enumerate() {
        for attention in [true, false] {
            let norm: Option<Norm> = n.map(|(n1, n2)| if attention { n1 } else { n2 });
            let alpha = alphas.map(|a| match c.alpha_per_sublayer {
                true => a[2 * i + usize::from(!attention)],
                false => a[i],
            });
            let input = match (c.variant, norm) {
                (BlockVariant::PreNorm, Some((g, b))) => layernorm64(&x, g, b, dm),
                _ => x.clone(),
            };
            let f = if attention {
                let qkv = linear64(&input, l[0].0, l[0].1, rows, dm, 3 * dm);
                let heads = attention64(&qkv, batch, t, c.heads, dm);
                linear64(&heads, l[1].0, l[1].1, rows, dm, dm)
            } else {
                let hidden = linear64(&input, l[2].0, l[2].1, rows, dm, ff);
                let act = if c.gelu {
                    gelu64(&hidden)
                } else {
                    relu64(&hidden)
                };
                linear64(&act, l[3].0, l[3].1, rows, ff, dm)
            };
            let sum: Vec<f64> = x
                .iter()
                .zip(&f)
                .map(|(xv, fv)| xv + alpha.unwrap_or(1.0) * fv)
                .collect();
            x = match (c.variant, norm) {
                (BlockVariant::PostNorm | BlockVariant::RezeroPostNorm, Some((g, b))) => {
                    layernorm64(&sum, g, b, dm)
                }
                _ => sum,
            };
        }
    }
    if let Some((g, b)) = final_norm {
        x = layernorm64(&x, g, b, dm);
    }
    let logits = linear64(&x, out_w, out_b, rows, dm, VOCAB);
    cross_entropy64(&logits, targets, VOCAB)
}
