//! Launchers for `shaders/elementwise.wgsl`: activations and their derivatives, add, mul,
//! scale, axpy.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, Shader, Widths, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{Activation, expect_same_len, to_u32, with_activations};

/// The kernels over vec4s, for tensors whose length is a multiple of 4.
pub(crate) static SHADER: Shader = Shader {
    name: "elementwise",
    source: || {
        source(
            "alias Vec = vec4<f32>;
fn act(v: Vec, code: u32, slope: f32) -> Vec {
    return Vec(activate(v.x, code, slope), activate(v.y, code, slope),
               activate(v.z, code, slope), activate(v.w, code, slope));
}
fn act_grad(v: Vec, code: u32, slope: f32) -> Vec {
    return Vec(activate_grad(v.x, code, slope), activate_grad(v.y, code, slope),
               activate_grad(v.z, code, slope), activate_grad(v.w, code, slope));
}",
        )
    },
    trusted: false,
};

/// The same kernels one f32 at a time, for other lengths.
pub(crate) static SCALAR_SHADER: Shader = Shader {
    name: "elementwise_scalar",
    source: || {
        source(
            "alias Vec = f32;
fn act(v: Vec, code: u32, slope: f32) -> Vec { return activate(v, code, slope); }
fn act_grad(v: Vec, code: u32, slope: f32) -> Vec { return activate_grad(v, code, slope); }",
        )
    },
    trusted: false,
};

fn source(width: &str) -> String {
    with_activations(&format!(
        "{width}\n{}",
        include_str!("../../shaders/elementwise.wgsl")
    ))
}

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
];

const fn entry(name: &'static str) -> Widths {
    Widths::new((&SHADER, &SCALAR_SHADER), BINDINGS, name)
}
static ACTIVATION_FORWARD: Widths = entry("activation_forward");
static ACTIVATION_BACKWARD: Widths = entry("activation_backward");
static ADD: Widths = entry("add");
static MUL: Widths = entry("mul");
static SCALE: Widths = entry("scale");
static AXPY: Widths = entry("axpy");

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
    entry: &Widths,
    activation: Activation,
    alpha: f32,
    x: &Tensor,
    y: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let len = out.len();
    let (spec, width) = entry.for_len(len);
    expect_same_len(spec.entry, x, out)?;
    expect_same_len(spec.entry, y, out)?;
    let params = gpu.uniform(&ElementwiseParams {
        n: to_u32(len / width),
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
        grid_1d(len / width, 256),
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
