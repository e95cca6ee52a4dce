//! Launchers for `shaders/reduce.wgsl`: row and column sums, deterministic global sums (two
//! passes), the gradient-clipping coefficient, and argmax per row.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_shape, matrix_dims, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "reduce",
    source: || {
        [
            include_str!("../../shaders/step.wgsl"),
            include_str!("../../shaders/reduce.wgsl"),
        ]
        .concat()
    },
    trusted: false,
};

const BINDINGS: &[Access] = &[Access::Uniform, Access::Read, Access::ReadWrite];

const fn spec(entry: &'static str) -> KernelSpec {
    KernelSpec {
        shader: &SHADER,
        entry,
        bindings: BINDINGS,
    }
}

static SUM_ROWS: KernelSpec = spec("sum_rows");
static SUM_COLS: KernelSpec = spec("sum_cols");
static SUM_PARTIALS: KernelSpec = spec("sum_partials");
static SUM_SQUARES_PARTIALS: KernelSpec = spec("sum_squares_partials");
static CLIP_COEFFICIENT: KernelSpec = spec("clip_coefficient");
static ARGMAX_ROWS: KernelSpec = spec("argmax_rows");
static COPY_TO_STEP_SLOT: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "copy_to_step_slot",
    bindings: &[
        Access::Uniform,
        Access::Read,
        Access::ReadWrite,
        Access::StepUniform,
    ],
};

/// Elements summed by one workgroup in the first pass of a global sum.
const CHUNK: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ReduceParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) scale: f32,
    pub(crate) _pad: u32,
}

fn launch(
    gpu: &Gpu,
    spec: &KernelSpec,
    (rows, cols): (usize, usize),
    scale: f32,
    inp: &Tensor,
    out: &Tensor,
    groups: [u32; 3],
) -> Result<Dispatch> {
    let params = gpu.uniform(&ReduceParams {
        rows: to_u32(rows),
        cols: to_u32(cols),
        scale,
        _pad: 0,
    });
    gpu.dispatch(
        spec,
        &[],
        &[Bind::Uniform(&params), Bind::Tensor(inp), Bind::Tensor(out)],
        groups,
    )
}

/// `out[c] = scale · Σ_r inp[r, c]`; `inp` is `[rows, cols]`, `out` is `[cols]`.
pub fn sum_rows(gpu: &Gpu, scale: f32, inp: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let dims = matrix_dims("sum_rows", inp)?;
    expect_shape("sum_rows out", out, &[dims.1])?;
    launch(gpu, &SUM_ROWS, dims, scale, inp, out, grid_1d(dims.1, 64))
}

/// `out[r] = scale · Σ_c inp[r, c]`; `inp` is `[rows, cols]`, `out` is `[rows]`.
pub fn sum_cols(gpu: &Gpu, scale: f32, inp: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let dims = matrix_dims("sum_cols", inp)?;
    expect_shape("sum_cols out", out, &[dims.0])?;
    launch(gpu, &SUM_COLS, dims, scale, inp, out, grid_1d(dims.0, 1))
}

/// `out[0] = scale · Σ inp` (or of squares): two dispatches, chunk partials then their sum, so
/// the order of additions is fixed and the result identical run to run.
pub fn sum_all(
    gpu: &Gpu,
    square: bool,
    scale: f32,
    inp: &Tensor,
    out: &Tensor,
) -> Result<Vec<Dispatch>> {
    expect_shape("sum_all out", out, &[1])?;
    let partials = partial_sums(gpu, square, inp)?;
    let second = launch(
        gpu,
        &SUM_COLS,
        (1, partials.1.len()),
        scale,
        &partials.1,
        out,
        [1, 1, 1],
    )?;
    Ok(vec![partials.0, second])
}

/// `out = [‖inp‖, min(1, max_norm / (‖inp‖ + 1e-6))]`: torch's `clip_grad_norm_` coefficient,
/// computed without leaving the GPU.
pub fn clip_coefficient(
    gpu: &Gpu,
    max_norm: f32,
    inp: &Tensor,
    out: &Tensor,
) -> Result<Vec<Dispatch>> {
    expect_shape("clip_coefficient out", out, &[2])?;
    let (first, partials) = partial_sums(gpu, true, inp)?;
    let second = launch(
        gpu,
        &CLIP_COEFFICIENT,
        (1, partials.len()),
        max_norm,
        &partials,
        out,
        [1, 1, 1],
    )?;
    Ok(vec![first, second])
}

fn partial_sums(gpu: &Gpu, square: bool, inp: &Tensor) -> Result<(Dispatch, Tensor)> {
    let chunks = inp.len().div_ceil(CHUNK).max(1);
    let partials = gpu.uninit(&[chunks])?;
    let spec = if square {
        &SUM_SQUARES_PARTIALS
    } else {
        &SUM_PARTIALS
    };
    let dispatch = launch(
        gpu,
        spec,
        (1, inp.len()),
        1.0,
        inp,
        &partials,
        grid_1d(chunks, 1),
    )?;
    Ok((dispatch, partials))
}

/// `out[r] = argmax_c inp[r, c]` as f32 (first index on ties, as `torch.argmax`).
pub fn argmax_rows(gpu: &Gpu, inp: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let dims = matrix_dims("argmax_rows", inp)?;
    expect_shape("argmax_rows out", out, &[dims.0])?;
    launch(gpu, &ARGMAX_ROWS, dims, 1.0, inp, out, grid_1d(dims.0, 256))
}

/// `ring[step.slot] = value[0]`, the slot read from the step-uniform ring when recorded: each
/// step of a submission leaves its loss in its own slot without ending the compute pass.
pub fn copy_to_step_slot(
    gpu: &Gpu,
    value: &Tensor,
    ring: &Tensor,
    step_ring: &wgpu::Buffer,
) -> Result<Dispatch> {
    expect_shape("copy_to_step_slot value", value, &[1])?;
    let params = gpu.uniform(&ReduceParams {
        rows: 1,
        cols: 1,
        scale: 1.0,
        _pad: 0,
    });
    gpu.dispatch(
        &COPY_TO_STEP_SLOT,
        &[],
        &[
            Bind::Uniform(&params),
            Bind::Tensor(value),
            Bind::Tensor(ring),
            Bind::Step(step_ring),
        ],
        [1, 1, 1],
    )
}
