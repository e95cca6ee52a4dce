//! Launchers for `shaders/loss.wgsl`: per-row losses and their gradients, mean reduction.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_shape, matrix_dims, reduce, to_u32, with_activations};

pub(crate) static SHADER: Shader = Shader {
    name: "loss",
    source: || with_activations(include_str!("../../shaders/loss.wgsl")),
    trusted: false,
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
];

/// A training objective, averaged over the batch as PyTorch's `reduction='mean'`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Loss {
    /// `nn.CrossEntropyLoss` on logits; targets are class indices.
    CrossEntropy,
    /// `nn.MSELoss`
    Mse,
    /// `nn.BCEWithLogitsLoss`; targets in [0, 1].
    BceWithLogits,
    /// `nn.HuberLoss(delta)`
    /// Quadratic within `delta` of the target, linear beyond.
    Huber {
        /// Where the loss turns from quadratic to linear.
        delta: f32,
    },
}

impl Loss {
    fn spec(self) -> &'static KernelSpec {
        const fn spec(entry: &'static str) -> KernelSpec {
            KernelSpec {
                shader: &SHADER,
                entry,
                bindings: BINDINGS,
            }
        }
        static CROSS_ENTROPY: KernelSpec = spec("softmax_cross_entropy");
        static MSE: KernelSpec = spec("mse");
        static BCE: KernelSpec = spec("bce_with_logits");
        static HUBER: KernelSpec = spec("huber");
        match self {
            Loss::CrossEntropy => &CROSS_ENTROPY,
            Loss::Mse => &MSE,
            Loss::BceWithLogits => &BCE,
            Loss::Huber { .. } => &HUBER,
        }
    }

    /// Shape of the targets for predictions of shape `[rows, cols]`.
    pub fn target_shape(self, rows: usize, cols: usize) -> Vec<usize> {
        match self {
            Loss::CrossEntropy => vec![rows],
            _ => vec![rows, cols],
        }
    }

    /// The factor that turns the sum of row losses into PyTorch's mean.
    pub fn mean_scale(self, rows: usize, cols: usize) -> f32 {
        match self {
            Loss::CrossEntropy => 1.0 / rows as f32,
            _ => 1.0 / (rows * cols) as f32,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LossParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) delta: f32,
    pub(crate) grad_scale: f32,
}

/// Writes `row_loss[r]` (the row's summed loss) and `grad = ∂mean_loss/∂pred`.
pub fn loss_forward_backward(
    gpu: &Gpu,
    loss: Loss,
    pred: &Tensor,
    target: &Tensor,
    row_loss: &Tensor,
    grad: &Tensor,
) -> Result<Dispatch> {
    let (rows, cols) = matrix_dims("loss", pred)?;
    expect_shape("loss target", target, &loss.target_shape(rows, cols))?;
    expect_shape("loss row_loss", row_loss, &[rows])?;
    expect_shape("loss grad", grad, &[rows, cols])?;
    let delta = match loss {
        Loss::Huber { delta } => delta,
        _ => 0.0,
    };
    let params = gpu.uniform(&LossParams {
        rows: to_u32(rows),
        cols: to_u32(cols),
        delta,
        grad_scale: loss.mean_scale(rows, cols),
    });
    gpu.dispatch(
        loss.spec(),
        &[],
        &[
            Bind::Uniform(&params),
            Bind::Tensor(pred),
            Bind::Tensor(target),
            Bind::Tensor(row_loss),
            Bind::Tensor(grad),
        ],
        grid_1d(rows, 64),
    )
}

/// `out[0]` = the mean loss from `row_loss` (one workgroup: batches are far below the size
/// where a second pass would pay).
pub fn loss_mean(
    gpu: &Gpu,
    loss: Loss,
    cols: usize,
    row_loss: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let rows = row_loss.len();
    reduce::sum_cols(
        gpu,
        loss.mean_scale(rows, cols),
        &row_loss.reshape(&[1, rows])?,
        out,
    )
}
