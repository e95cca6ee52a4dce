// Softmax over the last axis of a rows×cols matrix, optionally causal.
//   causal_t: 0 for a plain softmax; T for scores [.., T, T], where row r is query r mod T and
//   keys j > r mod T are masked (probability exactly 0, as PyTorch's -inf mask gives).
// Bindings: 0 params (uniform), 1 x (read), 2 y (read; x again when unused), 3 out (read_write).
// Grid: grid_1d(rows, 64), one thread per row: each row is read in order, so results do not
// depend on scheduling. (A row per workgroup with a tree would be faster for long rows; the
// fused attention kernel replaces this path for long blocks.)

struct SoftmaxParams {
    rows: u32,
    cols: u32,
    causal_t: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: SoftmaxParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn row_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// Keys this row may attend to.
fn visible(row: u32) -> u32 {
    if params.causal_t == 0u { return params.cols; }
    return row % params.causal_t + 1u;
}

// out[r, j] = exp(x[r, j] − max_r) / Σ_k exp(x[r, k] − max_r) over visible keys, 0 beyond
@compute @workgroup_size(64)
fn softmax_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = row_index(gid, groups);
    if row >= params.rows { return; }
    let base = row * params.cols;
    let n = visible(row);
    var m = x[base];
    for (var j = 1u; j < n; j++) { m = max(m, x[base + j]); }
    var sum = 0.0;
    for (var j = 0u; j < n; j++) { sum += exp(x[base + j] - m); }
    let inv = 1.0 / sum;
    for (var j = 0u; j < params.cols; j++) {
        out[base + j] = select(0.0, exp(x[base + j] - m) * inv, j < n);
    }
}

// dx[r, j] = y[r, j] · (dy[r, j] − Σ_k y[r, k] dy[r, k]), with x = y (the softmax output)
// and y = dy bound; masked keys have y = 0 and get 0.
@compute @workgroup_size(64)
fn softmax_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = row_index(gid, groups);
    if row >= params.rows { return; }
    let base = row * params.cols;
    var dot = 0.0;
    for (var j = 0u; j < params.cols; j++) { dot += x[base + j] * y[base + j]; }
    for (var j = 0u; j < params.cols; j++) {
        out[base + j] = x[base + j] * (y[base + j] - dot);
    }
}
