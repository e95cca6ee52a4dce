// C = epilogue(op(A) · op(B)), f32.
//   M, N, K: C is M×N, the product runs over K.
//   op(A) is M×K: A stored row-major as M×K, or as K×M when TRANS_A.
//   op(B) is K×N: B stored row-major as K×N, or as N×K when TRANS_B.
// Epilogue, in order: + C (ACCUMULATE), + bias[n] (HAS_BIAS), then activation ACT; or, with
// GRAD_MASK, the product is multiplied by ACT'(aux[m, n]) (a fused activation backward).
//
// Bindings: 0 params (uniform), 1 a (read, M·K), 2 b (read, K·N), 3 bias (read, N; or aux,
//           M·N), 4 c (read_write, M·N).
// Grid: (ceil(N / 64), ceil(M / 64)) workgroups of 16×16 threads; each thread owns a 4×4
// block of C. The three transposes of a Linear layer's forward and backward are override
// constants, so each variant compiles to a branch-free inner loop.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    slope: f32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
override GRAD_MASK: bool = false;
override ACT: u32 = 0u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// 64×64 tile of C per workgroup, 16-deep slices of K: 2 × 16 × 64 floats = 8 KiB of workgroup
// memory, inside WebGPU's default 16 KiB, so every adapter runs it. Tiles are stored K-major as
// vec4s so one load fetches a thread's four rows (or columns) of the slice.
const TILE: u32 = 64u;
const DEPTH: u32 = 16u;
var<workgroup> tile_a: array<vec4<f32>, 256>; // [kk][row / 4]
var<workgroup> tile_b: array<vec4<f32>, 256>; // [kk][col / 4]

fn load_a(row: u32, kk: u32) -> f32 {
    if row >= params.m || kk >= params.k { return 0.0; }
    if TRANS_A { return a[kk * params.m + row]; }
    return a[row * params.k + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    if kk >= params.k || col >= params.n { return 0.0; }
    if TRANS_B { return b[col * params.k + kk]; }
    return b[kk * params.n + col];
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
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

    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y * 4u + i;
        if row >= params.m { break; }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x * 4u + j;
            if col >= params.n { break; }
            let index = row * params.n + col;
            var v = accs[i][j];
            if GRAD_MASK {
                v *= activate_grad(bias[index], ACT, params.slope);
            } else {
                if ACCUMULATE { v += c[index]; }
                if HAS_BIAS { v += bias[col]; }
                v = activate(v, ACT, params.slope);
            }
            c[index] = v;
        }
    }
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
