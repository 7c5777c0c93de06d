//! GPU context: device selection, buffers and readback, the pipeline cache, where launchers
//! record (a pass, or a `Prepared`), errors.

mod bind_groups;
mod buffers;
mod context;
mod open;
mod pipeline;
pub mod profile;
mod record;
mod subgroups;
pub mod tuning;
mod wait;

pub use crate::error::{Error, Result};
pub use buffers::{BufferPool, Element, STORAGE_USAGE};
pub use context::{Exclusive, Gpu, GpuOptions};
pub use open::{BackendChoice, usable_cooperative};
pub(crate) use pipeline::grid_1d;
pub use pipeline::{Kernel, Shader};
pub(crate) use profile::begin_pass;
pub use profile::{Profile, ProfileRow, Work};
pub use record::{Discard, KernelConfig, KernelList, Prepared, Recorder};
pub use subgroups::SUBGROUP_PROBE;
