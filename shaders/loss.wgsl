// Losses with their gradients, one thread per row.
//   rows = batch, cols = classes (cross-entropy) or outputs per sample (the others).
// Each kernel writes row_loss[r] = Σ over the row of the unreduced loss, and
// grad[r, c] = grad_scale · ∂loss/∂pred[r, c]; with grad_scale = 1/rows (cross-entropy) or
// 1/(rows·cols) (the others) that is the gradient of PyTorch's reduction='mean'. The mean loss
// itself is reduce::sum_cols over row_loss with the same scale.
// Bindings: 0 params (uniform), 1 pred (read, rows·cols), 2 targets (read: rows class indices as
//           f32 for cross-entropy, else rows·cols), 3 row_loss (read_write, rows),
//           4 grad (read_write, rows·cols).
// Grid: grid_1d(rows, 64).

struct LossParams {
    rows: u32,
    cols: u32,
    delta: f32,
    grad_scale: f32,
}

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

fn row_of(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// A quiet NaN, so a bad label shows up as a non-finite loss instead of silent garbage. Read
// from a private variable: a NaN may not be a constant expression, and browsers' compilers
// (Tint) refuse `bitcast<f32>(0x7fc00000u)` when they fold it.
var<private> QUIET_NAN_BITS: u32 = 0x7fc00000u;
fn nan() -> f32 { return bitcast<f32>(QUIET_NAN_BITS); }

// loss = logsumexp(x) − x[t]; grad = softmax(x) − onehot(t). One pass finds the max and the
// scaled sum together (online log-sum-exp), a second writes the gradient.
@compute @workgroup_size(64)
fn softmax_cross_entropy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = row_of(gid, groups);
    if r >= params.rows { return; }
    let base = r * params.cols;
    var m = -3.0e38;
    var s = 0.0;
    for (var c = 0u; c < params.cols; c++) {
        let v = pred[base + c];
        if v > m { s = s * exp(m - v) + 1.0; m = v; } else { s += exp(v - m); }
    }
    let t = targets[r];
    let label = u32(t);
    let valid = t >= 0.0 && f32(label) == t && label < params.cols;
    row_loss[r] = select(nan(), m + log(s) - pred[base + min(label, params.cols - 1u)], valid);
    for (var c = 0u; c < params.cols; c++) {
        let p = exp(pred[base + c] - m) / s;
        grad[base + c] = params.grad_scale * (p - select(0.0, 1.0, c == label));
    }
}

// loss = (x − y)²; grad = 2 (x − y)
@compute @workgroup_size(64)
fn mse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = row_of(gid, groups);
    if r >= params.rows { return; }
    var sum = 0.0;
    for (var c = 0u; c < params.cols; c++) {
        let i = r * params.cols + c;
        let d = pred[i] - targets[i];
        sum += d * d;
        grad[i] = params.grad_scale * 2.0 * d;
    }
    row_loss[r] = sum;
}

// loss = max(x, 0) − x·y + log(1 + e^{−|x|}); grad = σ(x) − y
@compute @workgroup_size(64)
fn bce_with_logits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = row_of(gid, groups);
    if r >= params.rows { return; }
    var sum = 0.0;
    for (var c = 0u; c < params.cols; c++) {
        let i = r * params.cols + c;
        let x = pred[i];
        let y = targets[i];
        let e = exp(-abs(x));
        // log1p(e) for e ≤ 1: log(1 + e) loses e's low bits when e is tiny; the ratio form
        // e · log(u) / (u − 1) with u = 1 + e restores them (Goldberg's trick).
        let u = 1.0 + e;
        let log1p_e = select(e * log(u) / (u - 1.0), e, u == 1.0);
        sum += max(x, 0.0) - x * y + log1p_e;
        grad[i] = params.grad_scale * (sigmoid(x) - y);
    }
    row_loss[r] = sum;
}

// PyTorch's HuberLoss(delta): 0.5 d² where |d| < delta, else delta (|d| − delta/2).
@compute @workgroup_size(64)
fn huber(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = row_of(gid, groups);
    if r >= params.rows { return; }
    var sum = 0.0;
    for (var c = 0u; c < params.cols; c++) {
        let i = r * params.cols + c;
        let d = pred[i] - targets[i];
        let small = abs(d) < params.delta;
        sum += select(params.delta * (abs(d) - 0.5 * params.delta), 0.5 * d * d, small);
        grad[i] = params.grad_scale * select(params.delta * sign(d), d, small);
    }
    row_loss[r] = sum;
}
