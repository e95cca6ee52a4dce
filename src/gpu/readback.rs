//! Reading the GPU is an event: this module owns the only `map_async` in wgtrain. Mapping
//! synchronises: the callback fires only after every submission that wrote the buffer has
//! finished, so a mapped range always holds final values.

use std::future::Future;

use futures_intrusive::channel::shared::{OneshotReceiver, oneshot_channel};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};

/// A copy of GPU memory on its way to the host. Poll it with [`PendingRead::try_take`]
/// (never blocks) or [`PendingRead::wait`].
pub struct PendingRead {
    staging: wgpu::Buffer,
    receiver: OneshotReceiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

impl Gpu {
    /// Starts copying `bytes` bytes at `offset` of `buffer` to the host; returns at once.
    pub fn read_async(&self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> PendingRead {
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

    /// Reads a tensor back to the host (blocking).
    pub fn read(&self, tensor: &Tensor) -> Result<Vec<f32>> {
        self.read_async(tensor.buffer(), tensor.byte_offset(), tensor.byte_len())
            .wait(self)
            .map(|bytes| bytemuck::pod_collect_to_vec(&bytes))
    }

    pub fn read_u32(&self, tensor: &Tensor) -> Result<Vec<u32>> {
        self.read_async(tensor.buffer(), tensor.byte_offset(), tensor.byte_len())
            .wait(self)
            .map(|bytes| bytemuck::pod_collect_to_vec(&bytes))
    }
}

impl PendingRead {
    /// The bytes if the copy has landed, without blocking.
    pub fn try_take(&self, gpu: &Gpu) -> Result<Option<Vec<u8>>> {
        // A non-blocking poll runs any map callbacks whose work has finished.
        let _ = gpu.device().poll(wgpu::PollType::Poll);
        gpu.take_fault()?;
        let receive = std::pin::pin!(self.receiver.receive());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match receive.poll(&mut context) {
            std::task::Poll::Ready(Some(result)) => self.finish(result).map(Some),
            std::task::Poll::Ready(None) => {
                Err(Error::DeviceLost("readback channel closed".into()))
            }
            std::task::Poll::Pending => Ok(None),
        }
    }

    /// Blocks until the bytes arrive.
    pub fn wait(self, gpu: &Gpu) -> Result<Vec<u8>> {
        gpu.wait()?;
        let result = pollster::block_on(self.receiver.receive())
            .ok_or_else(|| Error::DeviceLost("readback never completed".into()))?;
        self.finish(result)
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
