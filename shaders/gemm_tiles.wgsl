// The register-blocked tiling of C = A·B shared by the GEMM families (matmul.wgsl, and
// conv.wgsl's implicit GEMMs): this file owns the tiles, the staging and the inner loops; the
// family that includes it owns addressing, by defining
//   fn begin_workgroup(z: u32) -> vec2<u32>  sets up workgroup z (its batch or K split) and
//                                            returns its K range [x, y)
//   fn load_a(row: u32, k: u32) -> f32       op(A)[row, k], 0 past M (k is always in range)
//   fn load_b(k: u32, col: u32) -> f32       op(B)[k, col], 0 past N
//   fn store4(row: u32, col: u32, v: vec4<f32>)  the epilogue of C[row, col .. col + 4]
//   fn a_runs_along_m() -> bool              A's consecutive addresses run along M (else K)
//   fn b_runs_along_k() -> bool              B's consecutive addresses run along K (else N)
// The last two pick the staging order so that neighbouring threads read neighbouring
// addresses; they are override-constant expressions, so each variant compiles branch-free.
// Grid: (ceil(N / 64), ceil(M / TILE_ROWS), z) workgroups of 16 × TILE_ROWS / 4 threads for
// `tiled_64` (each thread a 4×4 block of C), (ceil(N / 128), ceil(M / 128), z) for `tiled_128`
// (8×8).

fn staged_a(row: u32, k: u32, k_end: u32) -> f32 {
    if k >= k_end { return 0.0; }
    return load_a(row, k);
}

fn staged_b(k: u32, col: u32, k_end: u32) -> f32 {
    if k >= k_end { return 0.0; }
    return load_b(k, col);
}

// 64×64 tile of C per workgroup (32×64 when TILE_ROWS is 32: twice the workgroups for the
// small products of a small batch), 16-deep slices of K: at most 2 × 16 × 64 floats = 8 KiB of
// workgroup memory, inside WebGPU's default 16 KiB, so every adapter runs it. Tiles are stored
// K-major as vec4s so one load fetches a thread's four rows (or columns) of the slice.
const TILE: u32 = 64u;
const DEPTH: u32 = 16u;
override TILE_ROWS: u32 = 64u;
var<workgroup> tile_a: array<vec4<f32>, 256>; // [kk][row / 4], TILE_ROWS / 4 used per kk
var<workgroup> tile_b: array<vec4<f32>, 256>; // [kk][col / 4]

@compute @workgroup_size(16, TILE_ROWS / 4u)
fn tiled_64(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let k_range = begin_workgroup(wid.z);
    let threads = 4u * TILE_ROWS;
    let quads = TILE_ROWS / 4u;
    let thread = lid.y * 16u + lid.x;
    let row0 = wid.y * TILE_ROWS;
    let col0 = wid.x * TILE;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = k_range.x; k0 < k_range.y; k0 += DEPTH) {
        // Each thread stages DEPTH · TILE_ROWS / threads = 4 elements of A's tile and
        // DEPTH · TILE / threads (4 or 8) of B's. Consecutive threads read consecutive
        // addresses of the stored layout, so global loads coalesce. The trip counts are the
        // same for every thread (lavapipe gave wrong results at long K when each thread's
        // loop started at its own index).
        for (var i = 0u; i < 4u; i++) {
            let e = thread + i * threads;
            var r: u32; var kk: u32;
            if a_runs_along_m() { kk = e / TILE_ROWS; r = e % TILE_ROWS; } else { r = e / DEPTH; kk = e % DEPTH; }
            tile_a[kk * quads + r / 4u][r % 4u] = staged_a(row0 + r, k0 + kk, k_range.y);
        }
        for (var i = 0u; i < DEPTH * TILE / threads; i++) {
            let e = thread + i * threads;
            var col: u32; var kb: u32;
            if b_runs_along_k() { col = e / DEPTH; kb = e % DEPTH; } else { kb = e / TILE; col = e % TILE; }
            tile_b[kb * 16u + col / 4u][col % 4u] = staged_b(k0 + kb, col0 + col, k_range.y);
        }
        workgroupBarrier();
        // Written as fma: GPU compilers fuse `acc += a * b` themselves, CPU drivers do not
        // (2x the instructions on lavapipe).
        for (var kk = 0u; kk < DEPTH; kk++) {
            let av = tile_a[kk * quads + lid.y];
            let bv = tile_b[kk * 16u + lid.x];
            acc0 = fma(vec4(av.x), bv, acc0);
            acc1 = fma(vec4(av.y), bv, acc1);
            acc2 = fma(vec4(av.z), bv, acc2);
            acc3 = fma(vec4(av.w), bv, acc3);
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
fn tiled_128(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let k_range = begin_workgroup(wid.z);
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

    for (var k0 = k_range.x; k0 < k_range.y; k0 += BIG_DEPTH) {
        for (var i = 0u; i < 8u; i++) {
            let e = thread + i * 256u;
            var r: u32; var kk: u32;
            if a_runs_along_m() { kk = e / BIG; r = e % BIG; } else { r = e / BIG_DEPTH; kk = e % BIG_DEPTH; }
            big_a[kk * 32u + r / 4u][r % 4u] = staged_a(row0 + r, k0 + kk, k_range.y);
            var col: u32; var kb: u32;
            if b_runs_along_k() { col = e / BIG_DEPTH; kb = e % BIG_DEPTH; } else { kb = e / BIG; col = e % BIG; }
            big_b[kb * 32u + col / 4u][col % 4u] = staged_b(k0 + kb, col0 + col, k_range.y);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BIG_DEPTH; kk++) {
            let a0 = big_a[kk * 32u + lid.y];
            let a1 = big_a[kk * 32u + 16u + lid.y];
            let b0 = big_b[kk * 32u + lid.x];
            let b1 = big_b[kk * 32u + 16u + lid.x];
            c00 = fma(vec4(a0.x), b0, c00); c01 = fma(vec4(a0.x), b1, c01);
            c10 = fma(vec4(a0.y), b0, c10); c11 = fma(vec4(a0.y), b1, c11);
            c20 = fma(vec4(a0.z), b0, c20); c21 = fma(vec4(a0.z), b1, c21);
            c30 = fma(vec4(a0.w), b0, c30); c31 = fma(vec4(a0.w), b1, c31);
            c40 = fma(vec4(a1.x), b0, c40); c41 = fma(vec4(a1.x), b1, c41);
            c50 = fma(vec4(a1.y), b0, c50); c51 = fma(vec4(a1.y), b1, c51);
            c60 = fma(vec4(a1.z), b0, c60); c61 = fma(vec4(a1.z), b1, c61);
            c70 = fma(vec4(a1.w), b0, c70); c71 = fma(vec4(a1.w), b1, c71);
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
