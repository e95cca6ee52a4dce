//! Launchers for `shaders/elementwise.wgsl`: activations and their derivatives, add, mul,
//! scale, axpy.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{Activation, expect_same_len, to_u32, with_activations};

pub(crate) static SHADER: Shader = Shader {
    name: "elementwise",
    source: || with_activations(include_str!("../../shaders/elementwise.wgsl")),
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
];

const fn spec(entry: &'static str) -> KernelSpec {
    KernelSpec {
        shader: &SHADER,
        entry,
        bindings: BINDINGS,
    }
}
static ACTIVATION_FORWARD: KernelSpec = spec("activation_forward");
static ACTIVATION_BACKWARD: KernelSpec = spec("activation_backward");
static ADD: KernelSpec = spec("add");
static MUL: KernelSpec = spec("mul");
static SCALE: KernelSpec = spec("scale");
static AXPY: KernelSpec = spec("axpy");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ElementwiseParams {
    pub(crate) n: u32,
    pub(crate) act: u32,
    pub(crate) slope: f32,
    pub(crate) alpha: f32,
}

fn launch(
    gpu: &Gpu,
    spec: &KernelSpec,
    activation: Activation,
    alpha: f32,
    x: &Tensor,
    y: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    expect_same_len(spec.entry, x, out)?;
    expect_same_len(spec.entry, y, out)?;
    let params = gpu.uniform(&ElementwiseParams {
        n: to_u32(out.len()),
        act: activation.code(),
        slope: activation.slope(),
        alpha,
    });
    gpu.dispatch(
        spec,
        &[],
        &[
            Bind::Uniform(&params),
            Bind::Tensor(x),
            Bind::Tensor(y),
            Bind::Tensor(out),
        ],
        grid_1d(out.len(), 256),
    )
}

/// `out = act(x)`
pub fn activation_forward(
    gpu: &Gpu,
    act: Activation,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    launch(gpu, &ACTIVATION_FORWARD, act, 0.0, x, x, out)
}

/// `dx = dout · act'(x)`, `x` being the activation's input.
pub fn activation_backward(
    gpu: &Gpu,
    act: Activation,
    x: &Tensor,
    dout: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    launch(gpu, &ACTIVATION_BACKWARD, act, 0.0, x, dout, dx)
}

/// `out = x + y`
pub fn add(gpu: &Gpu, x: &Tensor, y: &Tensor, out: &Tensor) -> Result<Dispatch> {
    launch(gpu, &ADD, Activation::Identity, 0.0, x, y, out)
}

/// `out = x · y`
pub fn mul(gpu: &Gpu, x: &Tensor, y: &Tensor, out: &Tensor) -> Result<Dispatch> {
    launch(gpu, &MUL, Activation::Identity, 0.0, x, y, out)
}

/// `out = alpha · x`
pub fn scale(gpu: &Gpu, alpha: f32, x: &Tensor, out: &Tensor) -> Result<Dispatch> {
    launch(gpu, &SCALE, Activation::Identity, alpha, x, x, out)
}

/// `out = alpha · x + out`
pub fn axpy(gpu: &Gpu, alpha: f32, x: &Tensor, out: &Tensor) -> Result<Dispatch> {
    launch(gpu, &AXPY, Activation::Identity, alpha, x, x, out)
}
