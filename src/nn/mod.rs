//! Models built from tape ops. Parameters are named struct fields with shape comments.

pub mod init;
pub mod mlp;
pub mod transformer;

pub use mlp::{Mlp, MlpConfig, MlpVariant};
pub use transformer::{BlockVariant, Transformer, TransformerConfig};
