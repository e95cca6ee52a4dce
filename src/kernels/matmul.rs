//! Launcher for `shaders/matmul.wgsl`: `c = epilogue(op(a) · op(b))`.

use crate::error::{Error, Result};
use crate::gpu::kernel::{Access, Bind, KernelSpec, Shader, grid_1d};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::{
    Activation, MAX_SPLITS, auto_splits, cpu_splits, expect_same_len, expect_shape, k_slices,
    matrix_dims, shape_error, to_u32, with_gemm_tiles,
};

pub(crate) static SHADER: Shader = Shader {
    name: "matmul",
    source: || source("fn lane_value(v: vec4<f32>, lane: u32) -> vec4<f32> { return v; }"),
    trusted: true,
};

/// The same kernels where `direct` may pass values between subgroup lanes (adapters with
/// subgroups only: the module would not compile elsewhere).
static SUBGROUP_SHADER: Shader = Shader {
    name: "matmul_subgroups",
    source: || {
        source(
            "fn lane_value(v: vec4<f32>, lane: u32) -> vec4<f32> { return subgroupShuffle(v, lane); }",
        )
    },
    trusted: true,
};

fn source(lane_value: &str) -> String {
    format!(
        "{}\n{lane_value}\n",
        with_gemm_tiles(include_str!("../../shaders/matmul.wgsl"))
    )
}

const BINDINGS: &[Access] = &[
    Access::Uniform,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::Read,
    Access::Read,
];
static TILED: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "tiled_64",
    bindings: BINDINGS,
};
static TILED_128: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "tiled_128",
    bindings: BINDINGS,
};
static DIRECT: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "direct",
    bindings: BINDINGS,
};
static DIRECT_SHARED: KernelSpec = KernelSpec {
    shader: &SUBGROUP_SHADER,
    entry: "direct",
    bindings: BINDINGS,
};
static SPLIT_SUM: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "matmul_split_sum",
    bindings: BINDINGS,
};
static NAIVE: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "matmul_naive",
    bindings: BINDINGS,
};

/// The output tile of one workgroup (see the shader).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tile {
    /// Chosen per shape: on GPUs the fastest of `T32`, `T64` and `T128` (where both output
    /// dimensions fill it), timed once per shape class with the split along K the product
    /// will get and kept in memory and in the autotune's disk cache; on CPU adapters `Direct`
    /// wherever the shape allows it, else `T32` up to 32 rows, `T128`/`T64` by size above.
    #[default]
    Auto,
    /// 32×64 (rows × columns), 4×4 per thread, staged through workgroup memory: twice
    /// `T64`'s workgroups for products of few rows (a small batch's layers).
    T32,
    /// 64×64, 4×4 per thread, staged through workgroup memory: small and skinny products.
    T64,
    /// 128×128, 8×8 per thread, staged through workgroup memory: large products.
    T128,
    /// 64×64, 32×8 per thread loaded straight from memory as vec4s, no workgroup memory: the
    /// CPU adapters' kernel (see the shader for why). Only for shapes whose loads and stores
    /// are whole vec4s ([`Matmul::direct_fits`]); others run `T64`.
    Direct,
}

impl Tile {
    /// Rows of C one workgroup computes.
    pub(crate) fn rows(self) -> usize {
        match self {
            Tile::T32 => 32,
            Tile::T128 => 128,
            Tile::T64 | Tile::Direct | Tile::Auto => 64,
        }
    }

    /// Columns of C one workgroup computes.
    pub(crate) fn cols(self) -> usize {
        match self {
            Tile::T128 => 128,
            Tile::T32 | Tile::T64 | Tile::Direct | Tile::Auto => 64,
        }
    }

    /// Whether an `m × n` output fills at least one 128×128 tile: the autotune's condition
    /// for trying `T128` at all.
    fn fills_t128(m: usize, n: usize) -> bool {
        m >= 128 && n >= 128
    }

    /// Workgroups over an `m × columns` output.
    pub(crate) fn groups(self, m: usize, columns: usize) -> usize {
        m.div_ceil(self.rows()) * columns.div_ceil(self.cols())
    }

    /// The staged kernels' override constants for this tile (gemm_tiles.wgsl's `TILE_ROWS`).
    pub(crate) fn constants(self) -> Vec<(&'static str, f64)> {
        match self {
            Tile::T32 | Tile::T64 => vec![("TILE_ROWS", self.rows() as f64)],
            Tile::T128 | Tile::Direct | Tile::Auto => vec![],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct MatmulParams {
    pub(crate) m: u32,
    pub(crate) n: u32,
    pub(crate) k: u32,
    pub(crate) slope: f32,
    /// Elements between consecutive matrices of a batched product (0 when not batched).
    pub(crate) stride_a: u32,
    pub(crate) stride_b: u32,
    pub(crate) stride_c: u32,
    /// K per split of a split product (K otherwise).
    pub(crate) k_chunk: u32,
}

/// What happens to each product element before it is stored.
#[derive(Clone, Copy, Debug, Default)]
pub enum Epilogue<'a> {
    /// `c = a·b`
    #[default]
    Store,
    /// `c = act(a·b [+ c] [+ bias[col]])`: a Linear layer's forward, fused.
    Activate {
        /// Added to every row.
        bias: Option<&'a Tensor>,
        /// Applied last.
        activation: Activation,
        /// Add the product to what `c` holds.
        accumulate: bool,
    },
    /// `c = (a·b) ⊙ act'(pre)`: the backward of `act` fused into the product that feeds it.
    ActivationGrad {
        /// The activation's input, `[m, n]`.
        pre: &'a Tensor,
        /// Whose derivative scales the product.
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
    /// What happens to each element before it is stored.
    pub epilogue: Epilogue<'a>,
    /// The output tile each workgroup computes (`Auto` picks by shape).
    pub tile: Tile,
    /// Also write `Σ_k op(a)[i, k]` to `row_sums[i]` (`[m]`): a Linear layer's bias gradient
    /// from the same pass over `dY` as its weight gradient. Only with [`Epilogue::Store`].
    pub row_sums: Option<&'a Tensor>,
    /// Parts along K for [`Matmul::dispatches`]: `None` chooses (see there), `Some(1)` never
    /// splits.
    pub split_k: Option<usize>,
}

impl Matmul<'_> {
    /// The product as one dispatch, never split.
    pub fn dispatch(&self, gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Dispatch> {
        let mnk = matrix_product_dims((self.trans_a, self.trans_b), a, b, c)?;
        self.launch(gpu, 1, mnk, (a, b, c), None)
    }

    /// The product as one dispatch, or as two when split along K: partial products over
    /// slices of K, then their sum in a fixed order with the epilogue. Unless `split_k` says,
    /// a product splits when its output has too few tiles to keep the device busy and K is
    /// long enough to share out (`SPLIT_TARGET_WORKGROUPS`, `MIN_SPLIT_DEPTH`); on CPU
    /// adapters "busy" is one workgroup per core, which only narrow outputs miss.
    pub fn dispatches(
        &self,
        gpu: &Gpu,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
    ) -> Result<Vec<Dispatch>> {
        let (m, n, k) = matrix_product_dims((self.trans_a, self.trans_b), a, b, c)?;
        let columns = n + usize::from(self.row_sums.is_some());
        let splits = match self.split_k {
            Some(parts) => parts.clamp(1, MAX_SPLITS),
            None => {
                // Counted on `direct`'s grid wherever a split would let it run.
                let groups = self.tile_for(gpu, (m, n, k), true)?.groups(m, columns);
                if gpu.is_cpu() {
                    cpu_splits(groups, k)
                } else {
                    auto_splits(groups, k)
                }
            }
        };
        let (splits, k_chunk) = k_slices(k, splits);
        if splits == 1 {
            return Ok(vec![self.launch(gpu, 1, (m, n, k), (a, b, c), None)?]);
        }
        let partial = gpu.uninit(&[splits, m, columns])?;
        let products = self.launch(
            gpu,
            1,
            (m, n, k),
            (a, b, c),
            Some((splits, k_chunk, &partial)),
        )?;
        let (params, constants) = self.setup(gpu, (m, n, k), (a, b, c), k_chunk, true)?;
        let spare = gpu.stand_ins()?;
        let sum = gpu.dispatch(
            &SPLIT_SUM,
            &constants,
            &self.bindings(&params, (a, b, c), Some(&partial), (false, false), &spare),
            grid_1d(m * columns.div_ceil(4), 64),
        )?;
        Ok(vec![products, sum])
    }

    /// `c[i] = epilogue(op(a[i]) · op(b[i]))` for each of the `batch` matrices of `a`
    /// (`[batch, rows, cols]`), `b` and `c` (`[batch, m, n]`): one dispatch, batch along z.
    pub fn dispatch_batched(
        &self,
        gpu: &Gpu,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
    ) -> Result<Dispatch> {
        let batched = |t: &Tensor, what: &str| match *t.shape() {
            [batch, rows, cols] => Ok((batch, (rows, cols))),
            _ => Err(shape_error(
                &format!("batched matmul {what} (expects [batch, rows, cols])"),
                t.shape(),
                &[],
            )),
        };
        let (batch, dims_a) = batched(a, "a")?;
        let (batch_b, dims_b) = batched(b, "b")?;
        let (m, k) = stored_dims(dims_a, self.trans_a);
        let (kb, n) = stored_dims(dims_b, self.trans_b);
        if k != kb || batch != batch_b {
            return Err(shape_error("batched matmul (a vs b)", a.shape(), b.shape()));
        }
        expect_shape("batched matmul c", c, &[batch, m, n])?;
        if batch > 65535 || (batch > 1 && self.row_sums.is_some()) {
            return Err(Error::InvalidArgument(format!(
                "batched matmul of {batch} matrices: at most 65535, and no row sums"
            )));
        }
        self.launch(gpu, batch, (m, n, k), (a, b, c), None)
    }

    /// The tile for a product, `split` along K or not.
    fn tile_for(&self, gpu: &Gpu, mnk: (usize, usize, usize), split: bool) -> Result<Tile> {
        let fits = self.direct_fits(mnk, split);
        Ok(match self.tile {
            Tile::Auto if fits && gpu.is_cpu() => Tile::Direct,
            Tile::Auto => gpu.matmul_tile(mnk, (self.trans_a, self.trans_b))?,
            Tile::Direct if !fits => Tile::T64,
            fixed => fixed,
        })
    }

    /// Whether `direct` can run an `(m, n, k)` product with these transposes, `split` along
    /// K or not: every vec4 it loads or stores must be whole, so K, the stored row length of
    /// each operand and of C are multiples of 4, except C's where the product is split (its
    /// partials are stored a float at a time).
    pub fn direct_fits(&self, (m, n, k): (usize, usize, usize), split: bool) -> bool {
        k % 4 == 0 && (!self.trans_a || m % 4 == 0) && (n % 4 == 0 || (self.trans_b && split))
    }

    /// Whether A's and B's stored rows are whole vec4s (their lengths multiples of 4; a split's
    /// K range is a multiple of 16, so it cuts none).
    fn whole_vec4_rows(&self, (m, n, k): (usize, usize, usize)) -> (bool, bool) {
        let a_row = if self.trans_a { m } else { k };
        let b_row = if self.trans_b { k } else { n };
        (a_row % 4 == 0, b_row % 4 == 0)
    }

    /// The tiled kernel over `batch` products, or over `splits` slices of K into `partial`.
    fn launch(
        &self,
        gpu: &Gpu,
        batch: usize,
        (m, n, k): (usize, usize, usize),
        operands: (&Tensor, &Tensor, &Tensor),
        split: Option<(usize, usize, &Tensor)>,
    ) -> Result<Dispatch> {
        let k_chunk = split.map_or(k, |s| s.1);
        let (params, mut constants) =
            self.setup(gpu, (m, n, k), operands, k_chunk, split.is_some())?;
        let tile = self.tile_for(gpu, (m, n, k), split.is_some())?;
        constants.extend(tile.constants());
        // Row sums ride as an extra column of ones, but for an unsplit `direct`, which
        // stores them from the threads holding C's last column.
        let direct = tile == Tile::Direct;
        let sums_column = self.row_sums.is_some() && !(direct && split.is_none());
        let columns = n + usize::from(sums_column);
        let groups = [
            to_u32(columns.div_ceil(tile.cols())),
            to_u32(m.div_ceil(tile.rows())),
            to_u32(split.map_or(batch, |s| s.0)),
        ];
        let spare = gpu.stand_ins()?;
        let shared_lanes = if direct {
            gpu.cpu_subgroup_size()
        } else {
            None
        };
        if let Some(lanes) = shared_lanes {
            constants.push(("SHARED_LANES", f64::from(lanes)));
        }
        // `direct` always loads vec4s; the tiled kernels where an operand's stored rows are.
        let vectors = if direct {
            (true, true)
        } else {
            self.whole_vec4_rows((m, n, k))
        };
        constants.push(("VEC_A", f64::from(u8::from(vectors.0))));
        constants.push(("VEC_B", f64::from(u8::from(vectors.1))));
        gpu.dispatch(
            match tile {
                Tile::T128 => &TILED_128,
                Tile::Direct if shared_lanes.is_some() => &DIRECT_SHARED,
                Tile::Direct => &DIRECT,
                Tile::T32 | Tile::T64 | Tile::Auto => &TILED,
            },
            &constants,
            &self.bindings(&params, operands, split.map(|s| s.2), vectors, &spare),
            groups,
        )
    }

    /// The nine bindings of every entry point (see the shader); unused ones (no row sums, no
    /// split, an operand not read as vec4s) get the `spare` stand-ins.
    fn bindings<'t>(
        &self,
        params: &'t wgpu::Buffer,
        (a, b, c): (&'t Tensor, &'t Tensor, &'t Tensor),
        partial: Option<&'t Tensor>,
        (vec_a, vec_b): (bool, bool),
        spare: &'t [Tensor; 4],
    ) -> [Bind<'t>; 9]
    where
        Self: 't,
    {
        let aux = match self.epilogue {
            Epilogue::Activate { bias, .. } => bias,
            Epilogue::ActivationGrad { pre, .. } => Some(pre),
            Epilogue::Store => None,
        };
        [
            Bind::Uniform(params),
            Bind::Tensor(a),
            Bind::Tensor(b),
            Bind::Tensor(aux.unwrap_or(a)),
            Bind::Tensor(c),
            Bind::Tensor(self.row_sums.unwrap_or(&spare[0])),
            Bind::Tensor(partial.unwrap_or(&spare[1])),
            Bind::Tensor(if vec_a { a } else { &spare[2] }),
            Bind::Tensor(if vec_b { b } else { &spare[3] }),
        ]
    }

    /// Checks the epilogue's operands; returns the params buffer and override constants.
    fn setup(
        &self,
        gpu: &Gpu,
        (m, n, k): (usize, usize, usize),
        (a, b, c): (&Tensor, &Tensor, &Tensor),
        k_chunk: usize,
        split: bool,
    ) -> Result<(wgpu::Buffer, Vec<(&'static str, f64)>)> {
        let (activation, accumulate) = match self.epilogue {
            Epilogue::Store => (Activation::Identity, false),
            Epilogue::Activate {
                bias,
                activation,
                accumulate,
            } => {
                if let Some(bias) = bias {
                    expect_shape("matmul bias", bias, &[n])?;
                }
                (activation, accumulate)
            }
            Epilogue::ActivationGrad { pre, activation } => {
                expect_same_len("matmul activation-grad input", pre, c)?;
                (activation, false)
            }
        };
        if let Some(sums) = self.row_sums {
            expect_shape("matmul row_sums", sums, &[m])?;
            if !matches!(self.epilogue, Epilogue::Store)
                || sums.shares_buffer(a)
                || sums.shares_buffer(b)
            {
                return Err(Error::InvalidArgument(
                    "matmul row sums need a plain store and their own buffer".into(),
                ));
            }
        }
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
            stride_a: to_u32(m * k),
            stride_b: to_u32(k * n),
            stride_c: to_u32(m * n),
            k_chunk: to_u32(k_chunk),
        });
        let constants = vec![
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
            ("ROW_SUMS", f64::from(u8::from(self.row_sums.is_some()))),
            ("SPLIT_K", f64::from(u8::from(split))),
        ];
        Ok((params, constants))
    }
}

/// `(m, n, k)` of an unbatched product, after checking the three shapes agree.
pub(crate) fn matrix_product_dims(
    (trans_a, trans_b): (bool, bool),
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
) -> Result<(usize, usize, usize)> {
    let (m, k) = stored_dims(matrix_dims("matmul a", a)?, trans_a);
    let (kb, n) = stored_dims(matrix_dims("matmul b", b)?, trans_b);
    if k != kb {
        return Err(shape_error(
            "matmul (inner dimensions)",
            a.shape(),
            b.shape(),
        ));
    }
    expect_shape("matmul c", c, &[m, n])?;
    Ok((m, n, k))
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
        stride_a: 0,
        stride_b: 0,
        stride_c: 0,
        k_chunk: to_u32(k),
    });
    let groups = [to_u32(n.div_ceil(16)), to_u32(m.div_ceil(16)), 1];
    let spare = gpu.stand_ins::<4>()?;
    gpu.dispatch(
        &NAIVE,
        &[],
        &[
            Bind::Uniform(&params),
            Bind::Tensor(a),
            Bind::Tensor(b),
            Bind::Tensor(a),
            Bind::Tensor(c),
            Bind::Tensor(&spare[0]),
            Bind::Tensor(&spare[1]),
            Bind::Tensor(&spare[2]),
            Bind::Tensor(&spare[3]),
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

impl Gpu {
    /// The fastest staged tile for products of this shape class on this adapter: timed once
    /// per class (sizes rounded up to powers of two) on GPUs, kept in memory and in the disk
    /// cache ([`Gpu::set_autotune_cache`]), so a later run starts with the answer. CPU
    /// adapters take a rule (timing costs seconds there): the 128×128 tile where both
    /// dimensions fill it, else 64×64.
    pub(crate) fn matmul_tile(
        &self,
        (m, n, k): (usize, usize, usize),
        transposes: (bool, bool),
    ) -> Result<Tile> {
        let fills_t128 = Tile::fills_t128(m, n);
        if self.is_cpu() {
            // A product of at most 32 rows (a classifier's weight gradient) ran 1.6-1.7× faster
            // on T32 than on T64 on lavapipe: half the threads wait at each barrier, and none
            // of them on rows past M.
            return Ok(match m {
                ..=32 => Tile::T32,
                _ if fills_t128 => Tile::T128,
                _ => Tile::T64,
            });
        }
        let class = (
            m.next_power_of_two(),
            n.next_power_of_two(),
            k.next_power_of_two(),
            transposes,
        );
        if let Some(&tile) = self
            .inner
            .tiles
            .lock()
            .map_err(|_| Error::Gpu("tile cache poisoned".into()))?
            .get(&class)
        {
            return Ok(tile);
        }
        // A browser cannot block on timings: the small tile fits WebGPU's default limits.
        #[cfg(target_arch = "wasm32")]
        let best = Tile::T64;
        #[cfg(not(target_arch = "wasm32"))]
        let best = self.tuned_tile(class, (m, n, k), transposes)?;
        if let Ok(mut tiles) = self.inner.tiles.lock() {
            tiles.insert(class, best);
        }
        Ok(best)
    }

    /// The disk cache's tile for `class`, or a timing's, which is then stored.
    #[cfg(not(target_arch = "wasm32"))]
    fn tuned_tile(
        &self,
        class: crate::gpu::context::MatmulClass,
        mnk: (usize, usize, usize),
        transposes: (bool, bool),
    ) -> Result<Tile> {
        use crate::gpu::autotune;
        let path = self
            .inner
            .autotune_cache
            .lock()
            .map_err(|_| Error::Gpu("autotune cache poisoned".into()))?
            .clone();
        let adapter = autotune::adapter_key(self.adapter_info());
        if let Some(tile) = path
            .as_deref()
            .and_then(|p| autotune::lookup(p, &adapter, &class))
        {
            return Ok(tile);
        }
        let best = self.time_matmul_tiles(mnk, transposes)?;
        if let Some(path) = path
            && let Err(error) = autotune::record(&path, &adapter, &class, best)
        {
            crate::train::warn(format_args!(
                "the autotune cache could not be written ({error}); shapes will be timed again next run"
            ));
        }
        Ok(best)
    }

    /// Times the staged tiles on a product of this shape (one warm-up, median of three): 32×64
    /// and 64×64 always, 128×128 where both output dimensions fill it, each with the split
    /// along K that a training step would give it, so the choice is the step's; returns the
    /// fastest. What the autotune runs once per shape class on GPUs.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn time_matmul_tiles(
        &self,
        (m, n, k): (usize, usize, usize),
        transposes: (bool, bool),
    ) -> Result<Tile> {
        let a = self.zeros(&if transposes.0 { [k, m] } else { [m, k] })?;
        let b = self.zeros(&if transposes.1 { [n, k] } else { [k, n] })?;
        let c = self.uninit(&[m, n])?;
        let fills_t128 = Tile::fills_t128(m, n);
        let mut best = (f64::INFINITY, Tile::T64);
        for tile in [Tile::T32, Tile::T64, Tile::T128] {
            if tile == Tile::T128 && !fills_t128 {
                continue;
            }
            let op = Matmul {
                trans_a: transposes.0,
                trans_b: transposes.1,
                tile,
                ..Default::default()
            };
            let dispatches = op.dispatches(self, &a, &b, &c)?;
            let (seconds, _) =
                crate::gpu::time_pass(self, crate::gpu::Warmup::Passes(1), 3, &|pass| {
                    for dispatch in &dispatches {
                        dispatch.record(pass, 0);
                    }
                })?;
            if seconds < best.0 {
                best = (seconds, tile);
            }
        }
        Ok(best.1)
    }
}
