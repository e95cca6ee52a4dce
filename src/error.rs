//! The one error type of wgtrain. Each variant is something a caller can act on, and carries
//! the context (file and row, op and shapes, step) needed to act.

use std::path::PathBuf;

/// Everything that can go wrong in wgtrain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no GPU adapter found{detail}. wgtrain needs a Vulkan, Metal or DX12 driver; on a machine \
         without a GPU install Mesa's CPU driver lavapipe (Debian/Ubuntu: `apt-get install \
         mesa-vulkan-drivers`)"
    )]
    NoAdapter { detail: String },

    #[error("could not open the GPU device: {0}")]
    DeviceRequest(String),

    #[error("shape mismatch in {op}: {left:?} vs {right:?}")]
    ShapeMismatch {
        op: String,
        left: Vec<usize>,
        right: Vec<usize>,
    },

    #[error("{file}: {location}: {reason}")]
    InvalidData {
        file: PathBuf,
        location: String,
        reason: String,
    },

    #[error("non-finite value in {what} at step {step}")]
    NonFinite { what: String, step: u64 },

    #[error("{what} needs {requested} bytes but the adapter allows at most {allowed}")]
    OverLimit {
        what: String,
        requested: u64,
        allowed: u64,
    },

    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("wrong result: {0}")]
    WrongResult(String),

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A signal (SIGINT, SIGTERM, SIGHUP) asked the run to stop; it stopped between steps.
    #[error("interrupted by signal {signal}: {detail}")]
    Interrupted { signal: i32, detail: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A malformed input: which file, where in it (line, byte, tensor), what is wrong.
    pub fn invalid_data(
        file: &std::path::Path,
        location: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidData {
            file: file.to_path_buf(),
            location: location.into(),
            reason: reason.into(),
        }
    }
}
