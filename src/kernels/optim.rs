//! Launcher for `shaders/optim.wgsl`: one fused update over the flat parameter buffer. The
//! optimizer configurations and their host-side per-step values live in `crate::optim`.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, Shader, Widths, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_same_len, expect_shape, to_u32};
use crate::optim::Optimizer;

/// The updates over vec4s: buffers whose length is a multiple of 4 (see the shader).
pub(crate) static SHADER: Shader = Shader {
    name: "optim",
    source: || source("vec4<f32>"),
    trusted: false,
};

/// The same updates one f32 at a time, for other lengths.
pub(crate) static SCALAR_SHADER: Shader = Shader {
    name: "optim_scalar",
    source: || source("f32"),
    trusted: false,
};

fn source(element: &str) -> String {
    [
        &format!("alias Vec = {element};\n"),
        include_str!("../../shaders/step.wgsl"),
        include_str!("../../shaders/optim.wgsl"),
    ]
    .concat()
}

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

/// Vecs each thread updates (`PER_THREAD` in the shader).
const PER_THREAD: usize = 8;

/// The optimizer kernels, one per `torch.optim` family.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateRule {
    Sgd,
    Adagrad,
    Rmsprop,
    /// Adam and AdamW (with [`OptimParams::DECOUPLED`]).
    Adam,
}

impl UpdateRule {
    fn kernels(self) -> &'static Widths {
        const fn entry(name: &'static str) -> Widths {
            Widths::new((&SHADER, &SCALAR_SHADER), BINDINGS, name)
        }
        static SGD: Widths = entry("sgd");
        static ADAGRAD: Widths = entry("adagrad");
        static RMSPROP: Widths = entry("rmsprop");
        static ADAM: Widths = entry("adam");
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
pub(crate) struct OptimParams {
    pub(crate) n: u32,
    pub(crate) flags: u32,
    pub(crate) beta1: f32,
    pub(crate) beta2: f32,
    pub(crate) eps: f32,
    pub(crate) weight_decay: f32,
    pub(crate) l1: f32,
    pub(crate) dampening: f32,
    pub(crate) lr_scale: f32,
    pub(crate) _pad: [u32; 3],
}

impl OptimParams {
    pub(crate) const NESTEROV: u32 = 1;
    pub(crate) const CENTERED: u32 = 2;
    pub(crate) const AMSGRAD: u32 = 4;
    pub(crate) const DECOUPLED: u32 = 8;
    /// Leave parameters and state untouched when the gradient norm is not finite.
    pub(crate) const SKIP_NONFINITE: u32 = 16;
}

/// Mirrors `StepParams` in `shaders/step.wgsl`: one slot of the step-uniform ring, what
/// changes from step to step without recompiling a plan (see [`Optimizer::step_params`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepParams {
    /// The 1-based step number (the random kernels key on it).
    pub step: u32,
    /// The run's seed, for dropout and augmentation masks.
    pub seed: u32,
    /// The learning rate of this step, after the schedule.
    pub lr: f32,
    /// Adam's bias-corrected step size `lr / (1 - β1^t)` (0 for the other rules).
    pub step_size: f32,
    /// Adam's `sqrt(1 - β2^t)` (1 for the other rules).
    pub bias_correction2_sqrt: f32,
    /// The step's index within its submission (its slot in the step and loss rings).
    pub slot: u32,
    /// WGSL's uniform layout rounds the struct up to 32 bytes.
    pub _pad: [u32; 2],
}

/// Buffers of one fused update. `states` holds the rule's state tensors in the order its
/// entry point documents (unused ones may be any distinct tensors of at least one element).
#[derive(Debug)]
pub struct UpdateBuffers<'a> {
    /// The step-uniform ring whose slot holds this step's [`StepParams`].
    pub step_ring: &'a wgpu::Buffer,
    /// The gradient, read only.
    pub grad: &'a Tensor,
    /// `[‖g‖, clip coefficient]`; `[0, 1]` when not clipping.
    pub clip: &'a Tensor,
    /// The parameters, updated in place.
    pub param: &'a Tensor,
    /// The rule's state (momentum, squared averages...), updated in place.
    pub states: [&'a Tensor; 3],
}

/// One fused `optimizer` step over a flat parameter tensor, with an L1 penalty `l1`; the
/// step's rate and counters come from the ring slot, so one dispatch serves every step.
pub fn update(
    gpu: &Gpu,
    optimizer: &Optimizer,
    l1: f32,
    buffers: &UpdateBuffers<'_>,
) -> Result<Dispatch> {
    let (rule, params) = optimizer.kernel_params(l1);
    update_with(gpu, rule, params, buffers)
}

/// [`update`] with the kernel's parameters spelled out (per-group decay and rate scale).
pub(crate) fn update_with(
    gpu: &Gpu,
    rule: UpdateRule,
    params: OptimParams,
    buffers: &UpdateBuffers<'_>,
) -> Result<Dispatch> {
    expect_same_len("optimizer grad", buffers.grad, buffers.param)?;
    expect_shape("optimizer clip", buffers.clip, &[2])?;
    let len = buffers.param.len();
    let (spec, width) = rule.kernels().for_len(len);
    let params = OptimParams {
        n: to_u32(len / width),
        ..params
    };
    let uniform = gpu.uniform(&params);
    let [a, b, c] = buffers.states;
    gpu.dispatch(
        spec,
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
        grid_1d((len / width).div_ceil(PER_THREAD), 256),
    )
}
