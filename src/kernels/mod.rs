//! One small launcher per WGSL family in `shaders/`. A launcher checks shapes, fills the
//! family's params struct and returns a [`Dispatch`](crate::gpu::Dispatch): it records, never
//! submits, so the graph scheduler can put a whole training step into one pass.

pub mod attention;
pub mod conv;
pub mod coop_matmul;
pub mod data;
pub mod elementwise;
pub mod half;
pub mod layernorm;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod random;
pub mod reduce;
pub mod softmax;
pub mod tensor;
pub mod text;

#[cfg(test)]
mod layouts;

use crate::error::{Error, Result};
use crate::gpu::Tensor;
use crate::gpu::kernel::Shader;

const ACTIVATION_WGSL: &str = include_str!("../../shaders/activation.wgsl");
const GEMM_TILES_WGSL: &str = include_str!("../../shaders/gemm_tiles.wgsl");
const WINDOW_WGSL: &str = include_str!("../../shaders/window.wgsl");

/// Split-K products (matmul, conv2d's weight gradient) aim for this many workgroups: enough
/// to fill a large GPU (132 SMs on an H100) twice over, where an unsplit product with a small
/// output has a handful.
pub const SPLIT_TARGET_WORKGROUPS: usize = 256;
/// The shortest K slice worth a workgroup of its own: below it the partials' traffic and the
/// sum cost more than the parallelism gains.
pub const MIN_SPLIT_DEPTH: usize = 256;
/// At most this many partial products (each adds one rounding to the sum).
pub const MAX_SPLITS: usize = 256;

/// Parts to split a product's K into when its output covers `groups` workgroups: enough to
/// reach `SPLIT_TARGET_WORKGROUPS`, none shorter than `MIN_SPLIT_DEPTH`, at most `MAX_SPLITS`.
pub(crate) fn auto_splits(groups: usize, k: usize) -> usize {
    (SPLIT_TARGET_WORKGROUPS / groups.max(1))
        .min(k / MIN_SPLIT_DEPTH)
        .clamp(1, MAX_SPLITS)
}

/// Parts for a product of `groups` workgroups on a CPU adapter, where each workgroup runs on
/// one core: a product with fewer workgroups than cores (a classifier's 10-wide output)
/// splits so every core takes a share, if K is long enough.
pub(crate) fn cpu_splits(groups: usize, k: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if groups >= cores {
        return 1;
    }
    cores
        .div_ceil(groups.max(1))
        .min(k / MIN_SPLIT_DEPTH)
        .clamp(1, MAX_SPLITS)
}

/// `(splits, K per split)` for about `wanted` parts, each a whole number of the tiles'
/// 16-deep slices so no split starts mid-slice (a short K gets fewer parts).
pub(crate) fn k_slices(k: usize, wanted: usize) -> (usize, usize) {
    let k_chunk = k.div_ceil(wanted.max(1)).next_multiple_of(16);
    (k.div_ceil(k_chunk.max(1)).max(1), k_chunk)
}

/// Every shader family, for validation tests and pipeline warm-up.
pub(crate) const SHADERS: &[&Shader] = &[
    &matmul::SHADER,
    &elementwise::SHADER,
    &elementwise::SCALAR_SHADER,
    &reduce::SHADER,
    &loss::SHADER,
    &optim::SHADER,
    &optim::SCALAR_SHADER,
    &norm::SHADER,
    &random::SHADER,
    &data::SHADER,
    &tensor::SHADER,
    &softmax::SHADER,
    &layernorm::SHADER,
    &conv::SHADER,
    &pool::SHADER,
    &attention::SHADER_32,
    &attention::SHADER_64,
    &text::SHADER,
    &half::SHADER,
    &coop_matmul::SHADER,
];

/// The full WGSL source of every family, by name (what `naga` validates in the tests).
pub fn shader_sources() -> Vec<(&'static str, String)> {
    SHADERS.iter().map(|s| (s.name, (s.source)())).collect()
}

/// An elementwise nonlinearity. Codes are shared with `shaders/activation.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// `x`.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// max(x, 0) + slope · min(x, 0); PyTorch's default slope is 0.01.
    LeakyRelu(f32),
    /// PyTorch's `GELU(approximate='tanh')`.
    Gelu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
}

impl Activation {
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::LeakyRelu(_) => 2,
            Activation::Gelu => 3,
            Activation::Tanh => 4,
            Activation::Sigmoid => 5,
        }
    }

    pub(crate) fn slope(self) -> f32 {
        match self {
            Activation::LeakyRelu(slope) => slope,
            _ => 0.0,
        }
    }

    /// The f64 reference.
    pub fn apply_f64(self, x: f64) -> f64 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    f64::from(s) * x
                }
            }
            Activation::Gelu => 0.5 * x * (1.0 + (GELU_C * (x + GELU_K * x.powi(3))).tanh()),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }

    /// The f64 reference derivative, at the activation's input.
    pub fn grad_f64(self, x: f64) -> f64 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => f64::from(u8::from(x > 0.0)),
            Activation::LeakyRelu(s) => {
                if x > 0.0 {
                    1.0
                } else {
                    f64::from(s)
                }
            }
            Activation::Gelu => {
                let t = (GELU_C * (x + GELU_K * x.powi(3))).tanh();
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_K * x * x)
            }
            Activation::Tanh => 1.0 - x.tanh().powi(2),
            Activation::Sigmoid => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            }
        }
    }
}

const GELU_C: f64 = 0.797_884_560_802_865_4;
const GELU_K: f64 = 0.044_715;

/// Prepends the shared activation functions to a family's WGSL.
fn with_activations(family: &str) -> String {
    format!("{ACTIVATION_WGSL}\n{family}")
}

/// A GEMM family: the activations, the family's addressing, then the shared tiled kernels.
fn with_gemm_tiles(family: &str) -> String {
    format!("{}\n{GEMM_TILES_WGSL}", with_activations(family))
}

/// Prepends window.wgsl's geometry declarations to an image family's WGSL.
fn with_window(family: &str) -> String {
    format!("{WINDOW_WGSL}\n{family}")
}

/// window.wgsl's override constants: input and output `[rows, columns]`, and the window's
/// kernel, stride and padding.
fn window_constants(
    input: [usize; 2],
    output: [usize; 2],
    (kernel, stride, padding): ([usize; 2], [usize; 2], [usize; 2]),
) -> Vec<(&'static str, f64)> {
    [
        ("HEIGHT", input[0]),
        ("WIDTH", input[1]),
        ("OUT_HEIGHT", output[0]),
        ("OUT_WIDTH", output[1]),
        ("KERNEL_H", kernel[0]),
        ("KERNEL_W", kernel[1]),
        ("STRIDE_H", stride[0]),
        ("STRIDE_W", stride[1]),
        ("PAD_H", padding[0]),
        ("PAD_W", padding[1]),
    ]
    .into_iter()
    .map(|(name, v)| (name, f64::from(to_u32(v))))
    .collect()
}

fn shape_error(op: &str, left: &[usize], right: &[usize]) -> Error {
    Error::ShapeMismatch {
        op: op.to_string(),
        left: left.to_vec(),
        right: right.to_vec(),
    }
}

/// Fails unless `tensor` has exactly `shape`.
fn expect_shape(op: &str, tensor: &Tensor, shape: &[usize]) -> Result<()> {
    if tensor.shape() == shape {
        Ok(())
    } else {
        Err(shape_error(op, tensor.shape(), shape))
    }
}

/// Fails unless both tensors hold as many elements.
fn expect_same_len(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(shape_error(op, a.shape(), b.shape()))
    }
}

/// (rows, cols) of a 2-D tensor.
fn matrix_dims(op: &str, tensor: &Tensor) -> Result<(usize, usize)> {
    match *tensor.shape() {
        [rows, cols] => Ok((rows, cols)),
        _ => Err(Error::ShapeMismatch {
            op: format!("{op} (expects a matrix)"),
            left: tensor.shape().to_vec(),
            right: vec![],
        }),
    }
}

/// Sizes go to WGSL as u32; anything larger could not be bound anyway.
pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n)
        .expect("tensor sizes fit in u32: buffers are checked against the binding limit")
}
