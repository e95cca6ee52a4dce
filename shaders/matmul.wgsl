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
//           a and b again as vec4s (for `direct`, and for the tiled kernels under VEC_A and
//           VEC_B; stand-ins otherwise). `direct` also sees
//           bindings 3 and 4 as vec4s (`aux4`, `c4`): an entry point may not use two variables
//           of one binding, and it uses only these.
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
// A's (B's) stored rows are whole vec4s and a4 (b4) is bound to it: the tiled kernels stage
// it a vec4 at a time (see load_a4).
override VEC_A: bool = false;
override VEC_B: bool = false;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> aux4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

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

// With VEC_A a stored row's length is a multiple of 4, and so is every split's K range, so
// each vec4 lies wholly inside or wholly outside the operand.
fn load_a4(row: u32, kk: u32, k_end: u32) -> vec4<f32> {
    if !VEC_A { return gather_a4(row, kk, k_end); }
    if row >= params.m || kk >= k_end { return vec4<f32>(0.0); }
    if TRANS_A { return a4[(base_a + kk * params.m + row) / 4u]; }
    return a4[(base_a + row * params.k + kk) / 4u];
}

fn load_b4(kk: u32, col: u32, k_end: u32) -> vec4<f32> {
    if !VEC_B { return gather_b4(kk, col, k_end); }
    if kk >= k_end { return vec4<f32>(0.0); }
    if ROW_SUMS && col == params.n { return select(vec4<f32>(1.0, 0.0, 0.0, 0.0), vec4<f32>(1.0), TRANS_B); }
    if col >= params.n { return vec4<f32>(0.0); }
    if TRANS_B { return b4[(base_b + col * params.k + kk) / 4u]; }
    return b4[(base_b + kk * params.n + col) / 4u];
}

fn columns() -> u32 { return params.n + select(0u, 1u, ROW_SUMS); }

// A tile's four consecutive results of row `row` from column `col` on: to this split's
// partial, or through the epilogue into C.
fn store4(row: u32, col: u32, v: vec4<f32>) {
    if SPLIT_K {
        store_partial4(row, col, v);
        return;
    }
    epilogue4(row, col, v);
}

// Four consecutive results of row `row` from column `col` on, into this split's partial.
fn store_partial4(row: u32, col: u32, v: vec4<f32>) {
    if row >= params.m { return; }
    for (var j = 0u; j < 4u; j++) {
        if col + j < columns() { partial[(split * params.m + row) * columns() + col + j] = v[j]; }
    }
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
// products 1.2-1.8x faster on lavapipe (64 rows gained nothing more), at a price: lavapipe
// takes about 0.45 s to create each variant's pipeline instead of 0.17 s. It needs every
// vec4 it loads to be whole and aligned: K % 4 == 0, M % 4 == 0 under TRANS_A, N % 4 == 0
// without TRANS_B. Stores cost like loads, so C (and the epilogue's bias, aux and
// accumulated C) moves as vec4s too, which needs N % 4 == 0 unless the product is split (a
// split stores its partials a float at a time): `Matmul::direct_fits`. Rows and columns past
// C's edge load clamped addresses and are never stored. On GPUs the tiled kernels' shared
// staging wins.
// Grid: (ceil(N / 64), ceil(M / 64), z); split, N' as for the tiled kernels in place of N.
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
    // c_rq: rows row + 4r .. +4 (one per matrix column) by columns col + 4q .. +4. Named
    // values, not arrays or structs: those took lavapipe several times longer to compile.
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>();
    var c40 = mat4x4<f32>(); var c41 = mat4x4<f32>();
    var c50 = mat4x4<f32>(); var c51 = mat4x4<f32>();
    var c60 = mat4x4<f32>(); var c61 = mat4x4<f32>();
    var c70 = mat4x4<f32>(); var c71 = mat4x4<f32>();
    var sums0 = vec4<f32>(0.0); var sums1 = vec4<f32>(0.0);
    var sums2 = vec4<f32>(0.0); var sums3 = vec4<f32>(0.0);
    var sums4 = vec4<f32>(0.0); var sums5 = vec4<f32>(0.0);
    var sums6 = vec4<f32>(0.0); var sums7 = vec4<f32>(0.0);
    for (var k = k_range.x; k < k_range.y; k += 4u) {
        let b0 = b_block(k, col);
        let b1 = b_block(k, col + 4u);
        let mine0 = own_vector(row, k, lid.x);
        let mine1 = own_vector(row + 8u, k, lid.x);
        let mine2 = own_vector(row + 16u, k, lid.x);
        let mine3 = own_vector(row + 24u, k, lid.x);
        let a0 = a_block(row, k, 0u, mine0, first_lane);
        let a1 = a_block(row, k, 4u, mine0, first_lane);
        let a2 = a_block(row + 8u, k, 0u, mine1, first_lane);
        let a3 = a_block(row + 8u, k, 4u, mine1, first_lane);
        let a4 = a_block(row + 16u, k, 0u, mine2, first_lane);
        let a5 = a_block(row + 16u, k, 4u, mine2, first_lane);
        let a6 = a_block(row + 24u, k, 0u, mine3, first_lane);
        let a7 = a_block(row + 24u, k, 4u, mine3, first_lane);
        c00 = mac(c00, a0, b0); c01 = mac(c01, a0, b1);
        c10 = mac(c10, a1, b0); c11 = mac(c11, a1, b1);
        c20 = mac(c20, a2, b0); c21 = mac(c21, a2, b1);
        c30 = mac(c30, a3, b0); c31 = mac(c31, a3, b1);
        c40 = mac(c40, a4, b0); c41 = mac(c41, a4, b1);
        c50 = mac(c50, a5, b0); c51 = mac(c51, a5, b1);
        c60 = mac(c60, a6, b0); c61 = mac(c61, a6, b1);
        c70 = mac(c70, a7, b0); c71 = mac(c71, a7, b1);
        if ROW_SUMS {
            sums0 += row_sum(a0); sums1 += row_sum(a1); sums2 += row_sum(a2); sums3 += row_sum(a3);
            sums4 += row_sum(a4); sums5 += row_sum(a5); sums6 += row_sum(a6); sums7 += row_sum(a7);
        }
    }
    // The bias over the thread's 8 columns, loaded once for its 32 rows.
    let bias = mat2x4<f32>(direct_bias(col), direct_bias(col + 4u));
    store_rows(row, col, c00, c01, sums0, bias);
    store_rows(row + 4u, col, c10, c11, sums1, bias);
    store_rows(row + 8u, col, c20, c21, sums2, bias);
    store_rows(row + 12u, col, c30, c31, sums3, bias);
    store_rows(row + 16u, col, c40, c41, sums4, bias);
    store_rows(row + 20u, col, c50, c51, sums5, bias);
    store_rows(row + 24u, col, c60, c61, sums6, bias);
    store_rows(row + 28u, col, c70, c71, sums7, bias);
}

// With shared lanes, this thread's vector of the 8 rows from `row` (`a_vector` j = lane), which
// its row's other threads take from its register.
fn own_vector(row: u32, k: u32, lane: u32) -> vec4<f32> {
    if SHARED_LANES == 0u { return vec4<f32>(0.0); }
    return a_vector(row, k, lane);
}

// op(A)[row + j0 .. +4, k .. k + 4] as a matrix whose column kk holds the four rows at k + kk:
// vectors j0 .. j0 + 4 of `a_vector`, loaded or (shared lanes) taken from the lanes holding them.
fn a_block(row: u32, k: u32, j0: u32, mine: vec4<f32>, first_lane: u32) -> mat4x4<f32> {
    var m: mat4x4<f32>;
    if SHARED_LANES != 0u {
        m = mat4x4<f32>(lane_value(mine, first_lane + j0), lane_value(mine, first_lane + j0 + 1u),
                        lane_value(mine, first_lane + j0 + 2u), lane_value(mine, first_lane + j0 + 3u));
    } else {
        m = mat4x4<f32>(a_vector(row, k, j0), a_vector(row, k, j0 + 1u),
                        a_vector(row, k, j0 + 2u), a_vector(row, k, j0 + 3u));
    }
    if !TRANS_A { m = transpose(m); }
    return m;
}

// The four rows' sums over this block's k .. k + 4.
fn row_sum(a: mat4x4<f32>) -> vec4<f32> { return a[0] + a[1] + a[2] + a[3]; }

// Four rows of a thread's block: column r of each matrix is row + r. Under ROW_SUMS a split
// product's partials hold the rows' sums in column N, as the tiled kernels' column of ones
// would give; unsplit, the thread whose columns hold C's last one writes them to row_sums,
// so that no workgroup column is launched for them alone.
fn store_rows(row: u32, col: u32, left: mat4x4<f32>, right: mat4x4<f32>, sums: vec4<f32>,
              bias: mat2x4<f32>) {
    direct_store4(row, col, with_sum(left[0], col, sums.x), bias[0]);
    direct_store4(row, col + 4u, with_sum(right[0], col + 4u, sums.x), bias[1]);
    direct_store4(row + 1u, col, with_sum(left[1], col, sums.y), bias[0]);
    direct_store4(row + 1u, col + 4u, with_sum(right[1], col + 4u, sums.y), bias[1]);
    direct_store4(row + 2u, col, with_sum(left[2], col, sums.z), bias[0]);
    direct_store4(row + 2u, col + 4u, with_sum(right[2], col + 4u, sums.z), bias[1]);
    direct_store4(row + 3u, col, with_sum(left[3], col, sums.w), bias[0]);
    direct_store4(row + 3u, col + 4u, with_sum(right[3], col + 4u, sums.w), bias[1]);
    let last = params.n - 1u;
    if ROW_SUMS && !SPLIT_K && col <= last && last < col + 8u {
        if row < params.m { row_sums[row] = sums.x; }
        if row + 1u < params.m { row_sums[row + 1u] = sums.y; }
        if row + 2u < params.m { row_sums[row + 2u] = sums.z; }
        if row + 3u < params.m { row_sums[row + 3u] = sums.w; }
    }
}

// bias[col .. col + 4] (N % 4 == 0; clamped past N, where nothing is stored), or zeros where
// the epilogue adds none here.
fn direct_bias(col: u32) -> vec4<f32> {
    if SPLIT_K || !HAS_BIAS || GRAD_MASK { return vec4<f32>(0.0); }
    return aux4[min(col, params.n - 4u) / 4u];
}

// `epilogue4` for `direct`, through the vec4 views of C and aux (N % 4 == 0 unless split).
fn direct_store4(row: u32, col: u32, v: vec4<f32>, bias: vec4<f32>) {
    if SPLIT_K {
        store_partial4(row, col, v);
        return;
    }
    if row >= params.m || col >= params.n { return; }
    let at = (base_c + row * params.n + col) / 4u;
    var x = v;
    if GRAD_MASK {
        x *= activate_grad4(aux4[at], ACT, params.slope);
    } else {
        if ACCUMULATE { x += c4[at]; }
        if HAS_BIAS { x += bias; }
        x = activate4(x, ACT, params.slope);
    }
    c4[at] = x;
}

// Columns col .. col + 4 of a row, with the row's sum in column N if that is among them (split
// partials only).
fn with_sum(v: vec4<f32>, col: u32, sum: f32) -> vec4<f32> {
    if !ROW_SUMS || !SPLIT_K { return v; }
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
