//! Launchers for `shaders/softmax.wgsl`: softmax over the last axis (optionally causal) and
//! its backward.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_same_len, matrix_dims, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "softmax",
    source: || include_str!("../../shaders/softmax.wgsl").to_string(),
    trusted: false,
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
];
static FORWARD: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "softmax_forward",
    bindings: BINDINGS,
};
static BACKWARD: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "softmax_backward",
    bindings: BINDINGS,
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct SoftmaxParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) causal_t: u32,
    pub(crate) _pad: u32,
}

fn launch(
    gpu: &Gpu,
    spec: &KernelSpec,
    causal_t: usize,
    (x, y, out): (&Tensor, &Tensor, &Tensor),
) -> Result<Dispatch> {
    let (rows, cols) = matrix_dims(spec.entry, x)?;
    expect_same_len(spec.entry, y, x)?;
    expect_same_len(spec.entry, out, x)?;
    let params = gpu.uniform(&SoftmaxParams {
        rows: to_u32(rows),
        cols: to_u32(cols),
        causal_t: to_u32(causal_t),
        _pad: 0,
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
        grid_1d(rows, 64),
    )
}

/// `out[r, :] = softmax(x[r, :])` for `x` `[rows, cols]`; with `causal_t` = T > 0, row r is
/// query r mod T and keys after it get probability 0.
pub fn softmax_forward(gpu: &Gpu, causal_t: usize, x: &Tensor, out: &Tensor) -> Result<Dispatch> {
    launch(gpu, &FORWARD, causal_t, (x, x, out))
}

/// `dx = y ⊙ (dy − Σ_k y_k dy_k)` per row, from the softmax output `y`.
pub fn softmax_backward(gpu: &Gpu, y: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    launch(gpu, &BACKWARD, 0, (y, dy, dx))
}
