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
//           6 partial (read_write, splits·M·N' under SPLIT_K; c again otherwise), 7 and 8
//           a and b again as vec4s (`direct` only; stand-ins otherwise).
// Batched: workgroup z is the batch index; A, B and C (and aux under GRAD_MASK) start
// stride_a, stride_b, stride_c elements further per batch (bias and row_sums are not batched).
// Split along K (SPLIT_K, unbatched products only): workgroup z sums k in [z·k_chunk, +k_chunk)
// into partial[z], and `matmul_split_sum` adds the partials in order of z and applies the
// epilogue: a product whose output has too few tiles to fill the GPU (a Linear layer of a
// CNN at a small batch: 256×128 outputs over K = 9216) still gets hundreds of workgroups.
// CPU adapters get `direct` below instead (dense operands only, see there).
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
@group(0) @binding(7) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> b4: array<vec4<f32>>;

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
// four columns of a row. Workgroups of 64: at 256 lavapipe took 1.2 ms for a 64×10 output
// (35 µs at 64), whatever the body. Grid: grid_1d(M · ceil(N' / 4), 64).
@compute @workgroup_size(64)
fn matmul_split_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let quads = (columns() + 3u) / 4u;
    let i = gid.y * groups.x * 64u + gid.x;
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

// The kernel for CPU adapters (lavapipe): a 64×64 tile of C' per workgroup of 8×2 threads, each
// thread a 32×8 block read straight from memory as vec4s, with no workgroup memory and no
// barriers. A CPU driver runs a workgroup's threads as the lanes of SIMD registers and turns
// each load into a loop over the lanes, so its cost is the number of loads, whatever their
// width, and it fuses no multiply-add it is not told to (hence `fma`). Per 4 steps of K a
// thread loads 32 vectors of A and 8 of B for 1024 multiply-adds, where the tiled kernels
// make a scalar load per 4 to 16 (4-6x faster on lavapipe at 64×1024×1024). B's loads are
// the ones no lane shares, so the block is tall: 32 rows instead of 16 made the MLP's
// products 1.2-1.8x faster on lavapipe (64 rows gained nothing more). It needs every
// vec4 it loads to be whole and aligned: K % 4 == 0, M % 4 == 0 under TRANS_A, N % 4 == 0
// without TRANS_B (`Matmul::direct_fits`). Rows and columns past C's edge load clamped
// addresses and are never stored. On GPUs the tiled kernels' shared staging wins.
// Grid: (ceil(N' / 64), ceil(M / 64), z), N' as for the tiled kernels.
//
// SHARED_LANES, when not 0, is the subgroup size of an adapter whose subgroups are runs of
// consecutive threads (a CPU driver's SIMD lanes): the 8 threads of a row of the workgroup are
// then lanes of one subgroup, all needing the same 32 vectors of A, and each loads four and
// takes the rest from its neighbours' registers (`lane_value`, a subgroup shuffle): 12 loads
// per 1024 multiply-adds instead of 40. The launcher prepends `lane_value`: a shuffle where the
// adapter has subgroups, else the identity, which SHARED_LANES = 0 never calls.
override SHARED_LANES: u32 = 0u;

@compute @workgroup_size(8, 2)
fn direct(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) index: u32,
          @builtin(workgroup_id) wid: vec3<u32>) {
    let k_range = begin_workgroup(wid.z);
    let row = wid.y * 64u + lid.y * 32u;
    let col = wid.x * 64u + lid.x * 8u;
    // The subgroup lane of this row's first thread, when lanes are shared.
    let first_lane = index % max(SHARED_LANES, 1u) - lid.x;
    // Rows row + 8q .. +8 of the thread's block.
    var q0 = Rows8(); var q1 = Rows8(); var q2 = Rows8(); var q3 = Rows8();
    for (var k = k_range.x; k < k_range.y; k += 4u) {
        let b0 = b_block(k, col);
        let b1 = b_block(k, col + 4u);
        q0 = mac8(q0, row_vectors(row, k, lid.x, first_lane), b0, b1);
        q1 = mac8(q1, row_vectors(row + 8u, k, lid.x, first_lane), b0, b1);
        q2 = mac8(q2, row_vectors(row + 16u, k, lid.x, first_lane), b0, b1);
        q3 = mac8(q3, row_vectors(row + 24u, k, lid.x, first_lane), b0, b1);
    }
    store_rows8(row, col, q0);
    store_rows8(row + 8u, col, q1);
    store_rows8(row + 16u, col, q2);
    store_rows8(row + 24u, col, q3);
}

// Eight rows by a thread's eight columns: c_rh holds rows 4r .. 4r + 4 (one per matrix column)
// by columns 4h .. 4h + 4; sums_r the rows' sums under ROW_SUMS.
struct Rows8 {
    c00: mat4x4<f32>, c01: mat4x4<f32>,
    c10: mat4x4<f32>, c11: mat4x4<f32>,
    sums0: vec4<f32>, sums1: vec4<f32>,
}

// The eight vectors `a_vector` gives for rows row .. row + 8 over k .. k + 4. With shared
// lanes each of the row's 8 threads loads one and takes the others from its neighbours.
fn row_vectors(row: u32, k: u32, lane: u32, first_lane: u32) -> array<vec4<f32>, 8> {
    var v: array<vec4<f32>, 8>;
    if SHARED_LANES != 0u {
        let mine = a_vector(row, k, lane);
        for (var j = 0u; j < 8u; j++) { v[j] = lane_value(mine, first_lane + j); }
    } else {
        for (var j = 0u; j < 8u; j++) { v[j] = a_vector(row, k, j); }
    }
    return v;
}

// `acc` plus 4 steps of K: the eight rows' vectors `v` times columns b0 and b1 (`b_block`).
fn mac8(acc: Rows8, v: array<vec4<f32>, 8>, b0: mat4x4<f32>, b1: mat4x4<f32>) -> Rows8 {
    var a0 = mat4x4<f32>(v[0], v[1], v[2], v[3]);
    var a1 = mat4x4<f32>(v[4], v[5], v[6], v[7]);
    if !TRANS_A { a0 = transpose(a0); a1 = transpose(a1); }
    var out = Rows8(mac(acc.c00, a0, b0), mac(acc.c01, a0, b1),
                    mac(acc.c10, a1, b0), mac(acc.c11, a1, b1), acc.sums0, acc.sums1);
    if ROW_SUMS {
        out.sums0 += a0[0] + a0[1] + a0[2] + a0[3];
        out.sums1 += a1[0] + a1[1] + a1[2] + a1[3];
    }
    return out;
}

fn store_rows8(row: u32, col: u32, q: Rows8) {
    store_rows(row, col, q.c00, q.c01, q.sums0);
    store_rows(row + 4u, col, q.c10, q.c11, q.sums1);
}

// Four rows of a thread's block: column r of each matrix is row + r. Under ROW_SUMS, C's
// column N holds the rows' sums, as the tiled kernels' column of ones would give.
fn store_rows(row: u32, col: u32, left: mat4x4<f32>, right: mat4x4<f32>, sums: vec4<f32>) {
    store4(row, col, with_sum(left[0], col, sums.x));
    store4(row, col + 4u, with_sum(right[0], col + 4u, sums.x));
    store4(row + 1u, col, with_sum(left[1], col, sums.y));
    store4(row + 1u, col + 4u, with_sum(right[1], col + 4u, sums.y));
    store4(row + 2u, col, with_sum(left[2], col, sums.z));
    store4(row + 2u, col + 4u, with_sum(right[2], col + 4u, sums.z));
    store4(row + 3u, col, with_sum(left[3], col, sums.w));
    store4(row + 3u, col + 4u, with_sum(right[3], col + 4u, sums.w));
}

// Columns col .. col + 4 of a row, with the row's sum in column N if that is among them.
fn with_sum(v: vec4<f32>, col: u32, sum: f32) -> vec4<f32> {
    if !ROW_SUMS { return v; }
    return select(v, vec4<f32>(sum), col + vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(params.n));
}

// Vector j (0..8) of op(A)'s rows row .. row + 8 over k .. k + 4: under TRANS_A (stored
// [K, M], a vec4 runs along M, M % 4 == 0) rows row + 4(j / 4) .. +4 at k + j % 4; else (stored
// [M, K], a vec4 runs along K) row + j's values at k .. k + 4. Rows past M are clamped.
fn a_vector(row: u32, k: u32, j: u32) -> vec4<f32> {
    if TRANS_A {
        let stride = params.m / 4u;
        return a4[base_a / 4u + (k + j % 4u) * stride + min(row + 4u * (j / 4u), params.m - 4u) / 4u];
    }
    return a4[(base_a + k) / 4u + min(row + j, params.m - 1u) * (params.k / 4u)];
}

// op(B)[k .. k + 4, col .. col + 4] as a matrix whose column kk holds the four columns at k + kk.
fn b_block(k: u32, col: u32) -> mat4x4<f32> {
    if TRANS_B {
        // Stored [N, K]: a vec4 runs along K.
        let last = params.n - 1u;
        let at = (base_b + k) / 4u;
        let stride = params.k / 4u;
        return transpose(mat4x4<f32>(
            b4[at + min(col, last) * stride], b4[at + min(col + 1u, last) * stride],
            b4[at + min(col + 2u, last) * stride], b4[at + min(col + 3u, last) * stride]));
    }
    // Stored [K, N]: a vec4 runs along N (N % 4 == 0).
    let stride = params.n / 4u;
    let at = base_b / 4u + k * stride + min(col, params.n - 4u) / 4u;
    return mat4x4<f32>(b4[at], b4[at + stride], b4[at + 2u * stride], b4[at + 3u * stride]);
}

// c + a·b for 4×4 blocks (a's column kk holds four rows at k + kk, b's four columns), as
// fused multiply-adds. Constant indices: a loop over kk would index the matrices dynamically,
// which drivers serve from memory.
fn mac(c: mat4x4<f32>, a: mat4x4<f32>, b: mat4x4<f32>) -> mat4x4<f32> {
    return rank1(rank1(rank1(rank1(c, a[0], b[0]), a[1], b[1]), a[2], b[2]), a[3], b[3]);
}

// c + a ⊗ b: column r is row r's four columns.
fn rank1(c: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(fma(vec4(a.x), b, c[0]), fma(vec4(a.y), b, c[1]),
                       fma(vec4(a.z), b, c[2]), fma(vec4(a.w), b, c[3]));
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
