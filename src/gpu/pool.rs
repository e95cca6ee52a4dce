//! A pool of storage buffers keyed by size, so that a training loop that asks for the same
//! shapes every step allocates nothing after its first step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Usage of every tensor buffer: bound as storage, filled and read back by copies.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Sizes are rounded up to this many bytes so that nearby sizes share a bucket; it is also
/// the storage-offset alignment every adapter accepts.
pub(crate) const SIZE_QUANTUM: u64 = 256;

#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    stats: PoolStats,
}

/// What the pool holds: buffers created over its life, and how many are idle now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers allocated over the pool's life.
    pub buffers_created: u64,
    /// Their bytes.
    pub bytes_created: u64,
    /// Buffers now free for reuse.
    pub buffers_idle: u64,
}

/// A buffer on loan from the pool; dropping it gives it back.
pub(crate) struct PooledBuffer {
    pub buffer: wgpu::Buffer,
    pool: Weak<Mutex<BufferPool>>,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade()
            && let Ok(mut pool) = pool.lock()
        {
            pool.stats.buffers_idle += 1;
            pool.free
                .entry(self.buffer.size())
                .or_default()
                .push(self.buffer.clone());
        }
    }
}

pub(crate) fn rounded_size(bytes: u64) -> u64 {
    bytes.max(4).div_ceil(SIZE_QUANTUM) * SIZE_QUANTUM
}

/// Takes a buffer of at least `bytes` from `pool`, creating one if none is idle. Contents are
/// whatever the previous owner left: callers that need zeros must clear it.
pub(crate) fn acquire(
    pool: &Arc<Mutex<BufferPool>>,
    device: &wgpu::Device,
    bytes: u64,
) -> PooledBuffer {
    let size = rounded_size(bytes);
    let reused = pool.lock().ok().and_then(|mut p| {
        let buffer = p.free.get_mut(&size).and_then(Vec::pop);
        if buffer.is_some() {
            p.stats.buffers_idle -= 1;
        }
        buffer
    });
    let buffer = reused.unwrap_or_else(|| {
        if let Ok(mut p) = pool.lock() {
            p.stats.buffers_created += 1;
            p.stats.bytes_created += size;
        }
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgtrain tensor"),
            size,
            usage: TENSOR_USAGE,
            mapped_at_creation: false,
        })
    });
    PooledBuffer {
        buffer,
        pool: Arc::downgrade(pool),
    }
}

pub(crate) fn stats(pool: &Mutex<BufferPool>) -> PoolStats {
    pool.lock().map(|p| p.stats).unwrap_or_default()
}
