//! wgtrain: train neural networks on any GPU through wgpu and WGSL compute shaders.
//!
//! Layers, bottom up: [`gpu`] (device, tensors, dispatches) → [`kernels`] (one launcher per
//! WGSL family) → graph, nn, optim → train.

pub mod bench;
pub mod data;
mod error;
pub mod gpu;
pub mod graph;
pub mod kernels;
pub mod nn;
pub mod optim;
pub mod reference;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Gpu, Tensor};
