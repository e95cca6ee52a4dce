// f32 → f16, the cooperative-matrix matmul's operands: op(x), a [rows, cols] matrix stored
// row-major as [rows, cols] (or as [cols, rows] when TRANSPOSED), becomes a row-major f16
// [padded_rows, padded_cols] matrix with zeros in the padding, two halves per u32 through
// pack2x16float (so this family needs no f16 support of its own). Values beyond f16's range
// become ±inf, and WGSL lets the driver round either way to a neighbouring f16.
// Bindings: 0 params (uniform), 1 x (read, f32), 2 packed (read_write, padded_rows ·
//           padded_cols / 2 u32s).
// Grid: grid_1d(padded_rows · padded_cols / 2, 256), one u32 per thread.

struct HalfParams {
    rows: u32,
    cols: u32,
    padded_rows: u32,
    padded_cols: u32,
}

override TRANSPOSED: bool = false;

@group(0) @binding(0) var<uniform> params: HalfParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;

fn element(row: u32, col: u32) -> f32 {
    if row >= params.rows || col >= params.cols {
        return 0.0;
    }
    if TRANSPOSED {
        return x[col * params.rows + row];
    }
    return x[row * params.cols + col];
}

@compute @workgroup_size(256)
fn to_f16_padded(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    let pairs = params.padded_cols / 2u;
    if i >= params.padded_rows * pairs {
        return;
    }
    let row = i / pairs;
    let col = (i % pairs) * 2u;
    packed[i] = pack2x16float(vec2<f32>(element(row, col), element(row, col + 1u)));
}
