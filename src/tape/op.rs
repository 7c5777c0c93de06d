//! What the tape keeps of a step: the ops recorded (`Op`, with what backward needs), in
//! order (`Node`), and what it knows of each tensor (`Slot`).

use crate::kernels::Dtype;
use crate::kernels::matmul::Matmul;

/// One recorded op: the plain data backward needs (input ids, saved buffers, dimensions).
pub(crate) enum Op {
    /// out = op(a)·op(b) (+ bias), 2D.
    Matmul {
        a: usize,
        b: usize,
        bias: Option<usize>,
        desc: Matmul,
    },
    /// out = x + α·f, α = alpha[alpha_index].
    Rezero {
        x: usize,
        f: usize,
        alpha: usize,
        alpha_index: u32,
    },
    Add {
        a: usize,
        b: usize,
    },
    Scale {
        x: usize,
        s: f32,
    },
    Relu {
        x: usize,
    },
    Gelu {
        x: usize,
    },
    /// out = act(x), where x is a product whose bias the same kernel added (its `Matmul`
    /// recorded without the bias): backward writes dx and the bias's gradient in one kernel.
    BiasActivation {
        x: usize,
        bias: usize,
        activation: crate::kernels::bias::Activation,
    },
    /// Row-wise LayerNorm over [rows, cols]; mean and rstd saved by the forward pass.
    LayerNorm {
        x: usize,
        gain: usize,
        bias: usize,
        mean: wgpu::Buffer,
        rstd: wgpu::Buffer,
        shape: crate::kernels::layernorm::LayerNormShape,
    },
    /// Dropout; backward draws the same mask again from the step key buffer.
    Dropout {
        x: usize,
        mask: crate::kernels::dropout::Mask,
        step: wgpu::Buffer,
    },
    /// Row-wise softmax over [rows, cols]; backward reads the output.
    Softmax {
        x: usize,
        rows: u32,
        cols: u32,
    },
    /// Rows of a [vocab, dim] table; the ids grouped on the host for the deterministic backward.
    Embedding {
        table: usize,
        order: wgpu::Buffer,
        offsets: wgpu::Buffer,
        shape: crate::kernels::embedding::EmbeddingShape,
    },
    /// Mean cross-entropy (a [1] loss); its gradient was computed with the loss, in the
    /// logits' operand type `dtype` (times the loss scale, if any).
    CrossEntropy {
        logits: usize,
        dlogits: wgpu::Buffer,
        dtype: crate::kernels::Dtype,
    },
    /// Causal multi-head self-attention of a fused qkv projection (read in place, packed);
    /// its output and log-sum-exp saved for the backward pass.
    Attention {
        qkv: usize,
        /// The output (the op's own tensor), which the backward's delta reads.
        o: wgpu::Buffer,
        lse: wgpu::Buffer,
        shape: crate::kernels::attention::AttentionShape,
    },
    /// Sum of all elements (a [1] output).
    Sum {
        x: usize,
    },
    /// NCHW convolution (implicit GEMM).
    Conv2d {
        x: usize,
        w: usize,
        bias: Option<usize>,
        shape: crate::kernels::conv2d::Conv2d,
        /// The kernel the forward ran; backward runs its counterparts.
        variant: crate::kernels::conv2d::ConvVariant,
    },
    /// Training-mode batch norm; the batch mean and rstd saved by the forward pass.
    BatchNorm {
        x: usize,
        gamma: usize,
        beta: usize,
        mean: wgpu::Buffer,
        rstd: wgpu::Buffer,
        shape: crate::kernels::batchnorm::BatchNormShape,
        config: crate::kernels::batchnorm::BatchNormConfig,
    },
    /// Subsample and zero-pad channels (the parameter-free ResNet shortcut).
    Shortcut {
        x: usize,
        shape: crate::kernels::shortcut::ShortcutShape,
    },
    /// Mean over pixels: [rows, pixels] → [rows].
    GlobalAvgPool {
        x: usize,
        rows: u32,
        pixels: u32,
    },
}

pub(crate) struct Node {
    pub out: usize,
    pub op: Op,
}

/// What the tape knows about one tensor of the step.
pub(crate) struct Slot {
    pub buffer: wgpu::Buffer,
    pub len: usize,
    /// The type of `buffer`'s elements (its gradient's too, but for a parameter's: f32).
    pub dtype: Dtype,
    /// Its copy in the tape's activation type, made once a step where an op needs it as
    /// an operand of that type (an f32 weight of an f16 product).
    pub operand: Option<wgpu::Buffer>,
    /// Set for parameters: backward accumulates into their own gradient buffer.
    pub param_grad: Option<wgpu::Buffer>,
    /// The activation gradient, once backward has written it.
    pub grad: Option<wgpu::Buffer>,
    /// False for inputs and for everything computed from inputs alone.
    pub requires_grad: bool,
}
