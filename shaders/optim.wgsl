// Fused optimizer updates over one flat parameter buffer: one thread per parameter, one
// dispatch for the whole model. Formulas follow torch.optim's documentation; state names
// follow its state dicts.
// Bindings: 0 params (uniform), 1 step (uniform, dynamic offset, StepParams),
//           2 grad (read, n), 3 clip (read, 2: [‖g‖, coefficient]; [0, 1] when not clipping),
//           4 param (read_write, n), 5..7 state_a, state_b, state_c (read_write, n each;
//           which states an optimizer uses is listed at its entry point).
// `Vec` is vec4<f32> where the buffers hold whole vec4s (the trainer's flat buffers always do)
// and f32 otherwise: the launcher prepends the alias. A CPU driver turns every storage access
// into a loop over its SIMD lanes whatever the access's width, so vec4s cost a quarter as
// much per parameter there (Adam about 2x faster on lavapipe); GPUs move the same bytes in fewer
// instructions. params.n counts Vecs.
// Grid: grid_1d(ceil(n / 8), 256): each thread updates 8 Vecs.

struct OptimParams {
    n: u32,
    // bit 0 nesterov, bit 1 centered, bit 2 amsgrad, bit 3 decoupled weight decay (AdamW),
    // bit 4 skip the update when the gradient norm (clip[0]) is not finite
    flags: u32,
    // SGD/RMSProp momentum μ, or Adam's β1
    beta1: f32,
    // RMSProp's α, or Adam's β2
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    dampening: f32,
    // The parameter group's learning rate over the optimizer's (torch.optim's per-group lr,
    // which a schedule scales alike).
    lr_scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NESTEROV: u32 = 1u;
const CENTERED: u32 = 2u;
const AMSGRAD: u32 = 4u;
const DECOUPLED: u32 = 8u;
const SKIP_NONFINITE: u32 = 16u;

@group(0) @binding(0) var<uniform> params: OptimParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> grad: array<Vec>;
@group(0) @binding(3) var<storage, read> clip: array<f32>;
@group(0) @binding(4) var<storage, read_write> param: array<Vec>;
@group(0) @binding(5) var<storage, read_write> state_a: array<Vec>;
@group(0) @binding(6) var<storage, read_write> state_b: array<Vec>;
@group(0) @binding(7) var<storage, read_write> state_c: array<Vec>;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 256u + gid.x;
}

// Each thread updates PER_THREAD Vecs, one grid apart so neighbours still touch
// neighbouring addresses: fewer threads amortise the per-thread setup (on lavapipe 4 made
// Adam 1.45× faster than 1, and 8 took the mlp-bench's 1.86M parameters from 16.3-18.9 ms
// to 14.5-15.6; 16 gained nothing more). At 8 the suite's 2^24-parameter update still gives a
// GPU 2^19 threads.
const PER_THREAD: u32 = 8u;

fn threads(groups: vec3<u32>) -> u32 {
    return groups.x * groups.y * 256u;
}

fn has(flag: u32) -> bool { return (params.flags & flag) != 0u; }

// This step's learning rate for this dispatch's parameter group.
fn lr() -> f32 { return step.lr * params.lr_scale; }

// Whether this step's update must not happen. The exponent bits decide finiteness: the
// compiler may assume floats are finite, so isnan-style tests can be folded away.
fn skipped() -> bool {
    return has(SKIP_NONFINITE) && (bitcast<u32>(clip[0]) & 0x7f800000u) == 0x7f800000u;
}

// The gradient after clipping (clip_scale: clip[1], read once per thread: on lavapipe a load per
// Vec doubled the update's time) and the coupled penalties: g + λ₂·p + λ₁·sign(p).
// (L1 is not part of torch.optim; it is added the same way as weight decay.)
fn penalized_grad(i: u32, p: Vec, clip_scale: f32) -> Vec {
    var g = grad[i] * clip_scale;
    if !has(DECOUPLED) { g += params.weight_decay * p; }
    return g + params.l1 * sign(p);
}

// torch.optim.SGD. state_a = momentum_buffer.
//   b_t = g (t = 1), μ b_{t−1} + (1 − τ) g (t > 1);  g ← g + μ b_t (Nesterov) or b_t;  p ← p − γ g
@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    if skipped() { return; }
    let first = index(gid, groups);
    let clip_scale = clip[1];
    for (var q = 0u; q < PER_THREAD; q++) {
        sgd_one(first + q * threads(groups), clip_scale);
    }
}

fn sgd_one(i: u32, clip_scale: f32) {
    if i >= params.n { return; }
    let p = param[i];
    var g = penalized_grad(i, p, clip_scale);
    if params.beta1 != 0.0 {
        var b = g;
        if step.step > 1u { b = params.beta1 * state_a[i] + (1.0 - params.dampening) * g; }
        state_a[i] = b;
        g = select(b, g + params.beta1 * b, has(NESTEROV));
    }
    param[i] = p - lr() * g;
}

// torch.optim.Adagrad. state_a = sum. step.lr already holds γ / (1 + (t − 1)·η).
//   sum ← sum + g²;  p ← p − γ̃ g / (√sum + ε)
@compute @workgroup_size(256)
fn adagrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    if skipped() { return; }
    let first = index(gid, groups);
    let clip_scale = clip[1];
    for (var q = 0u; q < PER_THREAD; q++) {
        adagrad_one(first + q * threads(groups), clip_scale);
    }
}

fn adagrad_one(i: u32, clip_scale: f32) {
    if i >= params.n { return; }
    let p = param[i];
    let g = penalized_grad(i, p, clip_scale);
    let sum = state_a[i] + g * g;
    state_a[i] = sum;
    param[i] = p - lr() * g / (sqrt(sum) + params.eps);
}

// torch.optim.RMSprop. state_a = square_avg, state_b = grad_avg (centered),
// state_c = momentum_buffer (momentum > 0).
//   v ← α v + (1 − α) g²;  ṽ = v − ḡ² with ḡ ← α ḡ + (1 − α) g (centered) or v;
//   b ← μ b + g / (√ṽ + ε), p ← p − γ b (momentum) or p ← p − γ g / (√ṽ + ε)
@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    if skipped() { return; }
    let first = index(gid, groups);
    let clip_scale = clip[1];
    for (var q = 0u; q < PER_THREAD; q++) {
        rmsprop_one(first + q * threads(groups), clip_scale);
    }
}

fn rmsprop_one(i: u32, clip_scale: f32) {
    if i >= params.n { return; }
    let p = param[i];
    let g = penalized_grad(i, p, clip_scale);
    let alpha = params.beta2;
    let v = alpha * state_a[i] + (1.0 - alpha) * g * g;
    state_a[i] = v;
    var avg = v;
    if has(CENTERED) {
        let mean = alpha * state_b[i] + (1.0 - alpha) * g;
        state_b[i] = mean;
        avg = v - mean * mean;
    }
    let scaled = g / (sqrt(avg) + params.eps);
    if params.beta1 > 0.0 {
        let b = params.beta1 * state_c[i] + scaled;
        state_c[i] = b;
        param[i] = p - lr() * b;
    } else {
        param[i] = p - lr() * scaled;
    }
}

// torch.optim.Adam and AdamW (DECOUPLED). state_a = exp_avg, state_b = exp_avg_sq,
// state_c = max_exp_avg_sq (AMSGrad).
//   AdamW: p ← p (1 − γλ);  Adam: g ← g + λ p
//   m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;  v̂ = max(v̂, v) (AMSGrad) or v
//   p ← p − γ/(1 − β1ᵗ) · m / (√v̂ / √(1 − β2ᵗ) + ε)
@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    if skipped() { return; }
    let first = index(gid, groups);
    let clip_scale = clip[1];
    for (var q = 0u; q < PER_THREAD; q++) {
        adam_one(first + q * threads(groups), clip_scale);
    }
}

fn adam_one(i: u32, clip_scale: f32) {
    if i >= params.n { return; }
    var p = param[i];
    if has(DECOUPLED) { p *= 1.0 - lr() * params.weight_decay; }
    let g = penalized_grad(i, p, clip_scale);
    let m = params.beta1 * state_a[i] + (1.0 - params.beta1) * g;
    var v = params.beta2 * state_b[i] + (1.0 - params.beta2) * g * g;
    state_a[i] = m;
    state_b[i] = v;
    if has(AMSGRAD) {
        v = max(state_c[i], v);
        state_c[i] = v;
    }
    param[i] = p - step.step_size * params.lr_scale * m / (sqrt(v) / step.bias_correction2_sqrt + params.eps);
}
