// N-d layout and indexing kernels over f32 values (u32 indices where named).
//   n: elements written (one thread each). rank ≤ 8: the iteration shape and the strides of
//   x and out, row-major over `shape`, in elements; x_base / out_base offset both.
//   ny: elements of the broadcast operand y (binary ops), or the vocabulary (embeddings).
//   axis_len, inner: a value seen as [outer, axis_len, inner] (axis reductions), or
//   [rows = axis_len, inner = dim] (embedding backward).
// Bindings: 0 params (uniform), 1 x (read), 2 y (read; x again when unused), 3 out
//           (read_write), 4 idx (read, u32; only the embedding entries).
// Grid: grid_1d(n, 256); the flat index is rebuilt from num_workgroups.

struct TensorParams {
    n: u32,
    rank: u32,
    x_base: u32,
    out_base: u32,
    alpha: f32,
    ny: u32,
    axis_len: u32,
    inner: u32,
    shape: array<vec4<u32>, 2>,
    x_strides: array<vec4<u32>, 2>,
    out_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: TensorParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> idx: array<u32>;

fn flat(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 256u + gid.x;
}

// out[out_base + Σ c_d · out_strides[d]] = x[x_base + Σ c_d · x_strides[d]] for every index c
// of `shape`: transposes (permuted x strides), concatenation and its backward (a window of a
// wider row on either side).
@compute @workgroup_size(256)
fn strided_copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    var rest = i;
    var src = params.x_base;
    var dst = params.out_base;
    for (var d = i32(params.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let extent = params.shape[q][r];
        let c = rest % extent;
        rest /= extent;
        src += c * params.x_strides[q][r];
        dst += c * params.out_strides[q][r];
    }
    out[dst] = x[src];
}

// out[r, j] = x[r, j − x_base] for x_base ≤ j < x_base + axis_len, else 0; out is
// [rows, inner]: a slice's gradient written whole, zeros around the window.
@compute @workgroup_size(256)
fn pad_columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    let r = i / params.inner;
    let j = i % params.inner;
    if j < params.x_base || j >= params.x_base + params.axis_len {
        out[i] = 0.0;
        return;
    }
    out[i] = x[r * params.axis_len + j - params.x_base];
}

// out = x + alpha · y, y broadcast over x's leading axes (add: alpha = 1, sub: alpha = −1)
@compute @workgroup_size(256)
fn add_broadcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    out[i] = x[i] + params.alpha * y[i % params.ny];
}

// out = x ⊙ y, y broadcast over x's leading axes
@compute @workgroup_size(256)
fn mul_broadcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    out[i] = x[i] * y[i % params.ny];
}

// out[o, j] = alpha · Σ_a x[o, a, j], summed in order of a (deterministic)
@compute @workgroup_size(256)
fn axis_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    let o = i / params.inner;
    let j = i % params.inner;
    var sum = 0.0;
    for (var a = 0u; a < params.axis_len; a++) {
        sum += x[(o * params.axis_len + a) * params.inner + j];
    }
    out[i] = params.alpha * sum;
}

// out[o, a, j] = alpha · x[o, j]: the backward of axis_sum
@compute @workgroup_size(256)
fn axis_broadcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    let j = i % params.inner;
    let o = i / (params.axis_len * params.inner);
    out[i] = params.alpha * x[o * params.inner + j];
}

// A quiet NaN, read from a private variable: a NaN may not be a constant expression, and
// browsers' compilers (Tint) refuse `bitcast<f32>(0x7fc00000u)` when they fold it.
var<private> QUIET_NAN_BITS: u32 = 0x7fc00000u;

// out[r, c] = x[idx[r], c] with x the [ny, inner] table; an index past the table gives NaN,
// so a bad token surfaces as a non-finite loss instead of another row's values.
@compute @workgroup_size(256)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    let row = idx[i / params.inner];
    if row >= params.ny {
        out[i] = bitcast<f32>(QUIET_NAN_BITS);
        return;
    }
    out[i] = x[row * params.inner + i % params.inner];
}

// out[v, c] = Σ_{r : idx[r] = v} x[r, c] over the axis_len rows, in order of r: a scatter-add
// as a gather, so no float atomics and the same sum every run. Cost rows · ny · inner reads
// of idx (cached); fine for character and small word vocabularies.
@compute @workgroup_size(256)
fn embedding_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    let v = i / params.inner;
    let c = i % params.inner;
    var sum = 0.0;
    for (var r = 0u; r < params.axis_len; r++) {
        if idx[r] == v { sum += x[r * params.inner + c]; }
    }
    out[i] = sum;
}
