// Elementwise kernels over n Vecs: `Vec` is vec4<f32> where the tensors' length is a multiple
// of 4 and f32 otherwise, and `act`/`act_grad` apply the activations to a Vec; the launcher
// prepends both (as for optim.wgsl: four floats per access move the same bytes in a quarter of
// the instructions, and CPU drivers pay per access).
// Bindings: 0 params (uniform), 1 x (read, n), 2 y (read, n; unused by some entries),
//           3 out (read_write, n).
// Grid: grid_1d(n, 256); the flat index is rebuilt from num_workgroups because one grid
// dimension stops at 65535 groups.

struct ElementwiseParams {
    n: u32,
    act: u32,
    slope: f32,
    alpha: f32,
}

@group(0) @binding(0) var<uniform> params: ElementwiseParams;
@group(0) @binding(1) var<storage, read> x: array<Vec>;
@group(0) @binding(2) var<storage, read> y: array<Vec>;
@group(0) @binding(3) var<storage, read_write> out: array<Vec>;

fn flat(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 256u + gid.x;
}

// out = act(x)
@compute @workgroup_size(256)
fn activation_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    out[i] = act(x[i], params.act, params.slope);
}

// out = y · act'(x): x is the activation's input, y the gradient of its output.
@compute @workgroup_size(256)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    out[i] = y[i] * act_grad(x[i], params.act, params.slope);
}

// out = x + y
@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    out[i] = x[i] + y[i];
}

// out = x · y
@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    out[i] = x[i] * y[i];
}

// out = alpha · x
@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    out[i] = params.alpha * x[i];
}

// out = alpha · x + out (BLAS axpy, in place on out)
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    out[i] = params.alpha * x[i] + out[i];
}
