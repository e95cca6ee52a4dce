//! Launchers for `shaders/pool.wgsl`: MaxPool2d and AvgPool2d over NCHW images.

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{
    Activation, expect_shape, shape_error, to_u32, window_constants, with_activations, with_window,
};

pub(crate) static SHADER: Shader = Shader {
    name: "pool",
    source: || with_window(&with_activations(include_str!("../../shaders/pool.wgsl"))),
    trusted: false,
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
static MAX_FORWARD: KernelSpec = spec("max_pool_forward");
static MAX_BACKWARD: KernelSpec = spec("max_pool_backward");
static MAX_BACKWARD_TILED: KernelSpec = spec("max_pool_backward_tiled");
static AVG_FORWARD: KernelSpec = spec("avg_pool_forward");
static AVG_BACKWARD: KernelSpec = spec("avg_pool_backward");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct PoolParams {
    pub(crate) planes: u32,
    pub(crate) slope: f32,
    pub(crate) _pad1: u32,
    pub(crate) _pad2: u32,
}

/// Which pooling: the window's maximum, or its mean over the kernel's area (padding counts
/// as zeros, PyTorch's `count_include_pad=True`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// The window's largest value.
    Max,
    /// The window's mean.
    Avg,
}

/// A pooling window, `[rows, columns]` each, as `nn.MaxPool2d(kernel_size, stride, padding)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Window size.
    pub kernel: [usize; 2],
    /// Steps between windows.
    pub stride: [usize; 2],
    /// Padding on each side.
    pub padding: [usize; 2],
}

impl Pool2d {
    /// `(Ho, Wo)` for an `h × w` input, or `None` where PyTorch refuses the window: a zero
    /// kernel or stride, padding over half the kernel, or a window larger than the input.
    pub fn output(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let axis = |i: usize, size: usize| {
            let (k, s, p) = (self.kernel[i], self.stride[i], self.padding[i]);
            if k == 0 || s == 0 || 2 * p > k {
                return None;
            }
            (size + 2 * p).checked_sub(k).map(|room| room / s + 1)
        };
        axis(0, h).zip(axis(1, w))
    }
}

/// The params and geometry (override constants) for x `[B, C, H, W]`, after checking `y` is
/// the pooled shape.
fn params(pool: &Pool2d, x: &Tensor, y: &Tensor) -> Result<(PoolParams, Vec<(&'static str, f64)>)> {
    let &[b, c, h, w] = x.shape() else {
        return Err(shape_error(
            "pool2d x (expects [B, C, H, W])",
            x.shape(),
            &[],
        ));
    };
    let Some((oh, ow)) = pool.output(h, w) else {
        return Err(shape_error(
            "pool2d (window vs input)",
            &pool.kernel,
            x.shape(),
        ));
    };
    expect_shape("pool2d y", y, &[b, c, oh, ow])?;
    let geometry = window_constants([h, w], [oh, ow], (pool.kernel, pool.stride, pool.padding));
    let params = PoolParams {
        planes: to_u32(b * c),
        slope: 0.0,
        _pad1: 0,
        _pad2: 0,
    };
    Ok((params, geometry))
}

/// `y[b, c, oy, ox]` = max (or mean) of x over window (oy, ox); x `[B, C, H, W]`.
pub fn pool2d_forward(gpu: &Gpu, pool: &Pool2d, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let (params, geometry) = params(pool, x, y)?;
    let uniform = gpu.uniform(&params);
    let spec = match pool.kind {
        PoolKind::Max => &MAX_FORWARD,
        PoolKind::Avg => &AVG_FORWARD,
    };
    gpu.dispatch(
        spec,
        &geometry,
        &[
            Bind::Uniform(&uniform),
            Bind::Tensor(x),
            Bind::Tensor(x),
            Bind::Tensor(y),
        ],
        grid_1d(y.len(), 256),
    )
}

/// `dx`: each window's `dy` goes to its max (first in row-major order on ties), or spreads
/// evenly over its kernel area; overwritten. x is the forward's input: max pooling reads it,
/// average pooling only its shape. `mask`: x is the output of this activation fused into the
/// layer before, whose derivative (read off x) max pooling then applies to dx; average
/// pooling, which may find dx in x's buffer, refuses it.
pub fn pool2d_backward(
    gpu: &Gpu,
    pool: &Pool2d,
    (x, mask): (&Tensor, Option<Activation>),
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    let (mut params, mut geometry) = params(pool, x, dy)?;
    expect_shape("pool2d dx", dx, x.shape())?;
    if let Some(activation) = mask {
        if pool.kind == PoolKind::Avg {
            return Err(Error::InvalidArgument(
                "average pooling's backward cannot apply an activation's mask: it does not \
                 read its input"
                    .into(),
            ));
        }
        params.slope = activation.slope();
        geometry.extend([("GRAD_MASK", 1.0), ("ACT", f64::from(activation.code()))]);
    }
    let uniform = gpu.uniform(&params);
    // Average pooling does not read x, whose buffer may already hold dx. Windows that tile
    // the image take a thread each, other windows a thread per input pixel.
    let tiles = pool.stride == pool.kernel && pool.padding == [0, 0];
    let (spec, source, threads) = match pool.kind {
        PoolKind::Max if tiles => (&MAX_BACKWARD_TILED, x, dy.len()),
        PoolKind::Max => (&MAX_BACKWARD, x, dx.len()),
        PoolKind::Avg => (&AVG_BACKWARD, dy, dx.len()),
    };
    gpu.dispatch(
        spec,
        &geometry,
        &[
            Bind::Uniform(&uniform),
            Bind::Tensor(source),
            Bind::Tensor(dy),
            Bind::Tensor(dx),
        ],
        grid_1d(threads, 256),
    )
}
