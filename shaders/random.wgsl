// Counter-based random numbers: every value is a hash of (element, step, seed), so a run is
// reproducible, resumable at any step, and the backward pass can regenerate the forward's
// mask instead of storing it.
// Bindings: 0 params (uniform), 1 step (uniform, dynamic offset, StepParams), 2 x (read),
//           3 out (read_write).
// Grid: grid_1d(n, 256).

struct RandomParams {
    n: u32,
    // Distinguishes the streams of different layers sharing a step.
    salt: u32,
    // Dropout: an element is kept when its hash is ≥ drop_threshold = p · 2³².
    drop_threshold: u32,
    // Dropout: 1 / (1 − p).
    keep_scale: f32,
    // Shift: images are height×width; each moves by up to ±max_shift pixels.
    height: u32,
    width: u32,
    max_shift: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: RandomParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// pcg3d (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020): a 3-in, 3-out
// integer hash that passes BigCrush on its output.
fn pcg3d(key: vec3<u32>) -> vec3<u32> {
    var v = key * 1664525u + 1013904223u;
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v ^= v >> vec3<u32>(16u);
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    return v;
}

fn random_u32(element: u32) -> u32 {
    return pcg3d(vec3<u32>(element, step.step, step.seed ^ (params.salt * 0x9e3779b9u))).x;
}

fn flat(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 256u + gid.x;
}

// out = x · keep / (1 − p). Dropout is linear in x with the same mask for the same
// (seed, step, salt), so this one kernel is both the forward and the backward.
@compute @workgroup_size(256)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    let keep = random_u32(i) >= params.drop_threshold;
    out[i] = select(0.0, x[i] * params.keep_scale, keep);
}

// Shifts each height×width image by a random (dy, dx) in [−max_shift, max_shift]², filling
// with zeros (MNIST's background).
@compute @workgroup_size(256)
fn random_shift(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    let pixels = params.height * params.width;
    let image = i / pixels;
    let within = i % pixels;
    let r = pcg3d(vec3<u32>(image, step.step, step.seed ^ (params.salt * 0x9e3779b9u)));
    let span = 2u * params.max_shift + 1u;
    let dy = i32(r.y % span) - i32(params.max_shift);
    let dx = i32(r.z % span) - i32(params.max_shift);
    let sy = i32(within / params.width) - dy;
    let sx = i32(within % params.width) - dx;
    let inside = sy >= 0 && sy < i32(params.height) && sx >= 0 && sx < i32(params.width);
    let source = image * pixels + u32(clamp(sy, 0, i32(params.height) - 1)) * params.width
        + u32(clamp(sx, 0, i32(params.width) - 1));
    out[i] = select(0.0, x[source], inside);
}
