//! Launchers for `shaders/random.wgsl`: dropout, random image shifts and random affine maps,
//! keyed by (seed, step, element) so that runs are reproducible and resumable.

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_same_len, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "random",
    source: || {
        [
            include_str!("../../shaders/step.wgsl"),
            include_str!("../../shaders/hash.wgsl"),
            include_str!("../../shaders/random.wgsl"),
        ]
        .concat()
    },
    trusted: false,
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::StepUniform,
    Access::Read,
    Access::ReadWrite,
];
static DROPOUT: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "dropout",
    bindings: BINDINGS,
};
static RANDOM_AFFINE: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "random_affine",
    bindings: BINDINGS,
};
static RANDOM_SHIFT: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "random_shift",
    bindings: BINDINGS,
};

/// Mirrors `RandomParams` in `shaders/random.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RandomParams {
    pub(crate) n: u32,
    pub(crate) salt: u32,
    pub(crate) drop_threshold: u32,
    pub(crate) keep_scale: f32,
    pub(crate) height: u32,
    pub(crate) width: u32,
    pub(crate) max_shift: u32,
    pub(crate) max_degrees: f32,
    pub(crate) max_scale: f32,
    pub(crate) _pad0: u32,
    pub(crate) _pad1: u32,
    pub(crate) _pad2: u32,
}

/// A random affine augmentation's ranges, as torchvision's `RandomAffine(degrees,
/// translate, scale)`: rotation by up to ± `degrees`, translation by up to ± `shift` pixels,
/// scaling by a factor in 1 ± `scale`, each drawn per image and step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Affine {
    /// Largest rotation either way.
    pub degrees: f32,
    /// Largest translation either way, in pixels.
    pub shift: u32,
    /// Largest relative change of size.
    pub scale: f32,
}

/// The u32 threshold under which a hash drops its element: p · 2³².
pub fn drop_threshold(p: f32) -> u32 {
    (f64::from(p) * 4_294_967_296.0).min(f64::from(u32::MAX)) as u32
}

/// `out = x · mask / (1 − p)`, the mask drawn from (seed, step, salt, element). Also the
/// backward: apply it to the output gradient with the same key.
pub fn dropout(
    gpu: &Gpu,
    p: f32,
    salt: u32,
    step_ring: &wgpu::Buffer,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::InvalidArgument(format!(
            "dropout probability {p} is outside [0, 1)"
        )));
    }
    expect_same_len("dropout", x, out)?;
    let params = gpu.uniform(&RandomParams {
        n: to_u32(x.len()),
        salt,
        drop_threshold: drop_threshold(p),
        keep_scale: 1.0 / (1.0 - p),
        ..Default::default()
    });
    launch(gpu, &DROPOUT, &params, step_ring, x, out)
}

/// Shifts each `height × width` image of `x` by up to ±`max_shift` pixels, zero-filled.
pub fn random_shift(
    gpu: &Gpu,
    image: (usize, usize),
    max_shift: u32,
    salt: u32,
    step_ring: &wgpu::Buffer,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let affine = Affine {
        shift: max_shift,
        ..Affine::default()
    };
    let params = image_params("random_shift", image, affine, salt, x, out)?;
    launch(gpu, &RANDOM_SHIFT, &gpu.uniform(&params), step_ring, x, out)
}

/// Maps each `height × width` image of `x` by a random rotation, scaling and translation
/// within `affine`'s ranges (bilinear, zero-filled): see `random_affine` in the shader.
pub fn random_affine(
    gpu: &Gpu,
    image: (usize, usize),
    affine: Affine,
    salt: u32,
    step_ring: &wgpu::Buffer,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let params = image_params("random_affine", image, affine, salt, x, out)?;
    launch(
        gpu,
        &RANDOM_AFFINE,
        &gpu.uniform(&params),
        step_ring,
        x,
        out,
    )
}

/// The params of an image augmentation, after checking `x` is a stack of images and the
/// ranges are ones torchvision accepts.
fn image_params(
    op: &str,
    (height, width): (usize, usize),
    affine: Affine,
    salt: u32,
    x: &Tensor,
    out: &Tensor,
) -> Result<RandomParams> {
    expect_same_len(op, x, out)?;
    let valid = (0.0..=180.0).contains(&affine.degrees) && (0.0..1.0).contains(&affine.scale);
    if !valid || height * width == 0 || !x.len().is_multiple_of(height * width) {
        return Err(Error::InvalidArgument(format!(
            "{op}: {affine:?} over {:?} (degrees in [0, 180], scale in [0, 1), a stack of {height}×{width} images)",
            x.shape()
        )));
    }
    Ok(RandomParams {
        n: to_u32(x.len()),
        salt,
        height: to_u32(height),
        width: to_u32(width),
        max_shift: affine.shift,
        max_degrees: affine.degrees,
        max_scale: affine.scale,
        ..Default::default()
    })
}

fn launch(
    gpu: &Gpu,
    spec: &KernelSpec,
    params: &wgpu::Buffer,
    step_ring: &wgpu::Buffer,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    gpu.dispatch(
        spec,
        &[],
        &[
            Bind::Uniform(params),
            Bind::Step(step_ring),
            Bind::Tensor(x),
            Bind::Tensor(out),
        ],
        grid_1d(x.len(), 256),
    )
}
