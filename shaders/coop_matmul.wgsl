// C = A · B on cooperative matrices (tensor cores): f16 operands, f32 accumulation, one
// subgroup multiplying 16×16×16 tiles at a time. Every matrix is row-major and padded (see
// half.wgsl, which makes the operands): A is [m, k], B is [k, n], C is [m, n], with m and n
// multiples of 64 and k of 16, so no load or store needs a mask (cooperative loads cannot
// take one).
// A workgroup is one subgroup and owns a 64×64 block of C: 16 accumulators, and per 16-deep
// slice 4 tiles of A and 4 of B loaded straight from storage, so every loaded tile feeds 4
// multiplies. Staging 128×32 slices in workgroup memory for 4 subgroups to share ran at half
// the speed on an H100 (bench/results/h100-coop-2026-11-27.md): the caches already share
// rows and columns between neighbouring workgroups.
// Bindings: 0 params (uniform), 1 a (read, f16), 2 b (read, f16), 3 c (read_write, f32).
// Grid: (n / 64, m / 64, 1), walked in bands of 8 tile rows (see `block_origin`).

enable f16;
enable wgpu_cooperative_matrix;

struct CoopParams {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

// The adapter's subgroup size: a workgroup is whole subgroups.
override SUBGROUP_SIZE: u32 = 32u;

@group(0) @binding(0) var<uniform> params: CoopParams;
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> b: array<f16>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// The (column, row) of the tile this workgroup computes: workgroup ids run down the columns
// of bands 8 tiles high, so the workgroups resident at once share A's rows and B's columns in
// the L2 (row by row, a wave at n = 8192 would read all of B for two rows of A).
fn block_origin(group: vec3<u32>, groups: vec3<u32>) -> vec2<u32> {
    let id = group.y * groups.x + group.x;
    let first_row = (id / (8u * groups.x)) * 8u;
    let band_rows = min(groups.y - first_row, 8u);
    let in_band = id % (8u * groups.x);
    return vec2<u32>(in_band / band_rows, first_row + in_band % band_rows);
}

@compute @workgroup_size(SUBGROUP_SIZE)
fn coop_64(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let origin = block_origin(group, groups);
    let row = origin.y * 64u;
    let col = origin.x * 64u;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();
    var c20 = coop_mat16x16<f32, C>();
    var c21 = coop_mat16x16<f32, C>();
    var c22 = coop_mat16x16<f32, C>();
    var c23 = coop_mat16x16<f32, C>();
    var c30 = coop_mat16x16<f32, C>();
    var c31 = coop_mat16x16<f32, C>();
    var c32 = coop_mat16x16<f32, C>();
    var c33 = coop_mat16x16<f32, C>();
    for (var p = 0u; p < params.k; p += 16u) {
        let a0 = coopLoadT<coop_mat16x16<f16, A>>(&a[(row + 0u) * params.k + p], params.k);
        let a1 = coopLoadT<coop_mat16x16<f16, A>>(&a[(row + 16u) * params.k + p], params.k);
        let a2 = coopLoadT<coop_mat16x16<f16, A>>(&a[(row + 32u) * params.k + p], params.k);
        let a3 = coopLoadT<coop_mat16x16<f16, A>>(&a[(row + 48u) * params.k + p], params.k);
        let b0 = coopLoadT<coop_mat16x16<f16, B>>(&b[p * params.n + col + 0u], params.n);
        let b1 = coopLoadT<coop_mat16x16<f16, B>>(&b[p * params.n + col + 16u], params.n);
        let b2 = coopLoadT<coop_mat16x16<f16, B>>(&b[p * params.n + col + 32u], params.n);
        let b3 = coopLoadT<coop_mat16x16<f16, B>>(&b[p * params.n + col + 48u], params.n);
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c02 = coopMultiplyAdd(a0, b2, c02);
        c03 = coopMultiplyAdd(a0, b3, c03);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
        c12 = coopMultiplyAdd(a1, b2, c12);
        c13 = coopMultiplyAdd(a1, b3, c13);
        c20 = coopMultiplyAdd(a2, b0, c20);
        c21 = coopMultiplyAdd(a2, b1, c21);
        c22 = coopMultiplyAdd(a2, b2, c22);
        c23 = coopMultiplyAdd(a2, b3, c23);
        c30 = coopMultiplyAdd(a3, b0, c30);
        c31 = coopMultiplyAdd(a3, b1, c31);
        c32 = coopMultiplyAdd(a3, b2, c32);
        c33 = coopMultiplyAdd(a3, b3, c33);
    }
    // Every operand of a cooperative store is a `let` first: naga 30 does not emit
    // expressions written inside the store's arguments (its SPIR-V writer panics).
    let n = params.n;
    let at00 = (row + 0u) * n + col + 0u;
    let at01 = (row + 0u) * n + col + 16u;
    let at02 = (row + 0u) * n + col + 32u;
    let at03 = (row + 0u) * n + col + 48u;
    let at10 = (row + 16u) * n + col + 0u;
    let at11 = (row + 16u) * n + col + 16u;
    let at12 = (row + 16u) * n + col + 32u;
    let at13 = (row + 16u) * n + col + 48u;
    let at20 = (row + 32u) * n + col + 0u;
    let at21 = (row + 32u) * n + col + 16u;
    let at22 = (row + 32u) * n + col + 32u;
    let at23 = (row + 32u) * n + col + 48u;
    let at30 = (row + 48u) * n + col + 0u;
    let at31 = (row + 48u) * n + col + 16u;
    let at32 = (row + 48u) * n + col + 32u;
    let at33 = (row + 48u) * n + col + 48u;
    coopStoreT(c00, &c[at00], n);
    coopStoreT(c01, &c[at01], n);
    coopStoreT(c02, &c[at02], n);
    coopStoreT(c03, &c[at03], n);
    coopStoreT(c10, &c[at10], n);
    coopStoreT(c11, &c[at11], n);
    coopStoreT(c12, &c[at12], n);
    coopStoreT(c13, &c[at13], n);
    coopStoreT(c20, &c[at20], n);
    coopStoreT(c21, &c[at21], n);
    coopStoreT(c22, &c[at22], n);
    coopStoreT(c23, &c[at23], n);
    coopStoreT(c30, &c[at30], n);
    coopStoreT(c31, &c[at31], n);
    coopStoreT(c32, &c[at32], n);
    coopStoreT(c33, &c[at33], n);
}
