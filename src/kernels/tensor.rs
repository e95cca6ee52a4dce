//! Launchers for `shaders/tensor.wgsl`: strided copies (transpose, concatenation, slices and
//! their backward), broadcast binary ops, sums over an axis and their backward, embedding lookups.

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_same_len, shape_error, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "tensor",
    source: || include_str!("../../shaders/tensor.wgsl").to_string(),
    trusted: false,
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
];
const INDEXED: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::Read,
];

const fn spec(entry: &'static str, bindings: &'static [Access]) -> KernelSpec {
    KernelSpec {
        shader: &SHADER,
        entry,
        bindings,
    }
}
static STRIDED_COPY: KernelSpec = spec("strided_copy", BINDINGS);
static PAD_COLUMNS: KernelSpec = spec("pad_columns", BINDINGS);
static ADD_BROADCAST: KernelSpec = spec("add_broadcast", BINDINGS);
static MUL_BROADCAST: KernelSpec = spec("mul_broadcast", BINDINGS);
static AXIS_SUM: KernelSpec = spec("axis_sum", BINDINGS);
static AXIS_BROADCAST: KernelSpec = spec("axis_broadcast", BINDINGS);
static EMBEDDING_FORWARD: KernelSpec = spec("embedding_forward", INDEXED);
static EMBEDDING_BACKWARD: KernelSpec = spec("embedding_backward", INDEXED);

/// The most axes a strided copy walks.
pub const MAX_RANK: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct TensorParams {
    pub(crate) n: u32,
    pub(crate) rank: u32,
    pub(crate) x_base: u32,
    pub(crate) out_base: u32,
    pub(crate) alpha: f32,
    pub(crate) ny: u32,
    pub(crate) axis_len: u32,
    pub(crate) inner: u32,
    pub(crate) shape: [[u32; 4]; 2],
    pub(crate) x_strides: [[u32; 4]; 2],
    pub(crate) out_strides: [[u32; 4]; 2],
}

fn launch(
    gpu: &Gpu,
    spec: &KernelSpec,
    params: &TensorParams,
    x: &Tensor,
    y: &Tensor,
    out: &Tensor,
    idx: Option<&Tensor>,
) -> Result<Dispatch> {
    let uniform = gpu.uniform(params);
    let mut binds = vec![
        Bind::Uniform(&uniform),
        Bind::Tensor(x),
        Bind::Tensor(y),
        Bind::Tensor(out),
    ];
    if let Some(idx) = idx {
        binds.push(Bind::Tensor(idx));
    }
    gpu.dispatch(spec, &[], &binds, grid_1d(params.n as usize, 256))
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

fn pack(values: &[usize]) -> [[u32; 4]; 2] {
    let mut packed = [[0; 4]; 2];
    for (d, &v) in values.iter().enumerate() {
        packed[d / 4][d % 4] = to_u32(v);
    }
    packed
}

/// A walk over `shape` reading `x` at `x_base + Σ c·x_strides` and writing `out` at
/// `out_base + Σ c·out_strides`.
#[derive(Clone, Debug)]
pub struct StridedCopy {
    /// The walk's extent per axis.
    pub shape: Vec<usize>,
    /// First element read.
    pub x_base: usize,
    /// Per axis, elements between reads.
    pub x_strides: Vec<usize>,
    /// First element written.
    pub out_base: usize,
    /// Per axis, elements between writes.
    pub out_strides: Vec<usize>,
}

impl StridedCopy {
    /// The copy of `x` into `out` as one dispatch.
    pub fn dispatch(&self, gpu: &Gpu, x: &Tensor, out: &Tensor) -> Result<Dispatch> {
        let rank = self.shape.len();
        if rank > MAX_RANK || self.x_strides.len() != rank || self.out_strides.len() != rank {
            return Err(Error::InvalidArgument(format!(
                "strided copy of rank {rank} (at most {MAX_RANK}) with strides {:?} and {:?}",
                self.x_strides, self.out_strides
            )));
        }
        // The last element each side touches must lie inside its tensor.
        let reach = |base: usize, strides: &[usize]| {
            base + self
                .shape
                .iter()
                .zip(strides)
                .map(|(&e, &s)| e.saturating_sub(1) * s)
                .sum::<usize>()
        };
        let n: usize = self.shape.iter().product();
        if n > 0
            && (reach(self.x_base, &self.x_strides) >= x.len()
                || reach(self.out_base, &self.out_strides) >= out.len())
        {
            return Err(shape_error(
                "strided copy (walk leaves a tensor)",
                x.shape(),
                out.shape(),
            ));
        }
        let params = TensorParams {
            n: to_u32(n),
            rank: to_u32(rank),
            x_base: to_u32(self.x_base),
            out_base: to_u32(self.out_base),
            shape: pack(&self.shape),
            x_strides: pack(&self.x_strides),
            out_strides: pack(&self.out_strides),
            ..Default::default()
        };
        launch(gpu, &STRIDED_COPY, &params, x, x, out, None)
    }
}

/// `out = x.transpose(a, b)`: `out` has `x`'s shape with axes `a` and `b` swapped.
pub fn transpose(gpu: &Gpu, axes: (usize, usize), x: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let mut shape = x.shape().to_vec();
    if axes.0.max(axes.1) >= shape.len() {
        return Err(shape_error("transpose axes", x.shape(), &[axes.0, axes.1]));
    }
    shape.swap(axes.0, axes.1);
    if out.shape() != shape {
        return Err(shape_error("transpose out", out.shape(), &shape));
    }
    let mut x_strides = contiguous_strides(x.shape());
    x_strides.swap(axes.0, axes.1);
    StridedCopy {
        out_strides: contiguous_strides(&shape),
        shape,
        x_base: 0,
        x_strides,
        out_base: 0,
    }
    .dispatch(gpu, x, out)
}

/// Copies `x` (`[rows, w]`) into columns `offset..offset + w` of `out` (`[rows, width]`), or,
/// with `to_window` false, columns `offset..offset + w` of `x` (`[rows, width]`) into `out`
/// (`[rows, w]`): concatenation along the last axis and its backward.
pub fn column_window(
    gpu: &Gpu,
    (rows, w, width, offset): (usize, usize, usize, usize),
    to_window: bool,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let (x_strides, out_strides) = if to_window {
        (vec![w, 1], vec![width, 1])
    } else {
        (vec![width, 1], vec![w, 1])
    };
    let (x_base, out_base) = if to_window { (0, offset) } else { (offset, 0) };
    StridedCopy {
        shape: vec![rows, w],
        x_base,
        x_strides,
        out_base,
        out_strides,
    }
    .dispatch(gpu, x, out)
}

/// `out` (`[rows, width]`) = `x` (`[rows, w]`) in columns `offset..offset + w`, zeros
/// elsewhere: the backward of taking that window, written whole.
pub fn pad_columns(
    gpu: &Gpu,
    (rows, w, width, offset): (usize, usize, usize, usize),
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    if x.len() != rows * w || out.len() != rows * width || offset + w > width {
        return Err(shape_error("pad_columns", x.shape(), out.shape()));
    }
    let params = TensorParams {
        n: to_u32(out.len()),
        x_base: to_u32(offset),
        axis_len: to_u32(w),
        inner: to_u32(width),
        ..Default::default()
    };
    launch(gpu, &PAD_COLUMNS, &params, x, x, out, None)
}

fn broadcast(
    gpu: &Gpu,
    spec: &KernelSpec,
    alpha: f32,
    x: &Tensor,
    y: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    expect_same_len(spec.entry, x, out)?;
    if y.is_empty() || !x.len().is_multiple_of(y.len()) {
        return Err(shape_error(spec.entry, x.shape(), y.shape()));
    }
    let params = TensorParams {
        n: to_u32(out.len()),
        ny: to_u32(y.len()),
        alpha,
        ..Default::default()
    };
    launch(gpu, spec, &params, x, y, out, None)
}

/// `out = x + alpha · y`, `y` repeated over `x`'s leading axes.
pub fn add_broadcast(
    gpu: &Gpu,
    alpha: f32,
    x: &Tensor,
    y: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    broadcast(gpu, &ADD_BROADCAST, alpha, x, y, out)
}

/// `out = x ⊙ y`, `y` repeated over `x`'s leading axes.
pub fn mul_broadcast(gpu: &Gpu, x: &Tensor, y: &Tensor, out: &Tensor) -> Result<Dispatch> {
    broadcast(gpu, &MUL_BROADCAST, 1.0, x, y, out)
}

/// `out[o, j] = alpha · Σ_a x[o, a, j]` for `x` seen as `[outer, axis_len, inner]`.
pub fn axis_sum(
    gpu: &Gpu,
    dims: (usize, usize, usize),
    alpha: f32,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    along_axis(gpu, &AXIS_SUM, dims, alpha, (x, out), (x, out))
}

/// `out[o, a, j] = alpha · x[o, j]`: the backward of [`axis_sum`].
pub fn axis_broadcast(
    gpu: &Gpu,
    dims: (usize, usize, usize),
    alpha: f32,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    along_axis(gpu, &AXIS_BROADCAST, dims, alpha, (x, out), (out, x))
}

/// Either direction between `full` (`[outer, axis_len, inner]`) and `reduced` (`[outer,
/// inner]`).
fn along_axis(
    gpu: &Gpu,
    spec: &KernelSpec,
    (outer, axis_len, inner): (usize, usize, usize),
    alpha: f32,
    (x, out): (&Tensor, &Tensor),
    (full, reduced): (&Tensor, &Tensor),
) -> Result<Dispatch> {
    if full.len() != outer * axis_len * inner || reduced.len() != outer * inner {
        return Err(shape_error(spec.entry, full.shape(), reduced.shape()));
    }
    let params = TensorParams {
        n: to_u32(out.len()),
        axis_len: to_u32(axis_len),
        inner: to_u32(inner.max(1)),
        alpha,
        ..Default::default()
    };
    launch(gpu, spec, &params, x, x, out, None)
}

/// `out[r, :] = weight[idx[r], :]` for `weight` `[vocab, dim]` and u32 `idx` (`rows` of them);
/// an index ≥ vocab gives a row of NaN.
pub fn embedding_forward(
    gpu: &Gpu,
    weight: &Tensor,
    idx: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let (vocab, dim) = table_dims(weight)?;
    if out.len() != idx.len() * dim {
        return Err(shape_error("embedding out", out.shape(), idx.shape()));
    }
    let params = TensorParams {
        n: to_u32(out.len()),
        ny: to_u32(vocab),
        inner: to_u32(dim),
        ..Default::default()
    };
    launch(
        gpu,
        &EMBEDDING_FORWARD,
        &params,
        weight,
        weight,
        out,
        Some(idx),
    )
}

/// `dweight[v, :] = Σ_{r : idx[r] = v} dout[r, :]`, every row written (zero when unused).
pub fn embedding_backward(
    gpu: &Gpu,
    dout: &Tensor,
    idx: &Tensor,
    dweight: &Tensor,
) -> Result<Dispatch> {
    let (_, dim) = table_dims(dweight)?;
    if dout.len() != idx.len() * dim {
        return Err(shape_error("embedding dout", dout.shape(), idx.shape()));
    }
    let params = TensorParams {
        n: to_u32(dweight.len()),
        axis_len: to_u32(idx.len()),
        inner: to_u32(dim),
        ..Default::default()
    };
    launch(
        gpu,
        &EMBEDDING_BACKWARD,
        &params,
        dout,
        dout,
        dweight,
        Some(idx),
    )
}

fn table_dims(weight: &Tensor) -> Result<(usize, usize)> {
    match *weight.shape() {
        [vocab, dim] if dim > 0 => Ok((vocab, dim)),
        _ => Err(shape_error(
            "embedding weight (expects [vocab, dim])",
            weight.shape(),
            &[],
        )),
    }
}
