//! Launchers for `shaders/attention.wgsl`: fused causal self-attention over the packed
//! `[B, T, 3C]` output of `c_attn`, forward and backward, without the `T × T` scores in
//! memory. Tiles have a fixed width, so the shader comes in two variants: heads of up to 32
//! dimensions in tiles of 32 rows, and of up to 64 in tiles of 16 (16 KiB of workgroup
//! memory either way).

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_shape, to_u32};

/// The widest head the fused kernels take; wider heads go through the composed ops.
pub const MAX_HEAD_DIM: usize = 64;

pub(crate) static SHADER_32: Shader = Shader {
    name: "attention32",
    source: || {
        format!(
            "const HEAD_DIM_MAX: u32 = 32u;\nconst TILE: u32 = 32u;\n{}",
            include_str!("../../shaders/attention.wgsl")
        )
    },
    trusted: false,
};
pub(crate) static SHADER_64: Shader = Shader {
    name: "attention64",
    source: || {
        format!(
            "const HEAD_DIM_MAX: u32 = 64u;\nconst TILE: u32 = 16u;\n{}",
            include_str!("../../shaders/attention.wgsl")
        )
    },
    trusted: false,
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
];

/// The three entry points of one variant, and its rows per workgroup (`TILE`).
struct Variant {
    tile: usize,
    forward: KernelSpec,
    backward_query: KernelSpec,
    backward_key_value: KernelSpec,
}

const fn variant(shader: &'static Shader, tile: usize) -> Variant {
    Variant {
        tile,
        forward: KernelSpec {
            shader,
            entry: "attention_forward",
            bindings: BINDINGS,
        },
        backward_query: KernelSpec {
            shader,
            entry: "attention_backward_query",
            bindings: BINDINGS,
        },
        backward_key_value: KernelSpec {
            shader,
            entry: "attention_backward_key_value",
            bindings: BINDINGS,
        },
    }
}

static VARIANT_32: Variant = variant(&SHADER_32, 32);
static VARIANT_64: Variant = variant(&SHADER_64, 16);

/// Mirrors `AttentionParams` in `shaders/attention.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AttentionParams {
    pub(crate) batch: u32,
    pub(crate) seq: u32,
    pub(crate) heads: u32,
    pub(crate) head_dim: u32,
    pub(crate) scale: f32,
    pub(crate) _pad0: u32,
    pub(crate) _pad1: u32,
    pub(crate) _pad2: u32,
}

/// The sizes of one fused attention: `batch` sequences of `seq` tokens, `heads` heads of
/// `head_dim` dimensions each (C = heads · head_dim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence (T).
    pub seq: usize,
    /// Attention heads.
    pub heads: usize,
    /// Dimensions per head (D).
    pub head_dim: usize,
}

impl AttentionShape {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// `[2, B, H, T]`: the logsumexp of each query row, then Δ of the backward.
    pub fn stats_shape(&self) -> [usize; 4] {
        [2, self.batch, self.heads, self.seq]
    }

    fn check(&self, qkv: &Tensor, out: &Tensor, stats: &Tensor) -> Result<&'static Variant> {
        let Self {
            batch,
            seq,
            heads,
            head_dim,
        } = *self;
        if batch == 0 || seq == 0 || heads == 0 || head_dim == 0 {
            return Err(Error::InvalidArgument(format!(
                "fused attention of {self:?}: every size must be at least 1"
            )));
        }
        if batch * heads > 65535 {
            return Err(Error::InvalidArgument(format!(
                "fused attention: {batch} sequences × {heads} heads is over 65535 workgroups"
            )));
        }
        expect_shape("attention qkv", qkv, &[batch, seq, 3 * self.width()])?;
        expect_shape("attention out", out, &[batch, seq, self.width()])?;
        expect_shape("attention stats", stats, &self.stats_shape())?;
        match head_dim {
            1..=32 => Ok(&VARIANT_32),
            33..=MAX_HEAD_DIM => Ok(&VARIANT_64),
            _ => Err(Error::InvalidArgument(format!(
                "fused attention takes heads of up to {MAX_HEAD_DIM} dimensions, not {head_dim}"
            ))),
        }
    }

    fn dispatch(
        &self,
        gpu: &Gpu,
        (variant, spec): (&Variant, &KernelSpec),
        [qkv, out, dout, result, stats]: [&Tensor; 5],
    ) -> Result<Dispatch> {
        let params = gpu.uniform(&AttentionParams {
            batch: to_u32(self.batch),
            seq: to_u32(self.seq),
            heads: to_u32(self.heads),
            head_dim: to_u32(self.head_dim),
            scale: 1.0 / (self.head_dim as f32).sqrt(),
            ..Default::default()
        });
        gpu.dispatch(
            spec,
            &[],
            &[
                Bind::Uniform(&params),
                Bind::Tensor(qkv),
                Bind::Tensor(out),
                Bind::Tensor(dout),
                Bind::Tensor(result),
                Bind::Tensor(stats),
            ],
            [
                to_u32(self.seq.div_ceil(variant.tile)),
                to_u32(self.batch * self.heads),
                1,
            ],
        )
    }
}

/// `out = softmax(mask(q·kᵀ/√D))·v` per head from the packed `qkv` (`[B, T, 3C]`) into `out`
/// (`[B, T, C]`); the first half of `stats` gets each row's logsumexp for the backward.
pub fn attention_forward(
    gpu: &Gpu,
    shape: AttentionShape,
    qkv: &Tensor,
    out: &Tensor,
    stats: &Tensor,
) -> Result<Dispatch> {
    let variant = shape.check(qkv, out, stats)?;
    shape.dispatch(
        gpu,
        (variant, &variant.forward),
        [qkv, qkv, qkv, out, stats],
    )
}

/// `dqkv` (`[B, T, 3C]`, overwritten) from the output gradient `dout`, the forward's inputs,
/// output and `stats`: two dispatches, queries then keys and values.
pub fn attention_backward(
    gpu: &Gpu,
    shape: AttentionShape,
    (qkv, out, stats): (&Tensor, &Tensor, &Tensor),
    dout: &Tensor,
    dqkv: &Tensor,
) -> Result<Vec<Dispatch>> {
    let variant = shape.check(qkv, out, stats)?;
    expect_shape("attention dout", dout, out.shape())?;
    expect_shape("attention dqkv", dqkv, qkv.shape())?;
    Ok(vec![
        shape.dispatch(
            gpu,
            (variant, &variant.backward_query),
            [qkv, out, dout, dqkv, stats],
        )?,
        shape.dispatch(
            gpu,
            (variant, &variant.backward_key_value),
            [qkv, qkv, dout, dqkv, stats],
        )?,
    ])
}
