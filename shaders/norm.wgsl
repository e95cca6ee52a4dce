// Batch normalisation of x [rows, cols, inner] over rows and inner, one set of statistics per
// column (channel): torch.nn.BatchNorm1d ([B, C] with inner = 1, or [B, C, L]) and BatchNorm2d
// ([B, C, H·W]). A channel's N = rows·inner elements are visited as t = r·inner + s.
// The three entry points share one binding table, each binding with one access mode:
//   | binding | forward (training)  | backward          | eval                 |
//   | 0       | params              | params            | params               |
//   | 1       | x                   | x                 | x                    |
//   | 2       | gamma (cols)        | gamma             | gamma                |
//   | 3       | beta (cols)         | saved (2·cols)    | beta                 |
//   | 4       | (unused)            | dy                | running (2·cols)     |
//   | 5 rw    | y                   | dx                | y                    |
//   | 6 rw    | saved (2·cols)      | dgamma (cols)     | (unused)             |
//   | 7 rw    | running (2·cols)    | dbeta (cols)      | (unused)             |
// saved = [batch mean | 1/√(var + ε)], running = [running_mean | running_var].
// Grid: one workgroup of 256 per channel (spread over x and y); eval: grid_1d(len(x), 256).

struct NormParams {
    rows: u32,
    cols: u32,
    inner: u32,
    eps: f32,
    momentum: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Element t of channel c's N = rows·inner.
fn at(t: u32, c: u32) -> u32 {
    return ((t / params.inner) * params.cols + c) * params.inner + t % params.inner;
}

@group(0) @binding(0) var<uniform> params: NormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;

var<workgroup> sum_a: array<f32, 256>;
var<workgroup> sum_b: array<f32, 256>;

// Sums sum_a and sum_b into their element 0; every thread must call it.
fn tree_sums(lane: u32) {
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if lane < stride {
            sum_a[lane] += sum_a[lane + stride];
            sum_b[lane] += sum_b[lane + stride];
        }
    }
    workgroupBarrier();
}

fn feature(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wid.y * groups.x + wid.x;
}

@group(0) @binding(3) var<storage, read> beta_or_saved: array<f32>;
@group(0) @binding(4) var<storage, read> dy_or_running: array<f32>;
@group(0) @binding(5) var<storage, read_write> y_or_dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> saved_or_dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> running_or_dbeta: array<f32>;

// Training mode: normalise with the batch's mean and biased variance (two passes, for
// accuracy), and fold the unbiased variance into the running estimate as PyTorch does.
@compute @workgroup_size(256)
fn batchnorm_forward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let c = feature(wid, groups);
    let in_range = c < params.cols;
    let n = f32(params.rows * params.inner);
    var s = 0.0;
    if in_range { for (var t = lid.x; t < params.rows * params.inner; t += 256u) { s += x[at(t, c)]; } }
    sum_a[lid.x] = s;
    sum_b[lid.x] = 0.0;
    tree_sums(lid.x);
    let mean = sum_a[0] / n;
    workgroupBarrier();
    var q = 0.0;
    if in_range {
        for (var t = lid.x; t < params.rows * params.inner; t += 256u) { let d = x[at(t, c)] - mean; q += d * d; }
    }
    sum_a[lid.x] = q;
    tree_sums(lid.x);
    if !in_range { return; }
    let variance = sum_a[0] / n;
    let invstd = 1.0 / sqrt(variance + params.eps);
    let g = gamma[c];
    let b = beta_or_saved[c];
    for (var t = lid.x; t < params.rows * params.inner; t += 256u) {
        let i = at(t, c);
        y_or_dx[i] = (x[i] - mean) * invstd * g + b;
    }
    if lid.x == 0u {
        saved_or_dgamma[c] = mean;
        saved_or_dgamma[params.cols + c] = invstd;
        let unbiased = variance * n / max(n - 1.0, 1.0);
        let keep = 1.0 - params.momentum;
        running_or_dbeta[c] = keep * running_or_dbeta[c] + params.momentum * mean;
        running_or_dbeta[params.cols + c] = keep * running_or_dbeta[params.cols + c] + params.momentum * unbiased;
    }
}

// dγ = Σ dy·x̂;  dβ = Σ dy;  dx = γ/(N σ) · (N dy − Σ dy − x̂ Σ dy·x̂)
@compute @workgroup_size(256)
fn batchnorm_backward(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let c = feature(wid, groups);
    let in_range = c < params.cols;
    var mean = 0.0;
    var invstd = 0.0;
    if in_range { mean = beta_or_saved[c]; invstd = beta_or_saved[params.cols + c]; }
    var sdy = 0.0;
    var sdyx = 0.0;
    if in_range {
        for (var t = lid.x; t < params.rows * params.inner; t += 256u) {
            let i = at(t, c);
            let dy = dy_or_running[i];
            sdy += dy;
            sdyx += dy * (x[i] - mean) * invstd;
        }
    }
    sum_a[lid.x] = sdy;
    sum_b[lid.x] = sdyx;
    tree_sums(lid.x);
    if !in_range { return; }
    let total_dy = sum_a[0];
    let total_dyx = sum_b[0];
    let n = f32(params.rows * params.inner);
    let k = gamma[c] * invstd / n;
    for (var t = lid.x; t < params.rows * params.inner; t += 256u) {
        let i = at(t, c);
        let xhat = (x[i] - mean) * invstd;
        y_or_dx[i] = k * (n * dy_or_running[i] - total_dy - xhat * total_dyx);
    }
    if lid.x == 0u {
        saved_or_dgamma[c] = total_dyx;
        running_or_dbeta[c] = total_dy;
    }
}

// Eval mode: normalise with the running statistics.
@compute @workgroup_size(256)
fn batchnorm_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * 256u + gid.x;
    if i >= params.rows * params.cols * params.inner { return; }
    let c = (i / params.inner) % params.cols;
    let invstd = 1.0 / sqrt(dy_or_running[params.cols + c] + params.eps);
    y_or_dx[i] = (x[i] - dy_or_running[c]) * invstd * gamma[c] + beta_or_saved[c];
}
