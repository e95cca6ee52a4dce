//! Launcher for `shaders/text.wgsl`: a language model's batch, random blocks of a resident
//! token stream drawn on the GPU from (seed, step), so no step waits for the host.

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{matrix_dims, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "text",
    source: || {
        [
            include_str!("../../shaders/step.wgsl"),
            include_str!("../../shaders/hash.wgsl"),
            include_str!("../../shaders/text.wgsl"),
        ]
        .concat()
    },
    trusted: false,
};

static SAMPLE_BLOCKS: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "sample_blocks",
    bindings: &[
        Access::Uniform,
        Access::StepUniform,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

/// The salt of the trainer's training batches: step t of a run draws its blocks from
/// (seed, t, this).
pub const TRAIN_SALT: u32 = 0x7e47;
/// The salt of loss estimates: batch i of an estimate draws from (its seed, i + 1, this).
pub const EVAL_SALT: u32 = 0xe7a1;

/// Mirrors `BlockParams` in `shaders/text.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct BlockParams {
    pub(crate) rows: u32,
    pub(crate) block: u32,
    pub(crate) starts: u32,
    pub(crate) salt: u32,
}

/// Fills `input` (`[rows, block]` u32) with random contiguous blocks of `tokens` and `target`
/// (`[rows, block]` f32) with the token after each: row r's start is drawn uniformly from
/// `0..=len − block − 1` by hashing (r, step, seed ^ salt) from the step ring's slot.
pub fn sample_blocks(
    gpu: &Gpu,
    salt: u32,
    step_ring: &wgpu::Buffer,
    tokens: &Tensor,
    input: &Tensor,
    target: &Tensor,
) -> Result<Dispatch> {
    let (rows, block) = matrix_dims("sample_blocks input", input)?;
    if target.len() != rows * block {
        return Err(Error::ShapeMismatch {
            op: "sample_blocks target".into(),
            left: input.shape().to_vec(),
            right: target.shape().to_vec(),
        });
    }
    if tokens.len() <= block {
        return Err(Error::InvalidArgument(format!(
            "a stream of {} tokens has no block of {} tokens and its next token",
            tokens.len(),
            block + 1
        )));
    }
    let params = gpu.uniform(&BlockParams {
        rows: to_u32(rows),
        block: to_u32(block),
        starts: to_u32(tokens.len() - block),
        salt,
    });
    gpu.dispatch(
        &SAMPLE_BLOCKS,
        &[],
        &[
            Bind::Uniform(&params),
            Bind::Step(step_ring),
            Bind::Tensor(tokens),
            Bind::Tensor(input),
            Bind::Tensor(target),
        ],
        grid_1d(rows * block, 256),
    )
}
