// C = epilogue(op(A) · op(B)), f32.
//   M, N, K: C is M×N, the product runs over K.
//   op(A) is M×K: A stored row-major as M×K, or as K×M when TRANS_A.
//   op(B) is K×N: B stored row-major as K×N, or as N×K when TRANS_B.
// Epilogue, in order: + C (ACCUMULATE), + bias[n] (HAS_BIAS), then activation ACT; or, with
// GRAD_MASK, the product is multiplied by ACT'(aux[m, n]) (a fused activation backward).
// ROW_SUMS also writes row_sums[m] = Σ_k op(A)[m, k], as a column N of ones appended to op(B)
// would: a Linear layer's bias gradient comes out of its weight-gradient product.
//
// Bindings: 0 params (uniform), 1 a (read, M·K), 2 b (read, K·N), 3 bias (read, N; or aux,
//           M·N), 4 c (read_write, M·N), 5 row_sums (read_write, M; c again when unused),
//           6 partial (read_write, splits·M·N' under SPLIT_K; c again otherwise).
// Batched: workgroup z is the batch index; A, B and C (and aux under GRAD_MASK) start
// stride_a, stride_b, stride_c elements further per batch (bias and row_sums are not batched).
// Split along K (SPLIT_K, unbatched products only): workgroup z sums k in [z·k_chunk, +k_chunk)
// into partial[z], and `matmul_split_sum` adds the partials in order of z and applies the
// epilogue: a product whose output has too few tiles to fill the GPU (a Linear layer of a
// CNN at a small batch: 256×128 outputs over K = 9216) still gets hundreds of workgroups.
// The tiled kernels are gemm_tiles.wgsl's `tiled_64` and `tiled_128` over the addressing
// below; their grid has N' = N + 1 columns under ROW_SUMS and the batch along z. The
// transposes are override constants, so each variant compiles to a branch-free inner loop.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    slope: f32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    k_chunk: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override GRAD_MASK: bool = false;
override ROW_SUMS: bool = false;
override SPLIT_K: bool = false;
override ACT: u32 = 0u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;

// This workgroup's matrices inside the batched buffers.
var<private> base_a: u32;
var<private> base_b: u32;
var<private> base_c: u32;

var<private> split: u32;

fn begin_workgroup(z: u32) -> vec2<u32> {
    if SPLIT_K {
        split = z;
        let start = z * params.k_chunk;
        return vec2<u32>(start, min(params.k, start + params.k_chunk));
    }
    base_a = z * params.stride_a;
    base_b = z * params.stride_b;
    base_c = z * params.stride_c;
    return vec2<u32>(0u, params.k);
}

fn a_runs_along_m() -> bool { return TRANS_A; }
fn b_runs_along_k() -> bool { return TRANS_B; }

fn load_a(row: u32, kk: u32) -> f32 {
    if row >= params.m { return 0.0; }
    if TRANS_A { return a[base_a + kk * params.m + row]; }
    return a[base_a + row * params.k + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    if ROW_SUMS && col == params.n { return 1.0; }
    if col >= params.n { return 0.0; }
    if TRANS_B { return b[base_b + col * params.k + kk]; }
    return b[base_b + kk * params.n + col];
}

fn columns() -> u32 { return params.n + select(0u, 1u, ROW_SUMS); }

// A tile's four consecutive results of row `row` from column `col` on: to this split's
// partial, or through the epilogue into C.
fn store4(row: u32, col: u32, v: vec4<f32>) {
    if SPLIT_K {
        if row >= params.m { return; }
        for (var j = 0u; j < 4u; j++) {
            if col + j < columns() { partial[(split * params.m + row) * columns() + col + j] = v[j]; }
        }
        return;
    }
    epilogue4(row, col, v);
}

// Applies the epilogue to four consecutive elements of row `row` from column `col` on and
// stores those inside C.
fn epilogue4(row: u32, col: u32, v: vec4<f32>) {
    if row >= params.m { return; }
    for (var j = 0u; j < 4u; j++) {
        let c_col = col + j;
        if ROW_SUMS && c_col == params.n { row_sums[row] = v[j]; }
        if c_col >= params.n { return; }

        let index = base_c + row * params.n + c_col;
        var x = v[j];
        if GRAD_MASK {
            x *= activate_grad(bias[index], ACT, params.slope);
        } else {
            if ACCUMULATE { x += c[index]; }
            if HAS_BIAS { x += bias[c_col]; }
            x = activate(x, ACT, params.slope);
        }
        c[index] = x;
    }
}

// The partials of a split product added in order of split, then the epilogue: one thread per
// four columns of a row. Grid: grid_1d(M · ceil(N' / 4), 256).
@compute @workgroup_size(256)
fn matmul_split_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let quads = (columns() + 3u) / 4u;
    let i = gid.y * groups.x * 256u + gid.x;
    if i >= params.m * quads { return; }
    let row = i / quads;
    let col = (i % quads) * 4u;
    let splits = (params.k + params.k_chunk - 1u) / params.k_chunk;
    var v = vec4<f32>(0.0);
    for (var z = 0u; z < splits; z++) {
        for (var j = 0u; j < 4u; j++) {
            if col + j < columns() { v[j] += partial[(z * params.m + row) * columns() + col + j]; }
        }
    }
    epilogue4(row, col, v);
}

// The reference point for benchmarks: one output per thread, no reuse, no transposes.
@compute @workgroup_size(16, 16)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if row >= params.m || col >= params.n { return; }
    var sum = 0.0;
    for (var k = 0u; k < params.k; k++) {
        sum += a[row * params.k + k] * b[k * params.n + col];
    }
    c[row * params.n + col] = sum;
}
