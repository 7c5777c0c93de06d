//! Tape-based automatic differentiation on GPU tensors.
//!
//! A [`Tape`] records each op as it runs forward (plain data: an [`Op`](tape::Op) with its
//! input ids and what backward needs saved) and [`Tape::backward`] replays them in
//! reverse, one `match` arm per op calling the backward launchers of [`crate::kernels`].
//!
//! **The gradient rule.** Parameter gradients are accumulated (`+=`) into `Param::grad`,
//! which persists across steps until the optimizer zeroes it. An activation's gradient is
//! written (`=`) by the first op that reaches it in the reverse sweep; when a tensor
//! feeds two consumers (the residual stream: `x` feeds both `F(x)` and `x + α·F(x)`) the
//! later contributions add to it (`+=`). `Tape::target` alone applies this rule: every
//! backward launcher takes an accumulate flag ([`Grad`](crate::kernels::Grad)) for each
//! gradient it writes.
//!
//! All work of a step goes into one command encoder and compute pass; nothing is read back
//! unless asked ([`Tape::read`]). Activations and gradients come from the tape's
//! [`BufferPool`](crate::gpu::BufferPool) and go back at [`Tape::reset`], so a training
//! loop that repeats the same shapes allocates nothing after its first step. A step can
//! be recorded on a dry tape ([`Tape::dry`]) to find and [`tune`] its kernels first.
//!
//! **Precision.** A tape records on f32 activations, or on f16 ones
//! ([`Tape::set_precision`]): see `precision.rs` for what stays f32 (parameters and their
//! gradients, norms' gains, α, the loss) and how an f32 weight becomes an f16 operand.

mod backward;
mod backward_ops;
mod dropout;
mod op;
mod ops;
mod ops_image;
mod ops_linear;
mod precision;
mod readback;
#[allow(clippy::module_inception)]
mod tape;
mod tensor;
pub mod tune;

pub use crate::kernels::bias::Activation;
pub use dropout::DropoutStep;
pub use ops_image::RunningStats;
pub use tape::Tape;
pub use tensor::{Param, Tensor};
