//! Launchers for `shaders/data.wgsl`: batches gathered on the GPU by a permutation.

use crate::error::Error;
use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_shape, matrix_dims, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "data",
    source: || include_str!("../../shaders/data.wgsl").to_string(),
    trusted: false,
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
];
static GATHER_ROWS: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "gather_rows",
    bindings: BINDINGS,
};
static GATHER_ROWS_U8: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "gather_rows_u8",
    bindings: BINDINGS,
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct GatherParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) offset: u32,
    pub(crate) scale: f32,
}

/// How the source rows are stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowFormat {
    /// f32 values.
    F32,
    /// Bytes packed four to a u32 word, multiplied by `scale` on the way out (images).
    U8 {
        /// The factor.
        scale: f32,
    },
}

/// `out[r, :] = src[indices[offset + r], :]` for the `rows` rows of `out`. `src` holds
/// `src_rows × cols` values in `format`.
pub fn gather_rows(
    gpu: &Gpu,
    format: RowFormat,
    src_rows: usize,
    src: &Tensor,
    indices: &Tensor,
    offset: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    let (rows, cols) = matrix_dims("gather_rows out", out)?;
    let words = match format {
        RowFormat::F32 => src_rows * cols,
        RowFormat::U8 { .. } => (src_rows * cols).div_ceil(4),
    };
    expect_shape("gather_rows src", src, &[words])?;
    if offset + rows > indices.len() {
        return Err(Error::InvalidArgument(format!(
            "gather_rows: rows {offset}..{} past the {} indices",
            offset + rows,
            indices.len()
        )));
    }
    let (spec, scale) = match format {
        RowFormat::F32 => (&GATHER_ROWS, 1.0),
        RowFormat::U8 { scale } => (&GATHER_ROWS_U8, scale),
    };
    let params = gpu.uniform(&GatherParams {
        rows: to_u32(rows),
        cols: to_u32(cols),
        offset: to_u32(offset),
        scale,
    });
    gpu.dispatch(
        spec,
        &[],
        &[
            Bind::Uniform(&params),
            Bind::Tensor(src),
            Bind::Tensor(indices),
            Bind::Tensor(out),
        ],
        grid_1d(out.len(), 256),
    )
}
