//! Every kernel against its f64 reference at awkward shapes, on whatever adapter is present.

#[path = "../common/mod.rs"]
mod common;

mod conv;
mod coop;
mod data;
mod elementwise;
mod loss;
mod matmul;
mod norm;
mod optim;
mod pool;
mod random;
mod reduce;
mod tensor;
mod text;

/// A one-slot step ring holding (seed, step): what the random and sampling kernels key on.
pub(crate) fn step_ring(seed: u32, step: u32) -> wgpu::Buffer {
    let ring = common::gpu()
        .device()
        .create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: wgtrain::gpu::STEP_SLOT_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
    let params = wgtrain::kernels::optim::StepParams {
        step,
        seed,
        ..Default::default()
    };
    common::gpu()
        .queue()
        .write_buffer(&ring, 0, bytemuck::bytes_of(&params));
    ring
}
