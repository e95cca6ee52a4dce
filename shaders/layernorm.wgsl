// LayerNorm over the last axis of a rows×cols matrix, as torch.nn.LayerNorm(cols) (biased
// variance, eps inside the square root).
// Binding table, one access mode per binding:
//   | binding | forward        | backward_input | backward_params |
//   | 0       | params         | params         | params          |
//   | 1       | x              | x              | x               |
//   | 2       | gamma (cols)   | gamma          | (x)             |
//   | 3       | beta (cols)    | (x)            | (x)             |
//   | 4       | (x)            | dy             | dy              |
//   | 5 rw    | y              | dx             | dgamma (cols)   |
//   | 6 rw    | saved (2·rows) | saved          | saved           |
//   | 7 rw    | (y)            | (dx)           | dbeta (cols)    |
// saved[2r] = mean of row r, saved[2r + 1] = 1/√(var + ε).
// Grid: grid_1d(rows, 64) for the row kernels, grid_1d(cols, 64) for backward_params: one
// thread per row or column, summing in index order, so every run gives the same bits.

struct LayerNormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: LayerNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> saved: array<f32>;
@group(0) @binding(7) var<storage, read_write> dbeta: array<f32>;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// y = (x − μ) / √(σ² + ε) · γ + β; the variance from a second pass over (x − μ)², which
// keeps rows with a large mean exact where E[x²] − μ² would cancel.
@compute @workgroup_size(64)
fn layernorm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = index(gid, groups);
    if row >= params.rows { return; }
    let base = row * params.cols;
    let n = f32(params.cols);
    var sum = 0.0;
    for (var j = 0u; j < params.cols; j++) { sum += x[base + j]; }
    let mean = sum / n;
    var sq = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        let d = x[base + j] - mean;
        sq += d * d;
    }
    let rstd = 1.0 / sqrt(sq / n + params.eps);
    saved[2u * row] = mean;
    saved[2u * row + 1u] = rstd;
    for (var j = 0u; j < params.cols; j++) {
        out[base + j] = (x[base + j] - mean) * rstd * gamma[j] + beta[j];
    }
}

// dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)) with g = dy ⊙ γ and x̂ = (x − μ) · rstd
@compute @workgroup_size(64)
fn layernorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = index(gid, groups);
    if row >= params.rows { return; }
    let base = row * params.cols;
    let mean = saved[2u * row];
    let rstd = saved[2u * row + 1u];
    var g_sum = 0.0;
    var gx_sum = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        let g = dy[base + j] * gamma[j];
        g_sum += g;
        gx_sum += g * (x[base + j] - mean) * rstd;
    }
    let n = f32(params.cols);
    let g_mean = g_sum / n;
    let gx_mean = gx_sum / n;
    for (var j = 0u; j < params.cols; j++) {
        let xhat = (x[base + j] - mean) * rstd;
        out[base + j] = rstd * (dy[base + j] * gamma[j] - g_mean - xhat * gx_mean);
    }
}

// dγ[c] = Σ_r dy[r, c] · x̂[r, c], dβ[c] = Σ_r dy[r, c]
@compute @workgroup_size(64)
fn layernorm_backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let c = index(gid, groups);
    if c >= params.cols { return; }
    var dg = 0.0;
    var db = 0.0;
    for (var r = 0u; r < params.rows; r++) {
        let i = r * params.cols + c;
        let xhat = (x[i] - saved[2u * r]) * saved[2u * r + 1u];
        dg += dy[i] * xhat;
        db += dy[i];
    }
    out[c] = dg;
    dbeta[c] = db;
}
