//! The one error type of wgtrain. Each variant is something a caller can act on, and carries
//! the context (file and row, op and shapes, step) needed to act.

use std::path::PathBuf;

/// Everything that can go wrong in wgtrain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter on any enabled backend, or none that wgtrain can use.
    #[error(
        "no GPU adapter found{detail}. wgtrain needs a Vulkan, Metal or DX12 driver; on a machine \
         without a GPU install Mesa's CPU driver lavapipe (Debian/Ubuntu: `apt-get install \
         mesa-vulkan-drivers`)"
    )]
    NoAdapter {
        /// What the search saw (the adapters wgpu listed, or the backend's error).
        detail: String,
    },

    /// The adapter was found but refused a device (features or limits it lacks).
    #[error("could not open the GPU device: {0}")]
    DeviceRequest(String),

    /// Two shapes that must agree do not: an op's operands, or data against a model.
    #[error("shape mismatch in {op}: {left:?} vs {right:?}")]
    ShapeMismatch {
        /// The op or check that compared them.
        op: String,
        /// The shape it was given.
        left: Vec<usize>,
        /// The shape it needed.
        right: Vec<usize>,
    },

    /// Malformed input data: a file, or bytes standing for one.
    #[error("{file}: {location}: {reason}")]
    InvalidData {
        /// The file (or the name the caller gave the bytes).
        file: PathBuf,
        /// Where in it: line and column, byte offset, row, tensor name.
        location: String,
        /// What is wrong there.
        reason: String,
    },

    #[error("non-finite value in {what} at step {step}")]
    /// A NaN or infinity where training cannot go on: in the loss, the gradients, the data.
    NonFinite {
        /// Which value (`loss`, `gradient norm`, a feature's row and column...).
        what: String,
        /// The 1-based step that produced it (0 before training).
        step: u64,
    },

    /// A buffer or dispatch larger than the adapter's limits allow.
    #[error("{what} needs {requested} bytes but the adapter allows at most {allowed}")]
    OverLimit {
        /// The buffer or binding.
        what: String,
        /// The size it needed.
        requested: u64,
        /// The adapter's limit.
        allowed: u64,
    },

    /// The device was lost (driver reset, GPU removed, a wait that timed out); the trainer
    /// cannot continue, but the last checkpoint on disk is intact.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),

    /// wgpu reported a validation or out-of-memory error.
    #[error("GPU error: {0}")]
    Gpu(String),

    /// A kernel's output disagreed with its f64 reference (benchmarks check before timing).
    #[error("wrong result: {0}")]
    WrongResult(String),

    /// An argument out of its domain: a zero batch size, a negative rate, a bad setting.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A signal (SIGINT, SIGTERM, SIGHUP) asked the run to stop; it stopped between steps.
    #[error("interrupted by signal {signal}: {detail}")]
    Interrupted {
        /// The signal's number.
        signal: i32,
        /// What was saved, and how to resume.
        detail: String,
    },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// wgtrain's result: [`Error`] unless said otherwise.
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
