// The register-blocked tiling of C = A·B shared by the GEMM families (matmul.wgsl, and
// conv.wgsl's implicit GEMMs): this file owns the tiles, the staging and the inner loops; the
// family that includes it owns addressing, by defining
//   fn begin_workgroup(z: u32) -> vec2<u32>  sets up workgroup z (its batch or K split) and
//                                            returns its K range [x, y)
//   fn load_a(row: u32, k: u32) -> f32       op(A)[row, k], 0 past M (k is always in range)
//   fn load_b(k: u32, col: u32) -> f32       op(B)[k, col], 0 past N
//   fn load_a4(row: u32, k: u32, k_end: u32) -> vec4<f32>  four consecutive stored elements
//                                            of A from (row, k) on: rows row..+4 where A runs
//                                            along M, else k..+4; 0 past M and past k_end
//                                            (`gather_a4` below where the family has no
//                                            vector loads)
//   fn load_b4(k: u32, col: u32, k_end: u32) -> vec4<f32>  likewise for B: k..+4 where B runs
//                                            along K, else columns col..+4
//   fn store4(row: u32, col: u32, v: vec4<f32>)  the epilogue of C[row, col .. col + 4]
//   fn a_runs_along_m() -> bool              A's consecutive addresses run along M (else K)
//   fn b_runs_along_k() -> bool              B's consecutive addresses run along K (else N)
// The last two pick the staging order so that neighbouring threads read neighbouring
// addresses; they are override-constant expressions, so each variant compiles branch-free.
// Grid: (ceil(N / 64), ceil(M / TILE_ROWS), z) workgroups of 16 × TILE_ROWS / 4 threads for
// `tiled_64` (each thread a 4×4 block of C), (ceil(N / 128), ceil(M / 128), z) for `tiled_128`
// (8×8).
//
// Both kernels are software-pipelined: each thread loads its share of the next slice of K into
// registers before multiplying the current one, and stores it into the other half of a
// double-buffered workgroup tile afterwards, so the loads' latency hides behind the
// arithmetic and one barrier per slice suffices (the half written in slice s was last read in
// slice s − 1, which every thread finished before that slice's barrier). At small batches,
// where a product is a few workgroups walking a long K, that latency is most of the time.

fn gather_a4(row: u32, k: u32, k_end: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if a_runs_along_m() {
            if k < k_end { v[j] = load_a(row + j, k); }
        } else if k + j < k_end {
            v[j] = load_a(row, k + j);
        }
    }
    return v;
}

fn gather_b4(k: u32, col: u32, k_end: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if b_runs_along_k() {
            if k + j < k_end { v[j] = load_b(k + j, col); }
        } else if k < k_end {
            v[j] = load_b(k, col + j);
        }
    }
    return v;
}

// Both kernels' staged slices, double-buffered: A's two halves, then B's from B_AT on (each
// half K-major, as vec4s of four consecutive rows or columns). 16 KiB, WebGPU's default limit.
var<workgroup> staged: array<vec4<f32>, 1024>;
const B_AT: u32 = 512u;

// Where quad `e` of a slice lies: its first row (A) or column (B) within the tile, and its
// first k within the slice. A quad that runs along K (`along_k`) is one of `per_line` making a
// row or column of the slice; the others lie `stride` quads to a k, in the order stage_quad
// stores them, so loading and staging agree by construction.
fn quad_origin(e: u32, along_k: bool, per_line: u32, stride: u32) -> vec2<u32> {
    if along_k { return vec2<u32>(e / per_line, (e % per_line) * 4u); }
    return vec2<u32>((e % stride) * 4u, e / stride);
}

// Quad `e` of A's slice from (row0, k0) on, and of B's from (k0, col0) on.
fn load_quad_a(e: u32, row0: u32, k0: u32, k_end: u32, per_line: u32, stride: u32) -> vec4<f32> {
    let at = quad_origin(e, !a_runs_along_m(), per_line, stride);
    return load_a4(row0 + at.x, k0 + at.y, k_end);
}

fn load_quad_b(e: u32, col0: u32, k0: u32, k_end: u32, per_line: u32, stride: u32) -> vec4<f32> {
    let at = quad_origin(e, b_runs_along_k(), per_line, stride);
    return load_b4(k0 + at.y, col0 + at.x, k_end);
}

// Stores quad `e` of a slice at `at` (the half's start in `staged`), K-major: a quad that runs
// along the tile's rows or columns is stored as it is (quad e of the slice is vec4 e of the
// half); one that runs along K is spread over its four k.
fn stage_quad(at: u32, e: u32, along_k: bool, per_line: u32, stride: u32, v: vec4<f32>) {
    if !along_k {
        staged[at + e] = v;
        return;
    }
    let origin = quad_origin(e, true, per_line, stride);
    let line = origin.x;
    for (var j = 0u; j < 4u; j++) { staged[at + (origin.y + j) * stride + line / 4u][line % 4u] = v[j]; }
}

// 64×64 tile of C per workgroup (32×64 when TILE_ROWS is 32: twice the workgroups for the
// small products of a small batch), 16-deep slices of K: 2 halves × 2 × 16 × 64 floats = 16 KiB
// of workgroup memory, WebGPU's default limit, so every adapter runs it. Tiles are stored
// K-major as vec4s so one load fetches a thread's four rows (or columns) of the slice: A's
// half [kk][row / 4] (TILE_ROWS / 4 per kk), B's [kk][col / 4].
const TILE: u32 = 64u;
const DEPTH: u32 = 16u;
override TILE_ROWS: u32 = 64u;

// Each thread's share of one slice: TILE_ROWS × DEPTH / 4 quads of A over 4 · TILE_ROWS
// threads is one each; B's 256 quads are one or two.
struct Slice64 {
    a: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
}

fn load_slice_64(thread: u32, row0: u32, col0: u32, k0: u32, k_end: u32) -> Slice64 {
    var s: Slice64;
    s.a = load_quad_a(thread, row0, k0, k_end, 4u, TILE_ROWS / 4u);
    s.b0 = load_quad_b(thread, col0, k0, k_end, 4u, 16u);
    if TILE_ROWS == 32u { s.b1 = load_quad_b(thread + 128u, col0, k0, k_end, 4u, 16u); }
    return s;
}

// Into the half of the tiles that starts at `base`.
fn stage_slice_64(thread: u32, base: u32, s: Slice64) {
    stage_quad(base, thread, !a_runs_along_m(), 4u, TILE_ROWS / 4u, s.a);
    stage_quad(B_AT + base, thread, b_runs_along_k(), 4u, 16u, s.b0);
    if TILE_ROWS == 32u { stage_quad(B_AT + base, thread + 128u, b_runs_along_k(), 4u, 16u, s.b1); }
}

@compute @workgroup_size(16, TILE_ROWS / 4u)
fn tiled_64(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let k_range = begin_workgroup(wid.z);
    let quads = TILE_ROWS / 4u;
    let thread = lid.y * 16u + lid.x;
    let row0 = wid.y * TILE_ROWS;
    let col0 = wid.x * TILE;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    // The trip counts are the same for every thread (lavapipe gave wrong results at long K
    // when each thread's loop started at its own index).
    let slices = (k_range.y - k_range.x + DEPTH - 1u) / DEPTH;
    var next = load_slice_64(thread, row0, col0, k_range.x, k_range.y);
    stage_slice_64(thread, 0u, next);
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let base = (s % 2u) * 256u;
        let more = s + 1u < slices;
        if more { next = load_slice_64(thread, row0, col0, k_range.x + (s + 1u) * DEPTH, k_range.y); }
        // Written as fma: GPU compilers fuse `acc += a * b` themselves, CPU drivers do not
        // (2x the instructions on lavapipe).
        for (var kk = 0u; kk < DEPTH; kk++) {
            let av = staged[base + kk * quads + lid.y];
            let bv = staged[B_AT + base + kk * 16u + lid.x];
            acc0 = fma(vec4(av.x), bv, acc0);
            acc1 = fma(vec4(av.y), bv, acc1);
            acc2 = fma(vec4(av.z), bv, acc2);
            acc3 = fma(vec4(av.w), bv, acc3);
        }
        if more { stage_slice_64(thread, 256u - base, next); }
        workgroupBarrier();
    }

    let row = row0 + lid.y * 4u;
    let col = col0 + lid.x * 4u;
    store4(row, col, acc0);
    store4(row + 1u, col, acc1);
    store4(row + 2u, col, acc2);
    store4(row + 3u, col, acc3);
}

// The large-tile variant: 128×128 of C per workgroup, 8-deep slices of K (2 halves × 2 × 8 ×
// 128 floats = 16 KiB of workgroup memory, WebGPU's default limit exactly), each of the 256
// threads an 8×8 block held in 16 named vec4 accumulators (arrays of accumulators spill on
// some drivers; named registers do not). Per step of K a thread loads 4 vec4s from workgroup
// memory for 64 multiply-adds, four times the 64×64 kernel's ratio. A thread's rows are
// ty·4..+4 and 64 + ty·4..+4, its columns likewise, so each half-tile is read contiguously.
// Each thread stages one quad of A and one of B per slice.
const BIG: u32 = 128u;
const BIG_DEPTH: u32 = 8u;

// Into the half of the tiles that starts at `base` (each half [kk][row or col / 4], 8 × 32).
fn stage_128(thread: u32, base: u32, a: vec4<f32>, b: vec4<f32>) {
    stage_quad(base, thread, !a_runs_along_m(), 2u, 32u, a);
    stage_quad(B_AT + base, thread, b_runs_along_k(), 2u, 32u, b);
}

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

    let slices = (k_range.y - k_range.x + BIG_DEPTH - 1u) / BIG_DEPTH;
    var next_a = load_quad_a(thread, row0, k_range.x, k_range.y, 2u, 32u);
    var next_b = load_quad_b(thread, col0, k_range.x, k_range.y, 2u, 32u);
    stage_128(thread, 0u, next_a, next_b);
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let base = (s % 2u) * 256u;
        let more = s + 1u < slices;
        if more {
            let k0 = k_range.x + (s + 1u) * BIG_DEPTH;
            next_a = load_quad_a(thread, row0, k0, k_range.y, 2u, 32u);
            next_b = load_quad_b(thread, col0, k0, k_range.y, 2u, 32u);
        }
        for (var kk = 0u; kk < BIG_DEPTH; kk++) {
            let a0 = staged[base + kk * 32u + lid.y];
            let a1 = staged[base + kk * 32u + 16u + lid.y];
            let b0 = staged[B_AT + base + kk * 32u + lid.x];
            let b1 = staged[B_AT + base + kk * 32u + 16u + lid.x];
            c00 = fma(vec4(a0.x), b0, c00); c01 = fma(vec4(a0.x), b1, c01);
            c10 = fma(vec4(a0.y), b0, c10); c11 = fma(vec4(a0.y), b1, c11);
            c20 = fma(vec4(a0.z), b0, c20); c21 = fma(vec4(a0.z), b1, c21);
            c30 = fma(vec4(a0.w), b0, c30); c31 = fma(vec4(a0.w), b1, c31);
            c40 = fma(vec4(a1.x), b0, c40); c41 = fma(vec4(a1.x), b1, c41);
            c50 = fma(vec4(a1.y), b0, c50); c51 = fma(vec4(a1.y), b1, c51);
            c60 = fma(vec4(a1.z), b0, c60); c61 = fma(vec4(a1.z), b1, c61);
            c70 = fma(vec4(a1.w), b0, c70); c71 = fma(vec4(a1.w), b1, c71);
        }
        if more { stage_128(thread, 256u - base, next_a, next_b); }
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
