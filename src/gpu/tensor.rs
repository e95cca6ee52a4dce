//! f32 tensors that live on the GPU: a pooled buffer (or a 256-byte-aligned window into one,
//! for parameters inside the flat parameter buffer) and a row-major shape.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu::pool::{self, PooledBuffer};

/// A row-major f32 (or u32) array resident on the GPU.
///
/// ```
/// use wgtrain::kernels::matmul::Matmul;
/// let gpu = wgtrain::Gpu::new()?;
/// let a = gpu.tensor(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
/// let b = gpu.tensor(&[1.0, 0.0, 0.0, 1.0], &[2, 2])?;
/// let c = gpu.zeros(&[2, 2])?;
/// let product = Matmul::default().dispatch(&gpu, &a, &b, &c)?;
/// gpu.run_pass(|pass| product.record(pass, 0))?;
/// assert_eq!((c.shape(), gpu.read(&c)?), (&[2, 2][..], vec![1.0, 2.0, 3.0, 4.0]));
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<PooledBuffer>,
    /// Byte offset of element 0 inside the buffer; a multiple of 256.
    offset: u64,
    shape: Vec<usize>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}

impl Tensor {
    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the elements take (4 per element).
    pub fn byte_len(&self) -> u64 {
        4 * self.len() as u64
    }

    /// The buffer the tensor lives in (shared with other tensors when it is a view).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.storage.buffer
    }

    /// Where in [`Tensor::buffer`] the tensor starts.
    pub fn byte_offset(&self) -> u64 {
        self.offset
    }

    /// The tensor's bytes as `(buffer, offset, bytes)`, a range [`Gpu::submit_and_read`] reads.
    pub fn byte_range(&self) -> (&wgpu::Buffer, u64, u64) {
        (self.buffer(), self.byte_offset(), self.byte_len())
    }

    /// The binding of exactly this tensor's elements.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.storage.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.byte_len().max(4)),
        })
    }

    /// A window of `shape` starting `element_offset` elements into this tensor, sharing its
    /// buffer. The offset must keep the 256-byte alignment bindings require.
    pub fn view(&self, element_offset: usize, shape: &[usize]) -> Result<Tensor> {
        let offset = self.offset + 4 * element_offset as u64;
        let len: usize = shape.iter().product();
        if !offset.is_multiple_of(pool::SIZE_QUANTUM) || element_offset + len > self.len() {
            return Err(Error::InvalidArgument(format!(
                "view of {shape:?} at element {element_offset} does not fit an aligned window of {:?}",
                self.shape
            )));
        }
        Ok(Tensor {
            storage: Arc::clone(&self.storage),
            offset,
            shape: shape.to_vec(),
        })
    }

    /// The same elements under another shape with as many elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(Error::ShapeMismatch {
                op: "reshape".into(),
                left: self.shape.clone(),
                right: shape.to_vec(),
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// True when both tensors are windows of the same buffer.
    pub fn shares_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }
}

impl Gpu {
    fn allocate(&self, shape: &[usize]) -> Result<Tensor> {
        let bytes = 4 * shape.iter().product::<usize>() as u64;
        self.check_size(&format!("a tensor of shape {shape:?}"), bytes)?;
        let storage = pool::acquire(&self.inner.pool, &self.inner.device, bytes);
        Ok(Tensor {
            storage: Arc::new(storage),
            offset: 0,
            shape: shape.to_vec(),
        })
    }

    /// A tensor whose contents are left as the pool had them. Kernels that write every
    /// element use this; tests poison it first.
    pub fn uninit(&self, shape: &[usize]) -> Result<Tensor> {
        self.allocate(shape)
    }

    /// A tensor of zeros.
    pub fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        self.filled(shape, 0.0)
    }

    /// A tensor with every element `value`.
    pub fn filled(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        let tensor = self.allocate(shape)?;
        self.write(&tensor, &vec![value; tensor.len()])?;
        Ok(tensor)
    }

    /// A tensor holding `data`, whose length must be the shape's product.
    pub fn tensor(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let tensor = self.allocate(shape)?;
        self.write(&tensor, data)?;
        Ok(tensor)
    }

    /// A tensor of u32 values (class indices, permutations) with the same storage as f32.
    pub fn tensor_u32(&self, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        let tensor = self.allocate(shape)?;
        self.write_u32(&tensor, data)?;
        Ok(tensor)
    }

    /// Overwrites `tensor` with `data` (queued: later submissions see it).
    pub fn write(&self, tensor: &Tensor, data: &[f32]) -> Result<()> {
        self.write_bytes(tensor, bytemuck::cast_slice(data), data.len())
    }

    pub(crate) fn write_u32(&self, tensor: &Tensor, data: &[u32]) -> Result<()> {
        self.write_bytes(tensor, bytemuck::cast_slice(data), data.len())
    }

    fn write_bytes(&self, tensor: &Tensor, bytes: &[u8], len: usize) -> Result<()> {
        if len != tensor.len() {
            return Err(Error::ShapeMismatch {
                op: "upload".into(),
                left: tensor.shape.clone(),
                right: vec![len],
            });
        }
        if !bytes.is_empty() {
            self.inner
                .queue
                .write_buffer(tensor.buffer(), tensor.offset, bytes);
        }
        Ok(())
    }

    /// Buffers the pool has created and holds idle: flat after warm-up in a steady loop.
    pub fn pool_stats(&self) -> pool::PoolStats {
        pool::stats(&self.inner.pool)
    }
}
