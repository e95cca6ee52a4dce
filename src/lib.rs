//! wgtrain: train neural networks on any GPU through wgpu and WGSL compute shaders.
//!
//! Layers, bottom up: [`gpu`] (device, tensors, dispatches) → [`kernels`] (one launcher per
//! WGSL family) → [`graph`] (ops, gradients, plans) → [`nn`], [`optim`] → [`train`]; [`data`]
//! feeds them and [`bench`](mod@bench) measures them; [`files`] reads and writes every
//! user-named file.
//!
//! The README, whose library example runs as a doc test:
#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations)]
// On wasm32 wgpu's handles are neither Send nor Sync; one `Arc` code path serves both.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod data;
pub mod dist;
mod error;
pub mod files;
pub mod gpu;
pub mod graph;
pub mod kernels;
pub mod nn;
pub mod optim;
pub mod reference;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Gpu, Tensor};
/// The wgpu this crate is built on, for custom ops and callers that share its device.
pub use wgpu;

/// What an application needs, in one import.
pub mod prelude {
    pub use crate::data::{
        Dataset, DeviceDataset, Split, Standardizer, Task, load_csv, load_mnist,
    };
    pub use crate::graph::{Mode, Weights};
    pub use crate::kernels::Activation;
    pub use crate::kernels::loss::Loss;
    pub use crate::nn::Sequential;
    pub use crate::optim::{Optimizer, Schedule};
    pub use crate::train::{
        ClassificationMetrics, RegressionMetrics, StepLog, TrainConfig, Trainer,
    };
    pub use crate::{Error, Gpu, Result, Tensor};
}
