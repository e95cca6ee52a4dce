//! Launcher for `shaders/half.wgsl`: f32 matrices into the padded, packed f16 operands of
//! the cooperative-matrix matmul.

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{expect_shape, matrix_dims, to_u32};

pub(crate) static SHADER: Shader = Shader {
    name: "half",
    source: || include_str!("../../shaders/half.wgsl").to_string(),
    trusted: false,
};

static TO_F16_PADDED: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "to_f16_padded",
    bindings: &[Access::Uniform, Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct HalfParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) padded_rows: u32,
    pub(crate) padded_cols: u32,
}

/// `packed` = op(`x`) as a row-major f16 `[padded_rows, padded_cols]` matrix, zeros beyond
/// op(`x`)'s own rows and columns; op transposes `x` when `transposed`. `packed` holds two
/// halves in each 4-byte element: its shape is `[padded_rows, padded_cols / 2]`.
pub fn to_f16_padded(
    gpu: &Gpu,
    x: &Tensor,
    transposed: bool,
    (padded_rows, padded_cols): (usize, usize),
    packed: &Tensor,
) -> Result<Dispatch> {
    let (stored_rows, stored_cols) = matrix_dims("to_f16_padded x", x)?;
    let (rows, cols) = if transposed {
        (stored_cols, stored_rows)
    } else {
        (stored_rows, stored_cols)
    };
    if padded_rows < rows || padded_cols < cols || !padded_cols.is_multiple_of(2) {
        return Err(Error::InvalidArgument(format!(
            "to_f16_padded: a {rows}x{cols} matrix does not fit {padded_rows}x{padded_cols} \
             (the padded width must also be even)"
        )));
    }
    expect_shape(
        "to_f16_padded packed",
        packed,
        &[padded_rows, padded_cols / 2],
    )?;
    let params = gpu.uniform(&HalfParams {
        rows: to_u32(rows),
        cols: to_u32(cols),
        padded_rows: to_u32(padded_rows),
        padded_cols: to_u32(padded_cols),
    });
    gpu.dispatch(
        &TO_F16_PADDED,
        &[("TRANSPOSED", f64::from(u8::from(transposed)))],
        &[
            Bind::Uniform(&params),
            Bind::Tensor(x),
            Bind::Tensor(packed),
        ],
        grid_1d(packed.len(), 256),
    )
}
