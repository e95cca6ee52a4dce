// Batches gathered on the GPU from a device-resident dataset.
//   out[r, c] = scale · src[indices[offset + r], c] for r < rows, c < cols.
// Bindings: 0 params (uniform), 1 src (read: f32 bits, or bytes packed four to a word),
//           2 indices (read, u32), 3 out (read_write, rows·cols).
// Grid: grid_1d(rows·cols, 256).

struct GatherParams {
    rows: u32,
    cols: u32,
    offset: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> params: GatherParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn source_index(gid: vec3<u32>, groups: vec3<u32>) -> vec2<u32> {
    let i = gid.y * groups.x * 256u + gid.x;
    let row = indices[params.offset + i / params.cols];
    return vec2<u32>(i, row * params.cols + i % params.cols);
}

// Rows of an f32 matrix.
@compute @workgroup_size(256)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    if gid.y * groups.x * 256u + gid.x >= params.rows * params.cols { return; }
    let at = source_index(gid, groups);
    out[at.x] = params.scale * bitcast<f32>(src[at.y]);
}

// Rows of a u8 matrix (images), converted to f32 on the way: 4× less device memory.
@compute @workgroup_size(256)
fn gather_rows_u8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    if gid.y * groups.x * 256u + gid.x >= params.rows * params.cols { return; }
    let at = source_index(gid, groups);
    let byte = (src[at.y / 4u] >> (8u * (at.y % 4u))) & 0xffu;
    out[at.x] = params.scale * f32(byte);
}
