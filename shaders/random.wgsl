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
    // Affine: rotations up to ± max_degrees, scalings in 1 ± max_scale.
    max_degrees: f32,
    max_scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: RandomParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

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

// A uniform draw in [−1, 1) from the top 24 bits of a hash.
fn symmetric(r: u32) -> f32 {
    return f32(r >> 8u) / 8388608.0 - 1.0;
}

// A random affine map of each height×width image, as torchvision's RandomAffine: rotation by
// θ ∈ ±max_degrees and scaling by s ∈ 1 ± max_scale about the image centre, then translation
// by t ∈ ±max_shift pixels (continuous). Output pixel p samples the input bilinearly at
// c + R(−θ)(p − c − t)/s, zeros outside (MNIST's background). Draws per image:
// pcg3d(image, step, seed ^ salt·φ) = (θ, t_y, t_x), and pcg3d of that gives s.
@compute @workgroup_size(256)
fn random_affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= params.n { return; }
    let pixels = params.height * params.width;
    let image = i / pixels;
    let within = i % pixels;
    let r = pcg3d(vec3<u32>(image, step.step, step.seed ^ (params.salt * 0x9e3779b9u)));
    let theta = radians(params.max_degrees) * symmetric(r.x);
    let shift = f32(params.max_shift) * vec2<f32>(symmetric(r.z), symmetric(r.y));
    let scale = 1.0 + params.max_scale * symmetric(pcg3d(r).x);
    let centre = 0.5 * vec2<f32>(f32(params.width) - 1.0, f32(params.height) - 1.0);
    let d = (vec2<f32>(f32(within % params.width), f32(within / params.width)) - centre - shift) / scale;
    let cos_t = cos(theta);
    let sin_t = sin(theta);
    let source = centre + vec2<f32>(cos_t * d.x + sin_t * d.y, -sin_t * d.x + cos_t * d.y);
    let base = floor(source);
    let f = source - base;
    var value = 0.0;
    for (var k = 0u; k < 4u; k++) {
        let corner = base + vec2<f32>(f32(k & 1u), f32(k >> 1u));
        let weight = select(1.0 - f.x, f.x, (k & 1u) == 1u) * select(1.0 - f.y, f.y, (k >> 1u) == 1u);
        if corner.x >= 0.0 && corner.y >= 0.0 && corner.x < f32(params.width) && corner.y < f32(params.height) {
            value += weight * x[image * pixels + u32(corner.y) * params.width + u32(corner.x)];
        }
    }
    out[i] = value;
}
