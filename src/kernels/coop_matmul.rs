//! Launcher for `shaders/coop_matmul.wgsl`: `c = op(a) · op(b)` on cooperative matrices
//! (tensor cores), f16 operands and f32 accumulation, where the adapter has them
//! ([`Gpu::cooperative_matrix_subgroup`]). A mixed-precision product for callers who accept
//! f16's 11-bit operands; the trainer's f32 products do not use it.
//!
//! ```no_run
//! # fn main() -> wgtrain::Result<()> {
//! use wgtrain::kernels::coop_matmul::CoopMatmul;
//! let gpu = wgtrain::Gpu::new()?;
//! let a = gpu.tensor(&[1.0; 3 * 5], &[3, 5])?;
//! let b = gpu.tensor(&[2.0; 5 * 2], &[5, 2])?;
//! let c = gpu.uninit(&[3, 2])?;
//! let product = CoopMatmul::default().dispatch(&gpu, &a, &b, &c)?;
//! gpu.run(&product.dispatches())?;
//! assert_eq!(gpu.read(&c)?, vec![10.0; 6]);
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::half::to_f16_padded;
use crate::kernels::matmul::matrix_product_dims;
use crate::kernels::tensor::column_window;
use crate::kernels::to_u32;

pub(crate) static SHADER: Shader = Shader {
    name: "coop_matmul",
    source: || include_str!("../../shaders/coop_matmul.wgsl").to_string(),
    trusted: false,
};

static COOP_64: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "coop_64",
    bindings: &[
        Access::Uniform,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
    ],
};

/// Rows and columns of C per workgroup.
const TILE: usize = 64;
/// The padded K is a multiple of this: the depth of one cooperative multiply.
const K_STEP: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct CoopParams {
    pub(crate) m: u32,
    pub(crate) n: u32,
    pub(crate) k: u32,
    pub(crate) _pad: u32,
}

/// `c[m, n] = op(a)[m, k] · op(b)[k, n]` through f16: each operand is rounded to f16 (and
/// padded to whole tiles) by its own dispatch, multiplied on cooperative matrices with f32
/// accumulation, and cropped into `c` when padding was needed. Operands beyond f16's range
/// (|x| > 65504) become infinite.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoopMatmul {
    /// `a` is stored `[k, m]`.
    pub trans_a: bool,
    /// `b` is stored `[n, k]`.
    pub trans_b: bool,
}

/// The dispatches of one [`CoopMatmul`], to record in order.
#[derive(Debug)]
pub struct CoopProduct {
    casts: [Dispatch; 2],
    product: Dispatch,
    crop: Option<Dispatch>,
}

impl CoopProduct {
    /// Every dispatch, in the order they must run.
    pub fn dispatches(&self) -> Vec<&Dispatch> {
        let mut all: Vec<&Dispatch> = self.casts.iter().collect();
        all.push(&self.product);
        all.extend(&self.crop);
        all
    }

    /// The multiplication alone, for timing it apart from the casts.
    pub fn product(&self) -> &Dispatch {
        &self.product
    }
}

impl CoopMatmul {
    /// The product's dispatches; an error where the adapter has no cooperative matrices.
    pub fn dispatch(&self, gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<CoopProduct> {
        let subgroup = gpu.cooperative_matrix_subgroup().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the cooperative-matrix matmul needs 16x16x16 f16 cooperative matrices, which {} \
                 does not offer",
                gpu.adapter_info().name
            ))
        })?;
        let (m, n, k) = matrix_product_dims((self.trans_a, self.trans_b), a, b, c)?;
        let (pm, pn, pk) = (
            m.next_multiple_of(TILE),
            n.next_multiple_of(TILE),
            k.next_multiple_of(K_STEP),
        );
        let a16 = gpu.uninit(&[pm, pk / 2])?;
        let b16 = gpu.uninit(&[pk, pn / 2])?;
        let casts = [
            to_f16_padded(gpu, a, self.trans_a, (pm, pk), &a16)?,
            to_f16_padded(gpu, b, self.trans_b, (pk, pn), &b16)?,
        ];
        let padded = (pm, pn) != (m, n);
        let out = if padded {
            gpu.uninit(&[pm, pn])?
        } else {
            c.clone()
        };
        let params = gpu.uniform(&CoopParams {
            m: to_u32(pm),
            n: to_u32(pn),
            k: to_u32(pk),
            _pad: 0,
        });
        let product = gpu.dispatch(
            &COOP_64,
            &[("SUBGROUP_SIZE", f64::from(subgroup))],
            &[
                Bind::Uniform(&params),
                Bind::Tensor(&a16),
                Bind::Tensor(&b16),
                Bind::Tensor(&out),
            ],
            [to_u32(pn / TILE), to_u32(pm / TILE), 1],
        )?;
        let crop = padded
            .then(|| column_window(gpu, (m, n, pn, 0), false, &out, c))
            .transpose()?;
        Ok(CoopProduct {
            casts,
            product,
            crop,
        })
    }
}
