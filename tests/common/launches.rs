//! Every public launcher, forward and backward, as a table of named launches over one set
//! of buffers in which any one slot can be made undersized: what the embedding contract
//! tests (`tests/embedding_contract.rs`) record, family by family.
#![allow(dead_code)]

use rezero::Gpu;
use rezero::gpu::Recorder;
use rezero::kernels::Dtype;
use rezero::kernels::attention::{AttentionShape, attention_backward, attention_forward};
use rezero::kernels::batchnorm::{
    BatchNormConfig, BatchNormShape, batchnorm_backward, batchnorm_train_forward,
};
use rezero::kernels::bias::{Activation, BiasShape, bias_activation_backward, bias_backward};
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use rezero::kernels::cross_entropy::cross_entropy;
use rezero::kernels::dropout::{Mask, dropout_backward, dropout_forward};
use rezero::kernels::elementwise as ew;
use rezero::kernels::embedding::{EmbeddingShape, embedding_backward, embedding_forward};
use rezero::kernels::heads::{HeadLayout, heads_to_rows, rows_to_heads};
use rezero::kernels::layernorm::{LayerNormShape, layernorm_backward, layernorm_forward};
use rezero::kernels::loss_scale::{LossScaleRule, loss_scale_update};
use rezero::kernels::matmul::{Matmul, matmul, matmul_activation};
use rezero::kernels::optim::{Adam, GlobalNorm, Gradient, adam};
use rezero::kernels::rezero::{RezeroShape, rezero_backward, rezero_forward};
use rezero::kernels::shortcut::{ShortcutShape, shortcut_backward, shortcut_forward};
use rezero::kernels::{Grad, NormSaved, pool, reduce, softmax};

/// Buffers for every launch: outputs (written) apart from inputs (read), since one dispatch
/// may not bind a buffer both ways; zero-filled, which is valid data for every kernel here
/// (ids and targets 0, offsets 0, sums of nothing). One slot may be made undersized.
pub struct Buffers {
    pub out: [wgpu::Buffer; 8],
    pub input: [wgpu::Buffer; 6],
}

impl Buffers {
    /// Every buffer 64 KiB, except slot `tiny` (outputs first, then inputs): 4 bytes.
    pub fn new(gpu: &Gpu, tiny: Option<usize>) -> Buffers {
        Buffers::from_fn(|slot| {
            let len = if tiny == Some(slot) { 1 } else { FULL };
            gpu.zeroed_f32(&format!("slot {slot}"), len)
        })
    }

    /// Slot by slot (outputs first, then inputs) from `make`.
    pub fn from_fn(mut make: impl FnMut(usize) -> wgpu::Buffer) -> Buffers {
        Buffers {
            out: std::array::from_fn(&mut make),
            input: std::array::from_fn(|i| make(8 + i)),
        }
    }

    pub fn slots(&self) -> impl Iterator<Item = &wgpu::Buffer> {
        self.out.iter().chain(&self.input)
    }
}

/// Slots of a `Buffers`: eight outputs, then six inputs.
pub const SLOTS: usize = 14;

/// Floats in every slot of `Buffers::new`.
pub const FULL: usize = 1 << 14;

/// The (launch, slot) pairs that need one element there, which the smallest buffer wgpu
/// binds (4 bytes) holds: a sum's output, the mean loss, the dropout step's key, the
/// squared global gradient norm.
pub const ONE_ELEMENT: [(&str, usize); 7] = [
    ("sum_all", 0),
    ("cross_entropy", 0),
    ("cross_entropy_loss_scaled", 0),
    ("dropout_forward", 9),
    ("dropout_backward", 9),
    ("adam_loss_scaled_and_clipped", 10),
    ("loss_scale_update", 8),
];

/// One launch of a launcher family, on shapes of odd sizes that no committed tuning table
/// holds; the families that take f16 activations use the `Dtype` (the others ignore it).
pub type Launch = fn(&Gpu, &mut dyn Recorder, &Buffers, Dtype) -> rezero::Result<()>;

const LN: LayerNormShape = LayerNormShape {
    rows: 7,
    cols: 33,
    dtype: Dtype::F32,
};
const HEADS: HeadLayout = HeadLayout {
    batch: 2,
    t: 5,
    heads: 3,
    d: 4,
    stride: 12,
    offset: 0,
};
const BN: BatchNormShape = BatchNormShape {
    batch: 2,
    channels: 3,
    pixels: 10,
    dtype: Dtype::F32,
};
const SHORTCUT: ShortcutShape = ShortcutShape {
    batch: 2,
    c_in: 3,
    c_out: 6,
    h: 8,
    w: 8,
    stride: 2,
    dtype: Dtype::F32,
};
const ADAM: Adam = Adam {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.0,
    decoupled: false,
};
const MASK: Mask = Mask { p: 0.1, site: 0 };
const EMBEDDING: EmbeddingShape = EmbeddingShape {
    tokens: 9,
    dim: 12,
    vocab: 256,
    dtype: Dtype::F32,
};
const BIAS: BiasShape = BiasShape {
    rows: 9,
    cols: 13,
    dtype: Dtype::F32,
};

fn product() -> Matmul {
    Matmul::new(37, 29, 23)
}

fn conv() -> Conv2d {
    Conv2d::new(2, 3, 9, 9, 5, 3).pad(1)
}

fn attention() -> AttentionShape {
    AttentionShape::heads(2, 17, 8)
}

fn saved(i: &[wgpu::Buffer; 6]) -> NormSaved<'_> {
    NormSaved {
        x: &i[1],
        mean: &i[2],
        rstd: &i[3],
        gain: &i[4],
    }
}

/// Every public launcher family, forward and backward, by name.
/// Whether the launch of `family` in [`launches`] uses its `Dtype` (its kernels take f16
/// activations).
#[allow(dead_code)] // not every test binary asks
pub fn takes_dtype(family: &str) -> bool {
    let families = [
        "add",
        "fill",
        "rezero",
        "softmax",
        "layernorm",
        "cross_entropy",
        "bias",
        "batchnorm",
        "global_avg_pool",
        "shortcut",
        "dropout",
        "embedding",
        "attention",
    ];
    families.iter().any(|f| family.starts_with(f))
}

pub fn launches() -> Vec<(&'static str, Launch)> {
    vec![
        ("add", |g, p, b, d| {
            ew::add(g, p, &b.out[0], &b.input[0], &b.input[1], 300, false, d)
        }),
        ("fill", |g, p, b, d| ew::fill(g, p, &b.out[0], 1.0, 300, d)),
        ("rezero_forward", |g, p, b, d| {
            rezero_forward(
                g,
                p,
                &b.out[0],
                &b.input[0],
                &b.input[1],
                &b.input[2],
                RezeroShape {
                    n: 300,
                    alpha_index: 3,
                    dtype: d,
                },
            )
        }),
        ("rezero_backward", |g, p, b, d| {
            let [dx, df, da] = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
            let shape = RezeroShape {
                n: 300,
                alpha_index: 3,
                dtype: d,
            };
            let [dy, f, alpha] = [&b.input[0], &b.input[1], &b.input[2]];
            rezero_backward(g, p, dx, df, da, &b.out[3], dy, f, alpha, shape)
        }),
        ("sum_rows", |g, p, b, _| {
            reduce::sum_rows(g, p, &b.out[0], &b.input[0], 7, 33, false, false)
        }),
        ("sum_all", |g, p, b, _| {
            reduce::sum_all(g, p, &b.out[0], &b.out[1], &b.input[0], 300, true, false)
        }),
        ("softmax_forward", |g, p, b, d| {
            softmax::softmax_forward(g, p, &b.out[0], &b.input[0], 7, 33, d)
        }),
        ("softmax_backward", |g, p, b, d| {
            softmax::softmax_backward(g, p, &b.out[0], &b.input[0], &b.input[1], 7, 33, false, d)
        }),
        ("softmax_causal", |g, p, b, d| {
            softmax::softmax_causal_forward(g, p, &b.out[0], &b.input[0], 10, 5, 0.5, d)
        }),
        ("layernorm_forward", |g, p, b, d| {
            let [y, mean, rstd] = [&b.out[0], &b.out[1], &b.out[2]];
            layernorm_forward(
                g,
                p,
                y,
                mean,
                rstd,
                &b.input[0],
                &b.input[1],
                &b.input[2],
                LayerNormShape { dtype: d, ..LN },
                1e-5,
            )
        }),
        ("layernorm_backward", |g, p, b, d| {
            let [dx, dgain, dbias] = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
            let (scratch, dy) = (&b.out[3], &b.input[0]);
            layernorm_backward(
                g,
                p,
                dx,
                dgain,
                dbias,
                scratch,
                dy,
                saved(&b.input),
                LayerNormShape { dtype: d, ..LN },
            )
        }),
        ("embedding_forward", |g, p, b, d| {
            let shape = EmbeddingShape {
                dtype: d,
                ..EMBEDDING
            };
            embedding_forward(g, p, &b.out[0], &b.input[0], &b.input[1], shape, false)
        }),
        ("embedding_backward", |g, p, b, d| {
            let [dout, order, offsets] = [&b.input[0], &b.input[1], &b.input[2]];
            embedding_backward(
                g,
                p,
                Grad::write(&b.out[0]),
                dout,
                order,
                offsets,
                EmbeddingShape {
                    dtype: d,
                    ..EMBEDDING
                },
            )
        }),
        ("cross_entropy", |g, p, b, d| {
            let [loss, dlogits, rows] = [&b.out[0], &b.out[1], &b.out[2]];
            cross_entropy(
                g,
                p,
                loss,
                dlogits,
                rows,
                &b.input[0],
                &b.input[1],
                5,
                11,
                d,
                None,
            )
        }),
        ("adam", |g, p, b, _| {
            let grad = Gradient::keep(&b.input[0]);
            adam(
                g,
                p,
                &b.out[0],
                &b.out[1],
                &b.out[2],
                grad,
                &b.input[1],
                300,
                &ADAM,
                None,
            )
        }),
        ("adam_loss_scaled_and_clipped", |g, p, b, _| {
            let grad = Gradient::keep(&b.input[0]);
            let global = GlobalNorm {
                norm_sq: &b.input[2],
                clip: Some(1.0),
                loss_scale: Some(&b.input[3]),
            };
            let (param, m, v, values) = (&b.out[0], &b.out[1], &b.out[2], &b.input[1]);
            adam(g, p, param, m, v, grad, values, 300, &ADAM, Some(global))
        }),
        ("loss_scale_update", |g, p, b, _| {
            loss_scale_update(g, p, &b.out[0], &b.input[0], &LossScaleRule::default())
        }),
        ("cross_entropy_loss_scaled", |g, p, b, d| {
            let [loss, dlogits, rows] = [&b.out[0], &b.out[1], &b.out[2]];
            let (logits, targets, scaler) = (&b.input[0], &b.input[1], Some(&b.input[2]));
            cross_entropy(g, p, loss, dlogits, rows, logits, targets, 5, 11, d, scaler)
        }),
        ("rows_to_heads", |g, p, b, _| {
            rows_to_heads(g, p, &b.out[0], &b.input[0], &HEADS)
        }),
        ("heads_to_rows", |g, p, b, _| {
            heads_to_rows(g, p, &b.out[0], &b.input[0], &HEADS, false)
        }),
        ("attention_forward", |g, p, b, d| {
            let [q, k, v] = [&b.input[0], &b.input[1], &b.input[2]];
            attention_forward(g, p, &b.out[0], &b.out[1], q, k, v, &attention().dtype(d))
        }),
        ("attention_backward", |g, p, b, d| {
            let grads = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
            let i = &b.input;
            let inputs = [&i[0], &i[1], &i[2], &i[3], &i[4], &i[5]];
            attention_backward(g, p, grads, &b.out[3], inputs, &attention().dtype(d))
        }),
        ("matmul", |g, p, b, _| {
            matmul(g, p, &b.out[0], &b.input[0], &b.input[1], None, &product()).map(drop)
        }),
        ("matmul_activation", |g, p, b, _| {
            let (a, w, bias) = (&b.input[0], &b.input[1], Some(&b.input[2]));
            let gelu = Activation::Gelu;
            matmul_activation(g, p, &b.out[0], &b.out[1], a, w, bias, gelu, &product()).map(drop)
        }),
        ("bias_backward", |g, p, b, d| {
            bias_backward(
                g,
                p,
                Grad::write(&b.out[0]),
                None,
                &b.input[0],
                BiasShape { dtype: d, ..BIAS },
            )
        }),
        ("bias_activation_backward", |g, p, b, d| {
            let [dx, db] = [&b.out[0], &b.out[1]].map(Grad::write);
            let gelu = Activation::Gelu;
            bias_activation_backward(
                g,
                p,
                dx,
                db,
                None,
                &b.input[0],
                &b.input[1],
                gelu,
                BiasShape { dtype: d, ..BIAS },
            )
        }),
        ("conv2d_forward", |g, p, b, _| {
            let (x, w, bias) = (&b.input[0], &b.input[1], Some(&b.input[2]));
            conv::conv2d_forward(
                g,
                p,
                &b.out[0],
                x,
                w,
                bias,
                &conv(),
                ConvVariant::Auto,
                false,
            )
        }),
        ("conv2d_backward_input", |g, p, b, _| {
            let (dy, w) = (&b.input[0], &b.input[1]);
            conv::conv2d_backward_input(g, p, &b.out[0], dy, w, &conv(), ConvVariant::Auto, false)
        }),
        ("conv2d_backward_weight", |g, p, b, _| {
            let (dw, scratch, dy, x) = (&b.out[0], &b.out[1], &b.input[0], &b.input[1]);
            let auto = ConvVariant::Auto;
            conv::conv2d_backward_weight(g, p, dw, scratch, dy, x, &conv(), auto, false)
        }),
        ("conv2d_backward_bias", |g, p, b, _| {
            conv::conv2d_backward_bias(g, p, &b.out[0], &b.input[0], &conv(), false)
        }),
        ("batchnorm_train_forward", |g, p, b, d| {
            let o = &b.out;
            let (x, gamma, beta) = (&b.input[0], &b.input[1], &b.input[2]);
            let (config, bn) = (
                BatchNormConfig::default(),
                BatchNormShape { dtype: d, ..BN },
            );
            batchnorm_train_forward(
                g, p, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], x, gamma, beta, &bn, &config,
            )
        }),
        ("batchnorm_backward", |g, p, b, d| {
            let [dx, dgamma, dbeta] = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
            let (scratch, dy, config) = (&b.out[3], &b.input[0], BatchNormConfig::default());
            batchnorm_backward(
                g,
                p,
                dx,
                dgamma,
                dbeta,
                scratch,
                dy,
                saved(&b.input),
                &BatchNormShape { dtype: d, ..BN },
                &config,
            )
        }),
        ("global_avg_pool_forward", |g, p, b, d| {
            pool::global_avg_pool_forward(g, p, &b.out[0], &b.input[0], 6, 10, d)
        }),
        ("global_avg_pool_backward", |g, p, b, d| {
            pool::global_avg_pool_backward(g, p, &b.out[0], &b.input[0], 6, 10, false, d)
        }),
        ("shortcut_forward", |g, p, b, d| {
            let shape = ShortcutShape {
                dtype: d,
                ..SHORTCUT
            };
            shortcut_forward(g, p, &b.out[0], &b.input[0], &shape)
        }),
        ("shortcut_backward", |g, p, b, d| {
            let shape = ShortcutShape {
                dtype: d,
                ..SHORTCUT
            };
            shortcut_backward(g, p, &b.out[0], &b.input[0], &shape, false)
        }),
        ("dropout_forward", |g, p, b, d| {
            dropout_forward(g, p, &b.out[0], &b.input[0], &b.input[1], 300, MASK, d)
        }),
        ("dropout_backward", |g, p, b, d| {
            let (dx, dy, step) = (Grad::write(&b.out[0]), &b.input[0], &b.input[1]);
            dropout_backward(g, p, dx, dy, step, 300, MASK, d)
        }),
    ]
}
