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
//           M·N), 4 c (read_write, M·N), 5 row_sums (read_write, M; c again when unused).
// Batched: workgroup z is the batch index; A, B and C (and aux under GRAD_MASK) start
// stride_a, stride_b, stride_c elements further per batch (bias and row_sums are not batched).
// Grid: (ceil(N' / 64), ceil(M / 64), batch) workgroups of 16×16 threads for `matmul` (each thread a
// 4×4 block of C), (ceil(N' / 128), ceil(M / 128)) for `matmul_128` (8×8 per thread), with
// N' = N + 1 under ROW_SUMS. The transposes are override constants, so each variant compiles
// to a branch-free inner loop.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    slope: f32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    _pad: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override GRAD_MASK: bool = false;
override ROW_SUMS: bool = false;
override ACT: u32 = 0u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_sums: array<f32>;

// This workgroup's matrices inside the batched buffers.
var<private> base_a: u32;
var<private> base_b: u32;
var<private> base_c: u32;

fn set_batch(z: u32) {
    base_a = z * params.stride_a;
    base_b = z * params.stride_b;
    base_c = z * params.stride_c;
}

// 64×64 tile of C per workgroup, 16-deep slices of K: 2 × 16 × 64 floats = 8 KiB of workgroup
// memory, inside WebGPU's default 16 KiB, so every adapter runs it. Tiles are stored K-major as
// vec4s so one load fetches a thread's four rows (or columns) of the slice.
const TILE: u32 = 64u;
const DEPTH: u32 = 16u;
var<workgroup> tile_a: array<vec4<f32>, 256>; // [kk][row / 4]
var<workgroup> tile_b: array<vec4<f32>, 256>; // [kk][col / 4]

fn load_a(row: u32, kk: u32) -> f32 {
    if row >= params.m || kk >= params.k { return 0.0; }
    if TRANS_A { return a[base_a + kk * params.m + row]; }
    return a[base_a + row * params.k + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    if ROW_SUMS && col == params.n { return select(0.0, 1.0, kk < params.k); }
    if kk >= params.k || col >= params.n { return 0.0; }
    if TRANS_B { return b[base_b + col * params.k + kk]; }
    return b[base_b + kk * params.n + col];
}

// Applies the epilogue to four consecutive elements of row `row` from column `col` on and
// stores those inside C.
fn store4(row: u32, col: u32, v: vec4<f32>) {
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

@compute @workgroup_size(16, 16)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    set_batch(wid.z);
    let thread = lid.y * 16u + lid.x;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < params.k; k0 += DEPTH) {
        // Each thread stages 4 of the 1024 elements of each tile. Consecutive threads read
        // consecutive addresses of the stored layout, so global loads coalesce.
        for (var i = 0u; i < 4u; i++) {
            let e = thread + i * 256u;
            var r: u32; var kk: u32;
            if TRANS_A { kk = e / TILE; r = e % TILE; } else { r = e / DEPTH; kk = e % DEPTH; }
            tile_a[kk * 16u + r / 4u][r % 4u] = load_a(row0 + r, k0 + kk);
            var col: u32; var kb: u32;
            if TRANS_B { col = e / DEPTH; kb = e % DEPTH; } else { kb = e / TILE; col = e % TILE; }
            tile_b[kb * 16u + col / 4u][col % 4u] = load_b(k0 + kb, col0 + col);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk++) {
            let av = tile_a[kk * 16u + lid.y];
            let bv = tile_b[kk * 16u + lid.x];
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }

    let row = row0 + lid.y * 4u;
    let col = col0 + lid.x * 4u;
    store4(row, col, acc0);
    store4(row + 1u, col, acc1);
    store4(row + 2u, col, acc2);
    store4(row + 3u, col, acc3);
}

// The large-tile variant: 128×128 of C per workgroup, 16-deep slices of K (2 × 16 × 128 floats
// = 16 KiB of workgroup memory, WebGPU's default limit exactly), each of the 256
// threads an 8×8 block held in 16 named vec4 accumulators (arrays of accumulators spill on
// some drivers; named registers do not). Per step of K a thread loads 4 vec4s from workgroup
// memory for 64 multiply-adds, four times the 64×64 kernel's ratio. A thread's rows are
// ty·4..+4 and 64 + ty·4..+4, its columns likewise, so each half-tile is read contiguously.
const BIG: u32 = 128u;
const BIG_DEPTH: u32 = 16u;
var<workgroup> big_a: array<vec4<f32>, 512>; // [kk][row / 4], 16 × 32
var<workgroup> big_b: array<vec4<f32>, 512>; // [kk][col / 4], 16 × 32

@compute @workgroup_size(16, 16)
fn matmul_128(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    set_batch(wid.z);
    let thread = lid.y * 16u + lid.x;
    let row0 = wid.y * BIG;
    let col0 = wid.x * BIG;
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < params.k; k0 += BIG_DEPTH) {
        for (var i = 0u; i < 8u; i++) {
            let e = thread + i * 256u;
            var r: u32; var kk: u32;
            if TRANS_A { kk = e / BIG; r = e % BIG; } else { r = e / BIG_DEPTH; kk = e % BIG_DEPTH; }
            big_a[kk * 32u + r / 4u][r % 4u] = load_a(row0 + r, k0 + kk);
            var col: u32; var kb: u32;
            if TRANS_B { col = e / BIG_DEPTH; kb = e % BIG_DEPTH; } else { kb = e / BIG; col = e % BIG; }
            big_b[kb * 32u + col / 4u][col % 4u] = load_b(k0 + kb, col0 + col);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BIG_DEPTH; kk++) {
            let a0 = big_a[kk * 32u + lid.y];
            let a1 = big_a[kk * 32u + 16u + lid.y];
            let b0 = big_b[kk * 32u + lid.x];
            let b1 = big_b[kk * 32u + 16u + lid.x];
            c00 += a0.x * b0; c01 += a0.x * b1;
            c10 += a0.y * b0; c11 += a0.y * b1;
            c20 += a0.z * b0; c21 += a0.z * b1;
            c30 += a0.w * b0; c31 += a0.w * b1;
            c40 += a1.x * b0; c41 += a1.x * b1;
            c50 += a1.y * b0; c51 += a1.y * b1;
            c60 += a1.z * b0; c61 += a1.z * b1;
            c70 += a1.w * b0; c71 += a1.w * b1;
        }
        workgroupBarrier();
    }

    let r0 = row0 + lid.y * 4u;
    let r1 = row0 + 64u + lid.y * 4u;
    let q0 = col0 + lid.x * 4u;
    let q1 = col0 + 64u + lid.x * 4u;
    store4(r0, q0, c00); store4(r0, q1, c01);
    store4(r0 + 1u, q0, c10); store4(r0 + 1u, q1, c11);
    store4(r0 + 2u, q0, c20); store4(r0 + 2u, q1, c21);
    store4(r0 + 3u, q0, c30); store4(r0 + 3u, q1, c31);
    store4(r1, q0, c40); store4(r1, q1, c41);
    store4(r1 + 1u, q0, c50); store4(r1 + 1u, q1, c51);
    store4(r1 + 2u, q0, c60); store4(r1 + 2u, q1, c61);
    store4(r1 + 3u, q0, c70); store4(r1 + 3u, q1, c71);
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
