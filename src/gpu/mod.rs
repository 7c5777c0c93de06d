//! GPU context: device selection, buffers and readback, the pipeline cache, errors.

mod bind_groups;
mod buffers;
mod context;

mod pipeline;
pub mod profile;
pub mod tuning;

pub use crate::error::{Error, Result};
pub use buffers::{BufferPool, Element, STORAGE_USAGE};
pub use context::{BackendChoice, Gpu, GpuOptions};
pub use pipeline::{Kernel, Shader, grid_1d};
pub(crate) use profile::begin_pass;
pub use profile::{Profile, ProfileRow, Work};
