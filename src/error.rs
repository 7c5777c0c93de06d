//! The crate's one error type: structured variants, each naming what went wrong and where.

use std::path::PathBuf;

/// Everything that can go wrong in rezero, from adapter selection to a bad data file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter matched the request.
    #[error("no GPU adapter found: {hint}")]
    NoAdapter { hint: String },

    /// The adapter was found but refused to open a device.
    #[error("could not open a device on adapter '{adapter}': {why}")]
    Device { adapter: String, why: String },

    /// The device reported an error outside any launcher's checks (a validation error of
    /// the driver or the browser's WebGPU, an out-of-memory), collected by `Gpu::sync`.
    #[error("the GPU device on adapter '{adapter}' reported: {why}")]
    DeviceError { adapter: String, why: String },

    /// A buffer or dimension does not have the shape the operation needs.
    #[error("{op}: expected {expected}, got {got}")]
    Shape {
        op: &'static str,
        expected: String,
        got: String,
    },

    /// An operation was given an input with no elements.
    #[error("{op}: {what} is empty (size 0); every dimension must be at least 1")]
    Empty { op: &'static str, what: String },

    /// A device limit would be exceeded (binding size, workgroup storage, ...).
    #[error("{what}: needs {needed}, but the device limit is {limit}")]
    Limits {
        what: String,
        needed: u64,
        limit: u64,
    },

    /// A kernel variant cannot run this shape (alignment, feature), with the reason.
    #[error("{op} variant {variant}: {why}")]
    Unsupported {
        op: &'static str,
        variant: String,
        why: String,
    },

    /// A shader failed to compile or a pipeline failed validation.
    #[error("pipeline {shader}::{entry} failed to build: {message}")]
    Pipeline {
        shader: &'static str,
        entry: &'static str,
        message: String,
    },

    /// Copying a buffer back to the host failed.
    #[error("readback failed: {0}")]
    Readback(String),

    /// A command-line or API argument is out of range.
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },

    /// A checkpoint was not written because the model holds non-finite values: the run has
    /// diverged, and whatever checkpoint was there before stays.
    #[error("{}: not saved: {why} (the run has diverged); the checkpoint already there, if any, is kept", path.display())]
    Diverged { path: PathBuf, why: String },

    /// A data or checkpoint file is missing, truncated or malformed.
    #[error("{}: {why}", path.display())]
    Data { path: PathBuf, why: String },

    /// Reading, writing or creating a file failed; the io error is kept as the source.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        /// What was being done: "read", "write", "create the run folder", ...
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A training run stopped because it diverged (a non-finite loss, or one that
    /// exploded); its last good checkpoint is kept.
    #[error("{label} diverged at step {step}: {why}")]
    RunDiverged {
        label: String,
        step: u64,
        why: String,
    },
}

impl Error {
    /// An `Error::Io` naming the file, what was being done and the io error.
    pub fn io(path: &std::path::Path, action: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// An `Error::Data` naming the file and what is wrong with it.
    pub fn data(path: &std::path::Path, why: impl Into<String>) -> Error {
        Error::Data {
            path: path.to_path_buf(),
            why: why.into(),
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
