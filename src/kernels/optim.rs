//! Launcher for `shaders/optim.wgsl`: one fused update over the flat parameter buffer. The
//! optimizer configurations and their host-side per-step values live in `crate::optim`.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_same_len, expect_shape, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "optim",
    source: || {
        [
            include_str!("../../shaders/step.wgsl"),
            include_str!("../../shaders/optim.wgsl"),
        ]
        .concat()
    },
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::StepUniform,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
];

/// Parameters each thread updates (`PER_THREAD` in the shader).
const PER_THREAD: usize = 4;

/// The optimizer kernels, one per `torch.optim` family.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateRule {
    Sgd,
    Adagrad,
    Rmsprop,
    /// Adam and AdamW (with [`OptimParams::DECOUPLED`]).
    Adam,
}

impl UpdateRule {
    fn spec(self) -> &'static KernelSpec {
        const fn spec(entry: &'static str) -> KernelSpec {
            KernelSpec {
                shader: &SHADER,
                entry,
                bindings: BINDINGS,
            }
        }
        static SGD: KernelSpec = spec("sgd");
        static ADAGRAD: KernelSpec = spec("adagrad");
        static RMSPROP: KernelSpec = spec("rmsprop");
        static ADAM: KernelSpec = spec("adam");
        match self {
            UpdateRule::Sgd => &SGD,
            UpdateRule::Adagrad => &ADAGRAD,
            UpdateRule::Rmsprop => &RMSPROP,
            UpdateRule::Adam => &ADAM,
        }
    }
}

/// Mirrors `OptimParams` in `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimParams {
    pub n: u32,
    pub flags: u32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub l1: f32,
    pub dampening: f32,
    pub lr_scale: f32,
    pub _pad: [u32; 3],
}

impl OptimParams {
    pub const NESTEROV: u32 = 1;
    pub const CENTERED: u32 = 2;
    pub const AMSGRAD: u32 = 4;
    pub const DECOUPLED: u32 = 8;
    /// Leave parameters and state untouched when the gradient norm is not finite.
    pub const SKIP_NONFINITE: u32 = 16;
}

/// Mirrors `StepParams` in `shaders/step.wgsl`: one slot of the step-uniform ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepParams {
    pub step: u32,
    pub seed: u32,
    pub lr: f32,
    pub step_size: f32,
    pub bias_correction2_sqrt: f32,
    /// The step's index within its submission (its slot in the step and loss rings).
    pub slot: u32,
    pub _pad: [u32; 2],
}

/// Buffers of one fused update. `states` holds the rule's state tensors in the order its
/// entry point documents (unused ones may be any distinct tensors of at least one element).
pub struct UpdateBuffers<'a> {
    pub step_ring: &'a wgpu::Buffer,
    pub grad: &'a Tensor,
    /// `[‖g‖, clip coefficient]`; `[0, 1]` when not clipping.
    pub clip: &'a Tensor,
    pub param: &'a Tensor,
    pub states: [&'a Tensor; 3],
}

pub fn update(
    gpu: &Gpu,
    rule: UpdateRule,
    params: OptimParams,
    buffers: &UpdateBuffers<'_>,
) -> Result<Dispatch> {
    expect_same_len("optimizer grad", buffers.grad, buffers.param)?;
    expect_shape("optimizer clip", buffers.clip, &[2])?;
    let params = OptimParams {
        n: to_u32(buffers.param.len()),
        ..params
    };
    let uniform = gpu.uniform(&params);
    let [a, b, c] = buffers.states;
    gpu.dispatch(
        rule.spec(),
        &[],
        &[
            Bind::Uniform(&uniform),
            Bind::Step(buffers.step_ring),
            Bind::Tensor(buffers.grad),
            Bind::Tensor(buffers.clip),
            Bind::Tensor(buffers.param),
            Bind::Tensor(a),
            Bind::Tensor(b),
            Bind::Tensor(c),
        ],
        grid_1d(buffers.param.len().div_ceil(PER_THREAD), 256),
    )
}
