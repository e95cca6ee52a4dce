//! Launchers for `shaders/layernorm.wgsl`: LayerNorm over the last axis, its input gradient,
//! and its γ/β gradients.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_shape, matrix_dims, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "layernorm",
    source: || include_str!("../../shaders/layernorm.wgsl").to_string(),
    trusted: false,
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
];
const fn spec(entry: &'static str) -> KernelSpec {
    KernelSpec {
        shader: &SHADER,
        entry,
        bindings: BINDINGS,
    }
}
static FORWARD: KernelSpec = spec("layernorm_forward");
static BACKWARD_INPUT: KernelSpec = spec("layernorm_backward_input");
static BACKWARD_PARAMS: KernelSpec = spec("layernorm_backward_params");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LayerNormParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) eps: f32,
    pub(crate) _pad: u32,
}

/// γ, β of one LayerNorm, and its per-row `[rows, 2]` mean and 1/σ.
#[derive(Debug)]
pub struct LayerNormTensors<'a> {
    /// The gain, `[cols]`.
    pub gamma: &'a Tensor,
    /// The shift, `[cols]`.
    pub beta: &'a Tensor,
    /// Per row: mean and 1/σ, written by the forward, read by the backward.
    pub saved: &'a Tensor,
}

fn launch(
    gpu: &Gpu,
    spec: &KernelSpec,
    eps: f32,
    x: &Tensor,
    binds: [&Tensor; 6],
    threads: usize,
) -> Result<Dispatch> {
    let (rows, cols) = matrix_dims(spec.entry, x)?;
    let params = gpu.uniform(&LayerNormParams {
        rows: to_u32(rows),
        cols: to_u32(cols),
        eps,
        _pad: 0,
    });
    let mut all = vec![Bind::Uniform(&params), Bind::Tensor(x)];
    all.extend(binds.iter().map(|t| Bind::Tensor(t)));
    gpu.dispatch(spec, &[], &all, grid_1d(threads, 64))
}

fn check(x: &Tensor, t: &LayerNormTensors<'_>) -> Result<(usize, usize)> {
    let (rows, cols) = matrix_dims("layernorm", x)?;
    expect_shape("layernorm gamma", t.gamma, &[cols])?;
    expect_shape("layernorm beta", t.beta, &[cols])?;
    expect_shape("layernorm saved", t.saved, &[rows, 2])?;
    Ok((rows, cols))
}

/// `y = (x − μ)/√(σ² + ε) · γ + β` per row of `x` `[rows, cols]`; writes `saved`.
pub fn layernorm_forward(
    gpu: &Gpu,
    eps: f32,
    x: &Tensor,
    t: &LayerNormTensors<'_>,
    y: &Tensor,
) -> Result<Dispatch> {
    let (rows, _) = check(x, t)?;
    expect_shape("layernorm y", y, x.shape())?;
    let [unused] = gpu.stand_ins()?;
    launch(
        gpu,
        &FORWARD,
        eps,
        x,
        [t.gamma, t.beta, x, y, t.saved, &unused],
        rows,
    )
}

/// `dx` from `dy`, `x` and the saved statistics.
pub fn layernorm_backward_input(
    gpu: &Gpu,
    x: &Tensor,
    t: &LayerNormTensors<'_>,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    let (rows, _) = check(x, t)?;
    expect_shape("layernorm dy", dy, x.shape())?;
    expect_shape("layernorm dx", dx, x.shape())?;
    let [unused] = gpu.stand_ins()?;
    launch(
        gpu,
        &BACKWARD_INPUT,
        0.0,
        x,
        [t.gamma, x, dy, dx, t.saved, &unused],
        rows,
    )
}

/// `dγ[c] = Σ_r dy ⊙ x̂`, `dβ[c] = Σ_r dy`.
pub fn layernorm_backward_params(
    gpu: &Gpu,
    x: &Tensor,
    t: &LayerNormTensors<'_>,
    dy: &Tensor,
    (dgamma, dbeta): (&Tensor, &Tensor),
) -> Result<Dispatch> {
    let (_, cols) = check(x, t)?;
    expect_shape("layernorm dy", dy, x.shape())?;
    expect_shape("layernorm dgamma", dgamma, &[cols])?;
    expect_shape("layernorm dbeta", dbeta, &[cols])?;
    launch(
        gpu,
        &BACKWARD_PARAMS,
        0.0,
        x,
        [x, x, dy, dgamma, t.saved, dbeta],
        cols,
    )
}
