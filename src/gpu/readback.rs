//! Reading the GPU is an event: this module owns the only `map_async` in wgtrain. Mapping
//! synchronises: the callback fires only after every submission that wrote the buffer has
//! finished, so a mapped range always holds final values.
//!
//! Waits are futures at the core, because a browser's main thread must never block: there
//! the map callback resolves the future from the event loop. Natively the future polls the
//! device until the copy's own submission is done — not every submission, so the work queued
//! after it keeps the GPU busy — and the blocking API (`read`, `wait`) is `block_on` of it.
//! Staging buffers come back to a ring after each read: a training loop that reads its losses
//! every few steps creates none after its first reads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_intrusive::channel::shared::{OneshotReceiver, oneshot_channel};

use crate::error::{Error, Result};
use crate::gpu::pool::SIZE_QUANTUM;
use crate::gpu::{Gpu, Tensor};

/// A copy of GPU memory on its way to the host; [`PendingRead::bytes`] (or, natively,
/// [`PendingRead::wait`]) collects it.
#[derive(Debug)]
pub struct PendingRead {
    staging: wgpu::Buffer,
    bytes: u64,
    /// The copy's submission, which a native wait polls for (a browser needs no poll).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    submission: wgpu::SubmissionIndex,
    receiver: OneshotReceiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

/// Idle staging buffers by size, and what reading has cost so far.
#[derive(Debug, Default)]
pub(crate) struct Readbacks {
    idle: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    created: AtomicU64,
    full_waits: AtomicU64,
}

/// What reading the GPU has cost over a [`Gpu`]'s life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadbackStats {
    /// Staging buffers created (each read after the first of its size reuses one).
    pub staging_buffers_created: u64,
    /// Waits for every submission ([`Gpu::wait`]) rather than for one read's own.
    pub full_waits: u64,
}

impl Readbacks {
    pub(crate) fn count_full_wait(&self) {
        self.full_waits.fetch_add(1, Ordering::Relaxed);
    }
}

impl Gpu {
    /// Starts copying `bytes` bytes at `offset` of `buffer` to the host; returns at once.
    pub fn start_read(&self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> PendingRead {
        let encoder = self
            .inner
            .device
            .create_command_encoder(&Default::default());
        self.submit_and_read(encoder, &[(buffer, offset, bytes)])
    }

    /// Submits `encoder` with copies of `ranges` (buffer, byte offset, bytes; offsets and sizes
    /// multiples of 4) appended, to be read back one after the other: work and the read of its
    /// results take one submission (a training loop's chunk of steps and their losses), not
    /// two.
    pub fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        ranges: &[(&wgpu::Buffer, u64, u64)],
    ) -> PendingRead {
        let bytes = ranges.iter().map(|&(_, _, bytes)| bytes).sum();
        let staging = self.staging_buffer(bytes);
        let mut at = 0;
        for &(buffer, offset, bytes) in ranges {
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(buffer, offset, &staging, at, bytes);
            }
            at += bytes;
        }
        let submission = self.inner.queue.submit([encoder.finish()]);
        let (sender, receiver) = oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            // The receiver may be gone if the caller dropped the read; nothing to tell then.
            let _ = sender.send(result);
        });
        PendingRead {
            staging,
            bytes,
            submission,
            receiver,
        }
    }

    /// An idle staging buffer of at least `bytes` (sizes rounded up to 256), or a new one.
    fn staging_buffer(&self, bytes: u64) -> wgpu::Buffer {
        let size = bytes.max(4).next_multiple_of(SIZE_QUANTUM);
        let readbacks = &self.inner.readbacks;
        if let Some(buffer) = readbacks
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.get_mut(&size)?.pop())
        {
            return buffer;
        }
        readbacks.created.fetch_add(1, Ordering::Relaxed);
        self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgtrain readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// What reading has cost: staging buffers created, waits for every submission.
    pub fn readback_stats(&self) -> ReadbackStats {
        let readbacks = &self.inner.readbacks;
        ReadbackStats {
            staging_buffers_created: readbacks.created.load(Ordering::Relaxed),
            full_waits: readbacks.full_waits.load(Ordering::Relaxed),
        }
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
        // Natively nothing else drives the device's callbacks: poll until the copy's own
        // submission is done (later ones keep running).
        #[cfg(not(target_arch = "wasm32"))]
        gpu.wait_for(self.submission.clone())?;
        let result = self
            .receiver
            .receive()
            .await
            .ok_or_else(|| Error::DeviceLost("readback never completed".into()))?;
        gpu.take_fault()?;
        result.map_err(|e| Error::DeviceLost(format!("mapping a readback buffer failed: {e}")))?;
        let bytes = self
            .staging
            .get_mapped_range(..self.bytes.max(4))
            .map_err(|e| Error::Gpu(e.to_string()))?[..self.bytes as usize]
            .to_vec();
        self.staging.unmap();
        if let Ok(mut idle) = gpu.inner.readbacks.idle.lock() {
            idle.entry(self.staging.size())
                .or_default()
                .push(self.staging);
        }
        Ok(bytes)
    }

    /// [`PendingRead::bytes`], blocking the thread until they arrive.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(self, gpu: &Gpu) -> Result<Vec<u8>> {
        pollster::block_on(self.bytes(gpu))
    }
}
