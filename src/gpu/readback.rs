//! Reading the GPU is an event: this module owns the only `map_async` in wgtrain. Mapping
//! synchronises: the callback fires only after every submission that wrote the buffer has
//! finished, so a mapped range always holds final values.
//!
//! Waits are futures at the core, because a browser's main thread must never block: there
//! the map callback resolves the future from the event loop. Natively the future polls the
//! device to completion first, and the blocking API (`read`, `wait`) is `block_on` of it.

use futures_intrusive::channel::shared::{OneshotReceiver, oneshot_channel};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};

/// A copy of GPU memory on its way to the host; [`PendingRead::bytes`] (or, natively,
/// [`PendingRead::wait`]) collects it.
#[derive(Debug)]
pub struct PendingRead {
    staging: wgpu::Buffer,
    receiver: OneshotReceiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

impl Gpu {
    /// Starts copying `bytes` bytes at `offset` of `buffer` to the host; returns at once.
    pub fn start_read(&self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> PendingRead {
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgtrain readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .inner
            .device
            .create_command_encoder(&Default::default());
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, bytes);
        }
        self.inner.queue.submit([encoder.finish()]);
        let (sender, receiver) = oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            // The receiver may be gone if the caller dropped the read; nothing to tell then.
            let _ = sender.send(result);
        });
        PendingRead { staging, receiver }
    }

    /// Reads a tensor back to the host once the work queued before it has run.
    pub async fn read_async(&self, tensor: &Tensor) -> Result<Vec<f32>> {
        let bytes = self
            .start_read(tensor.buffer(), tensor.byte_offset(), tensor.byte_len())
            .bytes(self)
            .await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// [`Gpu::read_async`], blocking the thread until the values arrive.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self, tensor: &Tensor) -> Result<Vec<f32>> {
        pollster::block_on(self.read_async(tensor))
    }
}

impl PendingRead {
    /// The bytes, once they arrive.
    pub async fn bytes(self, gpu: &Gpu) -> Result<Vec<u8>> {
        // Natively nothing else drives the device's callbacks: poll until the queue is done.
        #[cfg(not(target_arch = "wasm32"))]
        gpu.wait()?;
        let result = self
            .receiver
            .receive()
            .await
            .ok_or_else(|| Error::DeviceLost("readback never completed".into()))?;
        gpu.take_fault()?;
        self.finish(result)
    }

    /// [`PendingRead::bytes`], blocking the thread until they arrive.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(self, gpu: &Gpu) -> Result<Vec<u8>> {
        pollster::block_on(self.bytes(gpu))
    }

    fn finish(&self, result: std::result::Result<(), wgpu::BufferAsyncError>) -> Result<Vec<u8>> {
        result.map_err(|e| Error::DeviceLost(format!("mapping a readback buffer failed: {e}")))?;
        let bytes = self
            .staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(e.to_string()))?
            .to_vec();
        self.staging.unmap();
        Ok(bytes)
    }
}
