//! Models built from tape ops. Parameters are named struct fields with shape comments.

pub mod footprint;
pub mod init;
pub mod mlp;
pub mod resnet;
pub mod transformer;

pub use mlp::{Mlp, MlpConfig, MlpVariant};
pub use resnet::{Resnet, ResnetConfig, ResnetVariant};
pub use transformer::{BlockVariant, Transformer, TransformerConfig};
