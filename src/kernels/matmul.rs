//! Launcher for `shaders/matmul.wgsl`: `c = epilogue(op(a) · op(b))`.

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{
    Activation, expect_shape, matrix_dims, shape_error, to_u32, with_activations,
};

pub(crate) static SHADER: Shader = Shader {
    name: "matmul",
    source: || with_activations(include_str!("../../shaders/matmul.wgsl")),
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
];
static TILED: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "matmul",
    bindings: BINDINGS,
};
static NAIVE: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "matmul_naive",
    bindings: BINDINGS,
};

/// Output tile edge of one workgroup (see the shader).
const TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub slope: f32,
}

/// What happens to each product element before it is stored.
#[derive(Clone, Copy, Debug, Default)]
pub enum Epilogue<'a> {
    /// `c = a·b`
    #[default]
    Store,
    /// `c = act(a·b [+ c] [+ bias[col]])`: a Linear layer's forward, fused.
    Activate {
        bias: Option<&'a Tensor>,
        activation: Activation,
        accumulate: bool,
    },
    /// `c = (a·b) ⊙ act'(pre)`: the backward of `act` fused into the product that feeds it.
    ActivationGrad {
        pre: &'a Tensor,
        activation: Activation,
    },
}

/// `c[m, n] = epilogue(op(a)[m, k] · op(b)[k, n])` where `op` transposes when asked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Matmul<'a> {
    /// `a` is stored `[k, m]`.
    pub trans_a: bool,
    /// `b` is stored `[n, k]` (a Linear layer's weight in PyTorch's layout).
    pub trans_b: bool,
    pub epilogue: Epilogue<'a>,
}

impl Matmul<'_> {
    pub fn dispatch(&self, gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Dispatch> {
        let (m, k) = stored_dims(matrix_dims("matmul a", a)?, self.trans_a);
        let (kb, n) = stored_dims(matrix_dims("matmul b", b)?, self.trans_b);
        if k != kb {
            return Err(shape_error(
                "matmul (inner dimensions)",
                a.shape(),
                b.shape(),
            ));
        }
        expect_shape("matmul c", c, &[m, n])?;
        let (aux, activation, accumulate) = match self.epilogue {
            Epilogue::Store => (None, Activation::Identity, false),
            Epilogue::Activate {
                bias,
                activation,
                accumulate,
            } => {
                if let Some(bias) = bias {
                    expect_shape("matmul bias", bias, &[n])?;
                }
                (bias, activation, accumulate)
            }
            Epilogue::ActivationGrad { pre, activation } => {
                expect_shape("matmul activation-grad input", pre, &[m, n])?;
                (Some(pre), activation, false)
            }
        };
        if c.shares_buffer(a) || c.shares_buffer(b) {
            return Err(Error::InvalidArgument(
                "matmul output aliases an input".into(),
            ));
        }
        let params = gpu.uniform(&MatmulParams {
            m: to_u32(m),
            n: to_u32(n),
            k: to_u32(k),
            slope: activation.slope(),
        });
        let constants = [
            ("TRANS_A", f64::from(u8::from(self.trans_a))),
            ("TRANS_B", f64::from(u8::from(self.trans_b))),
            (
                "HAS_BIAS",
                f64::from(u8::from(matches!(
                    self.epilogue,
                    Epilogue::Activate { bias: Some(_), .. }
                ))),
            ),
            ("ACCUMULATE", f64::from(u8::from(accumulate))),
            (
                "GRAD_MASK",
                f64::from(u8::from(matches!(
                    self.epilogue,
                    Epilogue::ActivationGrad { .. }
                ))),
            ),
            ("ACT", f64::from(activation.code())),
        ];
        let groups = [to_u32(n.div_ceil(TILE)), to_u32(m.div_ceil(TILE)), 1];
        gpu.dispatch(
            &TILED,
            &constants,
            &[
                Bind::Uniform(&params),
                Bind::Tensor(a),
                Bind::Tensor(b),
                Bind::Tensor(aux.unwrap_or(a)),
                Bind::Tensor(c),
            ],
            groups,
        )
    }
}

/// The one-output-per-thread kernel benchmarks compare against: `c = a·b`, no transposes.
pub fn matmul_naive(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Dispatch> {
    let (m, k) = matrix_dims("matmul_naive a", a)?;
    let (kb, n) = matrix_dims("matmul_naive b", b)?;
    if k != kb {
        return Err(shape_error(
            "matmul_naive (inner dimensions)",
            a.shape(),
            b.shape(),
        ));
    }
    expect_shape("matmul_naive c", c, &[m, n])?;
    let params = gpu.uniform(&MatmulParams {
        m: to_u32(m),
        n: to_u32(n),
        k: to_u32(k),
        slope: 0.0,
    });
    let groups = [to_u32(n.div_ceil(16)), to_u32(m.div_ceil(16)), 1];
    gpu.dispatch(
        &NAIVE,
        &[],
        &[
            Bind::Uniform(&params),
            Bind::Tensor(a),
            Bind::Tensor(b),
            Bind::Tensor(a),
            Bind::Tensor(c),
        ],
        groups,
    )
}

/// (rows, cols) of op(x) given x's stored (rows, cols).
fn stored_dims((rows, cols): (usize, usize), transposed: bool) -> (usize, usize) {
    if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    }
}
