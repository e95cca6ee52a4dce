//! Launchers for `shaders/conv.wgsl`: Conv2d forward, input gradient and weight gradient as
//! implicit GEMMs on the matmul's tiling (`shaders/gemm_tiles.wgsl`), or on CPU adapters as
//! products over a stored im2col matrix on the matmul's `direct` kernel.

use crate::error::Result;
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::matmul::{Matmul, Tile};
use crate::kernels::{
    Activation, auto_splits, expect_shape, k_slices, shape_error, to_u32, window_constants,
    with_gemm_tiles, with_window,
};

pub(crate) static SHADER: Shader = Shader {
    name: "conv",
    source: || with_window(&with_gemm_tiles(include_str!("../../shaders/conv.wgsl"))),
    trusted: true,
};

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
];
const fn spec(entry: &'static str) -> KernelSpec {
    KernelSpec {
        shader: &SHADER,
        entry,
        bindings: BINDINGS,
    }
}
static TILED: KernelSpec = spec("tiled_64");
static TILED_128: KernelSpec = spec("tiled_128");
static WEIGHT_GRAD_SUM: KernelSpec = spec("conv_weight_grad_sum");
static IM2COL: KernelSpec = spec("im2col_store");
static TO_CHANNEL_MAJOR: KernelSpec = spec("to_channel_major");
static FROM_CHANNEL_MAJOR: KernelSpec = spec("from_channel_major");
static COL2IM: KernelSpec = spec("col2im");
static PAD_WEIGHT: KernelSpec = spec("pad_weight");
static UNPAD_WEIGHT_GRAD: KernelSpec = spec("unpad_weight_grad");

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvParams {
    pub(crate) m: u32,
    pub(crate) n: u32,
    pub(crate) k: u32,
    pub(crate) k_chunk: u32,
    pub(crate) slope: f32,
    pub(crate) _pad0: u32,
    pub(crate) _pad1: u32,
    pub(crate) _pad2: u32,
}

/// Stride, zero padding and dilation of a convolution, `[rows, columns]` each, as
/// `nn.Conv2d(stride=, padding=, dilation=)` takes them; the kernel size is the weight's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conv2dConfig {
    /// Steps between windows.
    pub stride: [usize; 2],
    /// Zeros added on each side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        }
    }
}

impl Conv2dConfig {
    /// The output size along one axis (PyTorch's formula), `None` when the dilated kernel does
    /// not fit the padded input or a stride or dilation is 0.
    pub fn output_size(&self, axis: usize, input: usize, kernel: usize) -> Option<usize> {
        let (s, p, d) = (self.stride[axis], self.padding[axis], self.dilation[axis]);
        if s == 0 || d == 0 || kernel == 0 {
            return None;
        }
        let span = d * (kernel - 1) + 1;
        (input + 2 * p).checked_sub(span).map(|room| room / s + 1)
    }
}

/// One convolution's shapes: `x` `[B, C, H, W]`, `weight` `[O, C, kh, kw]`, `y` `[B, O, Ho, Wo]`.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    kernel: [usize; 2],
    out: [usize; 2],
    config: Conv2dConfig,
}

impl Geometry {
    fn of(x: &[usize], weight: &[usize], config: Conv2dConfig) -> Result<Self> {
        let &[batch, channels, height, width] = x else {
            return Err(shape_error("conv2d x (expects [B, C, H, W])", x, &[]));
        };
        let &[out_channels, c, kh, kw] = weight else {
            return Err(shape_error(
                "conv2d weight (expects [O, C, kh, kw])",
                weight,
                &[],
            ));
        };
        let sizes = config
            .output_size(0, height, kh)
            .zip(config.output_size(1, width, kw));
        match sizes {
            Some((oh, ow)) if c == channels && oh * ow > 0 => Ok(Self {
                batch,
                channels,
                height,
                width,
                out_channels,
                kernel: [kh, kw],
                out: [oh, ow],
                config,
            }),
            _ => Err(shape_error(
                "conv2d (weight [O, C, kh, kw] vs x [B, C, H, W])",
                weight,
                x,
            )),
        }
    }

    fn y_shape(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out[0], self.out[1]]
    }

    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// Rows and columns of the stored im2col matrix: `[C·T, B·P]`, C·T padded with rows of
    /// zeros to a multiple of 4 (the products' vec4s run along it).
    fn col_dims(&self) -> (usize, usize) {
        (
            (self.channels * self.taps()).next_multiple_of(4),
            self.batch * self.out[0] * self.out[1],
        )
    }

    /// Whether the stored im2col matrix has rows of padding.
    fn padded(&self) -> bool {
        self.col_dims().0 != self.channels * self.taps()
    }

    /// Whether this layer runs lowered (see the shader): on CPU adapters, where every vec4
    /// its passes and products move is whole and the im2col matrix fits one binding. Memory
    /// for speed: the forward keeps an im2col matrix (which the weight gradient reads again
    /// when the caller keeps it, as a graph does) and y's `[O, B·P]` twin, the backward a
    /// `[C·T, B·P]` matrix and two of dy (113 MB for the MNIST CNN's second conv at batch
    /// 64, beside 9 MB of y).
    fn lowered(&self, gpu: &Gpu) -> bool {
        let (rows, columns) = self.col_dims();
        gpu.is_cpu()
            && (self.out[0] * self.out[1]).is_multiple_of(4)
            && self.out_channels.is_multiple_of(4)
            && 4 * (rows as u64) * (columns as u64) <= gpu.max_binding_bytes()
    }

    /// The params of one product, `(m, n, k)` and the K per split.
    fn params(&self, (m, n, k): (usize, usize, usize), k_chunk: usize, slope: f32) -> ConvParams {
        ConvParams {
            m: to_u32(m),
            n: to_u32(n),
            k: to_u32(k),
            k_chunk: to_u32(k_chunk),
            slope,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }

    /// The geometry as the shader's override constants.
    fn constants(&self) -> Vec<(&'static str, f64)> {
        let c = &self.config;
        let mut constants = window_constants(
            [self.height, self.width],
            self.out,
            (self.kernel, c.stride, c.padding),
        );
        constants.extend(
            [
                ("CHANNELS", self.channels),
                ("OUT_CHANNELS", self.out_channels),
                ("DILATION_H", c.dilation[0]),
                ("DILATION_W", c.dilation[1]),
            ]
            .map(|(name, v)| (name, f64::from(to_u32(v)))),
        );
        constants
    }
}

/// What one tiled launch binds at 1..=6 (see the shader's table).
struct Operands<'a> {
    x: &'a Tensor,
    weight: &'a Tensor,
    dy: &'a Tensor,
    aux: &'a Tensor,
    out: &'a Tensor,
    /// The bias gradient, written beside `out` by the weight-gradient modes alone; the other
    /// launches bind a stand-in (a second writable view of `out` would alias it).
    out2: Option<&'a Tensor>,
}

impl<'a> Operands<'a> {
    /// A lowered pass: `input` at every read binding but aux, its result in `out`.
    fn pass(input: &'a Tensor, aux: &'a Tensor, out: &'a Tensor) -> Self {
        Self {
            x: input,
            weight: input,
            dy: input,
            aux,
            out,
            out2: None,
        }
    }
}

fn bindings<'a>(params: &'a wgpu::Buffer, o: &Operands<'a>, unused: &'a Tensor) -> [Bind<'a>; 7] {
    [
        Bind::Uniform(params),
        Bind::Tensor(o.x),
        Bind::Tensor(o.weight),
        Bind::Tensor(o.dy),
        Bind::Tensor(o.aux),
        Bind::Tensor(o.out),
        Bind::Tensor(o.out2.unwrap_or(unused)),
    ]
}

/// One implicit GEMM of `mode` over `(m, n', k)` (n' counting an extra row-sum column) in
/// `splits` parts along K.
#[allow(clippy::too_many_arguments)]
fn launch_gemm(
    gpu: &Gpu,
    mode: u32,
    (m, columns, k): (usize, usize, usize),
    (geometry, params): (&Geometry, &ConvParams),
    flags: [(&'static str, bool); 3],
    activation: Activation,
    splits: usize,
    operands: &Operands<'_>,
) -> Result<Dispatch> {
    let tile = gpu.matmul_tile((m, columns, k), (false, false))?;
    let groups_x = columns.div_ceil(tile.cols());
    let mut constants = vec![
        ("MODE", f64::from(mode)),
        ("ACT", f64::from(activation.code())),
    ];
    constants.extend(flags.map(|(name, on)| (name, f64::from(u8::from(on)))));
    constants.extend(geometry.constants());
    constants.extend(tile.constants());
    let uniform = gpu.uniform(params);
    gpu.dispatch(
        if tile == Tile::T128 {
            &TILED_128
        } else {
            &TILED
        },
        &constants,
        &bindings(&uniform, operands, &gpu.stand_ins::<1>()?[0]),
        [
            to_u32(groups_x),
            to_u32(m.div_ceil(tile.rows())),
            to_u32(splits),
        ],
    )
}

/// One pass of the lowered path over an `(m, n)` params pair (see the shader), `threads`
/// threads.
fn launch_pass(
    gpu: &Gpu,
    spec: &'static KernelSpec,
    (geometry, (m, n), threads): (&Geometry, (usize, usize), usize),
    (bias, mask, activation): (bool, bool, Activation),
    operands: &Operands<'_>,
) -> Result<Dispatch> {
    let mut constants = vec![
        ("ACT", f64::from(activation.code())),
        ("HAS_BIAS", f64::from(u8::from(bias))),
        ("GRAD_MASK", f64::from(u8::from(mask))),
    ];
    constants.extend(geometry.constants());
    let uniform = gpu.uniform(&geometry.params((m, n, 0), 0, activation.slope()));
    gpu.dispatch(
        spec,
        &constants,
        &bindings(&uniform, operands, &gpu.stand_ins::<1>()?[0]),
        grid_1d(threads, 64),
    )
}

/// The shape of the im2col matrix a Conv2d layer of these shapes stores on `gpu`, `[C·T, B·P]`
/// (C·T padded to a multiple of 4), or `None` where it runs as an implicit GEMM and stores
/// none. A caller that keeps the matrix from [`conv2d_forward`] to [`conv2d_backward_weight`]
/// saves the weight gradient from building it again.
pub fn stored_im2col_shape(
    gpu: &Gpu,
    x: &[usize],
    weight: &[usize],
    config: Conv2dConfig,
) -> Option<[usize; 2]> {
    let g = Geometry::of(x, weight, config).ok()?;
    g.lowered(gpu).then(|| g.col_dims().into())
}

/// im2col of `x` as `[C·T, B·P]` in `into`, or in a new tensor, and the pass that fills it.
fn stored_im2col(
    gpu: &Gpu,
    g: &Geometry,
    x: &Tensor,
    into: Option<&Tensor>,
) -> Result<(Tensor, Dispatch)> {
    let (rows, columns) = g.col_dims();
    let col = match into {
        Some(col) => checked_columns(g, col)?,
        None => gpu.uninit(&[rows, columns])?,
    };
    let fill = launch_pass(
        gpu,
        &IM2COL,
        (g, (rows, columns), rows * columns / 4),
        (false, false, Activation::Identity),
        &Operands::pass(x, x, &col),
    )?;
    Ok((col, fill))
}

/// A caller's im2col matrix, checked against the layer's.
fn checked_columns(g: &Geometry, col: &Tensor) -> Result<Tensor> {
    let (rows, columns) = g.col_dims();
    expect_shape("conv2d stored im2col matrix", col, &[rows, columns])?;
    Ok(col.clone())
}

/// `dy` as `[O, B·P]`, a new tensor, and the pass that fills it.
fn channel_major(gpu: &Gpu, g: &Geometry, dy: &Tensor) -> Result<(Tensor, Dispatch)> {
    let columns = g.col_dims().1;
    let moved = gpu.uninit(&[g.out_channels, columns])?;
    let fill = launch_pass(
        gpu,
        &TO_CHANNEL_MAJOR,
        (g, (g.out_channels, columns), g.out_channels * columns / 4),
        (false, false, Activation::Identity),
        &Operands::pass(dy, dy, &moved),
    )?;
    Ok((moved, fill))
}

/// The weight `[O, C, kh, kw]` as the matrix `[O, C·T]`, padded like the im2col matrix's
/// rows: a view, or a new tensor and the pass that fills it.
fn weight_matrix(gpu: &Gpu, g: &Geometry, weight: &Tensor) -> Result<(Tensor, Option<Dispatch>)> {
    let (o, rows) = (g.out_channels, g.col_dims().0);
    if !g.padded() {
        return Ok((weight.view(0, &[o, rows])?, None));
    }
    let matrix = gpu.uninit(&[o, rows])?;
    let fill = launch_pass(
        gpu,
        &PAD_WEIGHT,
        (g, (o, rows), o * rows),
        (false, false, Activation::Identity),
        &Operands::pass(weight, weight, &matrix),
    )?;
    Ok((matrix, Some(fill)))
}

/// `y[b, o] = act(Σ_c w[o, c] ⋆ x[b, c] + bias[o])`, `⋆` the strided, padded, dilated
/// cross-correlation of `nn.Conv2d`; x `[B, C, H, W]`, weight `[O, C, kh, kw]`, bias `[O]`,
/// y `[B, O, Ho, Wo]`. Where the layer stores an im2col matrix ([`stored_im2col_shape`]) it
/// goes in `columns` when given (for [`conv2d_backward_weight`]); elsewhere `columns` is
/// ignored.
pub fn conv2d_forward(
    gpu: &Gpu,
    config: Conv2dConfig,
    x: &Tensor,
    weight: &Tensor,
    (bias, activation): (Option<&Tensor>, Activation),
    (y, columns): (&Tensor, Option<&Tensor>),
) -> Result<Vec<Dispatch>> {
    let g = Geometry::of(x.shape(), weight.shape(), config)?;
    expect_shape("conv2d y", y, &g.y_shape())?;
    if let Some(bias) = bias {
        expect_shape("conv2d bias", bias, &[g.out_channels])?;
    }
    if g.lowered(gpu) {
        let (col, fill) = stored_im2col(gpu, &g, x, columns)?;
        let (o, columns) = (g.out_channels, g.col_dims().1);
        let product = gpu.uninit(&[o, columns])?;
        let (matrix, pad) = weight_matrix(gpu, &g, weight)?;
        let mut out: Vec<Dispatch> = [Some(fill), pad].into_iter().flatten().collect();
        out.extend(Matmul::default().dispatches(gpu, &matrix, &col, &product)?);
        out.push(launch_pass(
            gpu,
            &FROM_CHANNEL_MAJOR,
            (&g, (o, columns), o * columns / 4),
            (bias.is_some(), false, activation),
            &Operands::pass(&product, bias.unwrap_or(&product), y),
        )?);
        return Ok(out);
    }
    let mnk = (
        g.out_channels,
        g.batch * g.out[0] * g.out[1],
        g.channels * g.taps(),
    );
    let params = g.params(mnk, mnk.2, activation.slope());
    launch_gemm(
        gpu,
        0,
        mnk,
        (&g, &params),
        [
            ("HAS_BIAS", bias.is_some()),
            ("GRAD_MASK", false),
            ("SPLIT", false),
        ],
        activation,
        1,
        &Operands {
            x,
            weight,
            dy: x,
            aux: bias.unwrap_or(x),
            out: y,
            out2: None,
        },
    )
    .map(|gemm| vec![gemm])
}

/// `dx = Σ_o w[o] ⋆ᵀ dy[b, o]` (the transposed convolution), times `act'(mask.0)` when x is
/// the output of a fused activation `mask.1`; dx and mask.0 are x's shape `[B, C, H, W]`.
pub fn conv2d_backward_input(
    gpu: &Gpu,
    config: Conv2dConfig,
    dy: &Tensor,
    weight: &Tensor,
    mask: Option<(&Tensor, Activation)>,
    dx: &Tensor,
) -> Result<Vec<Dispatch>> {
    let g = Geometry::of(dx.shape(), weight.shape(), config)?;
    expect_shape("conv2d dy", dy, &g.y_shape())?;
    if let Some((pre, _)) = mask {
        expect_shape("conv2d mask", pre, dx.shape())?;
    }
    if g.lowered(gpu) {
        let (moved, fill) = channel_major(gpu, &g, dy)?;
        let (rows, columns) = g.col_dims();
        let dcol = gpu.uninit(&[rows, columns])?;
        let product = Matmul {
            trans_a: true,
            ..Default::default()
        };
        let (matrix, pad) = weight_matrix(gpu, &g, weight)?;
        let mut out: Vec<Dispatch> = [Some(fill), pad].into_iter().flatten().collect();
        out.extend(product.dispatches(gpu, &matrix, &moved, &dcol)?);
        out.push(launch_pass(
            gpu,
            &COL2IM,
            (&g, (dx.len(), columns), dx.len()),
            (
                false,
                mask.is_some(),
                mask.map_or(Activation::Identity, |m| m.1),
            ),
            &Operands::pass(&dcol, mask.map_or(&dcol, |m| m.0), dx),
        )?);
        return Ok(out);
    }
    let mnk = (
        g.channels,
        g.batch * g.height * g.width,
        g.out_channels * g.taps(),
    );
    let activation = mask.map_or(Activation::Identity, |m| m.1);
    let params = g.params(mnk, mnk.2, activation.slope());
    launch_gemm(
        gpu,
        1,
        mnk,
        (&g, &params),
        [
            ("HAS_BIAS", false),
            ("GRAD_MASK", mask.is_some()),
            ("SPLIT", false),
        ],
        activation,
        1,
        &Operands {
            x: dy,
            weight,
            dy,
            aux: mask.map_or(dy, |m| m.0),
            out: dx,
            out2: None,
        },
    )
    .map(|gemm| vec![gemm])
}

/// `dweight[o, c] = Σ_b dy[b, o] ⋆ x[b, c]` and `dbias[o] = Σ_{b,p} dy[b, o, p]`, both
/// overwritten. The sum over B·Ho·Wo is split along K over many workgroups when the product
/// itself has few (partials summed in a fixed order by a second kernel). `forward_columns`:
/// the im2col matrix of x that [`conv2d_forward`] stored, where the layer stores one, which
/// is then read instead of built again (`None` builds it; ignored where there is none).
pub fn conv2d_backward_weight(
    gpu: &Gpu,
    config: Conv2dConfig,
    (x, forward_columns): (&Tensor, Option<&Tensor>),
    dy: &Tensor,
    dweight: &Tensor,
    dbias: Option<&Tensor>,
) -> Result<Vec<Dispatch>> {
    let g = Geometry::of(x.shape(), dweight.shape(), config)?;
    expect_shape("conv2d dy", dy, &g.y_shape())?;
    if let Some(db) = dbias {
        expect_shape("conv2d dbias", db, &[g.out_channels])?;
    }
    if g.lowered(gpu) {
        let (moved, fill_dy) = channel_major(gpu, &g, dy)?;
        let mut out = vec![fill_dy];
        let col = match forward_columns {
            Some(col) => checked_columns(&g, col)?,
            None => {
                let (col, fill) = stored_im2col(gpu, &g, x, None)?;
                out.push(fill);
                col
            }
        };
        let product = Matmul {
            trans_b: true,
            row_sums: dbias,
            ..Default::default()
        };
        // The product writes dw itself, or a padded matrix that a pass trims into it.
        let (o, rows) = (g.out_channels, g.col_dims().0);
        let matrix = if g.padded() {
            gpu.uninit(&[o, rows])?
        } else {
            dweight.view(0, &[o, rows])?
        };
        out.extend(product.dispatches(gpu, &moved, &col, &matrix)?);
        if g.padded() {
            out.push(launch_pass(
                gpu,
                &UNPAD_WEIGHT_GRAD,
                (&g, (o, rows), dweight.len()),
                (false, false, Activation::Identity),
                &Operands::pass(&matrix, &matrix, dweight),
            )?);
        }
        return Ok(out);
    }
    let (m, n, k) = (
        g.out_channels,
        g.channels * g.taps(),
        g.batch * g.out[0] * g.out[1],
    );
    let columns = n + usize::from(dbias.is_some());
    let (splits, k_chunk) = k_slices(k, auto_splits(columns.div_ceil(64) * m.div_ceil(64), k));
    let params = g.params((m, n, k), k_chunk, 0.0);
    let flags = [
        ("HAS_BIAS", dbias.is_some()),
        ("GRAD_MASK", false),
        ("SPLIT", splits > 1),
    ];
    // Split products write partials [splits, O, N'] that a second kernel sums into dw, db.
    let partial = (splits > 1)
        .then(|| gpu.uninit(&[splits, m, columns]))
        .transpose()?;
    let (out, out2) = match &partial {
        Some(partial) => (partial, None),
        None => (dweight, dbias),
    };
    let gemm = launch_gemm(
        gpu,
        2,
        (m, columns, k),
        (&g, &params),
        flags,
        Activation::Identity,
        splits,
        &Operands {
            x,
            weight: x,
            dy,
            aux: x,
            out,
            out2,
        },
    )?;
    let Some(partial) = partial else {
        return Ok(vec![gemm]);
    };
    let uniform = gpu.uniform(&params);
    let constants = flags.map(|(name, on)| (name, f64::from(u8::from(on))));
    let sum = gpu.dispatch(
        &WEIGHT_GRAD_SUM,
        &constants,
        &bindings(
            &uniform,
            &Operands {
                x: &partial,
                weight: &partial,
                dy: &partial,
                aux: &partial,
                out: dweight,
                out2: dbias,
            },
            &gpu.stand_ins::<1>()?[0],
        ),
        grid_1d(m * columns, 256),
    )?;
    Ok(vec![gemm, sum])
}
