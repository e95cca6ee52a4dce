//! The GPU layer: adapter and device, tensors and their buffer pool, compiled kernels and
//! dispatches, readback. Nothing here knows about neural networks.

#[cfg(not(target_arch = "wasm32"))]
pub mod autotune;
pub(crate) mod context;
pub(crate) mod kernel;
pub(crate) mod pool;
mod readback;
mod tensor;
mod timer;

pub use context::Gpu;
pub use kernel::{Dispatch, STEP_SLOT_BYTES};
pub use pool::PoolStats;
pub use readback::{PendingRead, ReadbackStats};
pub use tensor::Tensor;
#[cfg(not(target_arch = "wasm32"))]
pub use timer::{CLOCK_WARMUP, Warmup, time_pass};
pub use timer::{Clock, median};
