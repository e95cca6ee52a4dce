//! Launchers for `shaders/norm.wgsl`: batch normalisation (BatchNorm1d and 2d) forward,
//! training and eval, and backward.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_shape, shape_error, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "norm",
    source: || include_str!("../../shaders/norm.wgsl").to_string(),
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
static FORWARD: KernelSpec = spec("batchnorm_forward");
static BACKWARD: KernelSpec = spec("batchnorm_backward");
static EVAL: KernelSpec = spec("batchnorm_eval");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct NormParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) inner: u32,
    pub(crate) eps: f32,
    pub(crate) momentum: f32,
    pub(crate) _pad0: u32,
    pub(crate) _pad1: u32,
    pub(crate) _pad2: u32,
}

/// `(rows, channels, inner)` of x: `[B, C]` (BatchNorm1d's usual input) or `[B, C, S]`.
fn channel_dims(op: &str, x: &Tensor) -> Result<(usize, usize, usize)> {
    match *x.shape() {
        [rows, cols] => Ok((rows, cols, 1)),
        [rows, cols, inner] => Ok((rows, cols, inner)),
        _ => Err(shape_error(
            &format!("{op} (expects [B, C] or [B, C, S])"),
            x.shape(),
            &[],
        )),
    }
}

/// BatchNorm1d's hyper-parameters (PyTorch's defaults: eps 1e-5, momentum 0.1).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchNormConfig {
    /// Added to the variance.
    pub eps: f32,
    /// Weight of the batch's statistics in the running ones.
    pub momentum: f32,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// Tensors of one batch-norm layer over `[rows, cols]` or `[rows, cols, inner]` activations.
#[derive(Debug)]
pub struct BatchNormTensors<'a> {
    /// The gain, `[cols]`.
    pub gamma: &'a Tensor,
    /// The shift, `[cols]`.
    pub beta: &'a Tensor,
    /// `[2, cols]`: batch mean and 1/√(var + ε), written by the training forward.
    pub saved: &'a Tensor,
    /// `[2, cols]`: running_mean and running_var.
    pub running: &'a Tensor,
}

fn launch(
    gpu: &Gpu,
    spec: &KernelSpec,
    config: BatchNormConfig,
    x: &Tensor,
    binds: [&Tensor; 6],
    groups: Option<[u32; 3]>,
) -> Result<Dispatch> {
    let (rows, cols, inner) = channel_dims(spec.entry, x)?;
    let params = gpu.uniform(&NormParams {
        rows: to_u32(rows),
        cols: to_u32(cols),
        inner: to_u32(inner),
        eps: config.eps,
        momentum: config.momentum,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    });
    let [b2, b3, b4, b5, b6, b7] = binds;
    gpu.dispatch(
        spec,
        &[],
        &[
            Bind::Uniform(&params),
            Bind::Tensor(x),
            Bind::Tensor(b2),
            Bind::Tensor(b3),
            Bind::Tensor(b4),
            Bind::Tensor(b5),
            Bind::Tensor(b6),
            Bind::Tensor(b7),
        ],
        groups.unwrap_or_else(|| grid_1d(cols, 1)),
    )
}

fn check(x: &Tensor, t: &BatchNormTensors<'_>) -> Result<()> {
    let (_, cols, _) = channel_dims("batchnorm", x)?;
    expect_shape("batchnorm gamma", t.gamma, &[cols])?;
    expect_shape("batchnorm beta", t.beta, &[cols])?;
    expect_shape("batchnorm saved", t.saved, &[2, cols])?;
    expect_shape("batchnorm running", t.running, &[2, cols])
}

/// Training mode: `y = γ (x − μ_B)/√(σ²_B + ε) + β`; updates the running statistics.
pub fn batchnorm_forward(
    gpu: &Gpu,
    config: BatchNormConfig,
    x: &Tensor,
    t: &BatchNormTensors<'_>,
    y: &Tensor,
) -> Result<Dispatch> {
    check(x, t)?;
    expect_shape("batchnorm y", y, x.shape())?;
    launch(
        gpu,
        &FORWARD,
        config,
        x,
        [t.gamma, t.beta, x, y, t.saved, t.running],
        None,
    )
}

/// Eval mode: normalise with the running statistics (`t.saved` is not used).
pub fn batchnorm_eval(
    gpu: &Gpu,
    config: BatchNormConfig,
    x: &Tensor,
    t: &BatchNormTensors<'_>,
    y: &Tensor,
) -> Result<Dispatch> {
    check(x, t)?;
    expect_shape("batchnorm y", y, x.shape())?;
    // Bindings 6 and 7 are unused in eval but must be bound, each to its own buffer.
    let [unused_a, unused_b] = gpu.stand_ins()?;
    launch(
        gpu,
        &EVAL,
        config,
        x,
        [t.gamma, t.beta, t.running, y, &unused_a, &unused_b],
        Some(grid_1d(x.len(), 256)),
    )
}

/// Gradients of the training forward: `dx`, and `dgamma`, `dbeta` (overwritten).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    gpu: &Gpu,
    config: BatchNormConfig,
    x: &Tensor,
    t: &BatchNormTensors<'_>,
    dy: &Tensor,
    dx: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Result<Dispatch> {
    check(x, t)?;
    expect_shape("batchnorm dy", dy, x.shape())?;
    expect_shape("batchnorm dx", dx, x.shape())?;
    expect_shape("batchnorm dgamma", dgamma, t.gamma.shape())?;
    expect_shape("batchnorm dbeta", dbeta, t.beta.shape())?;
    launch(
        gpu,
        &BACKWARD,
        config,
        x,
        [t.gamma, t.saved, dy, dx, dgamma, dbeta],
        None,
    )
}
