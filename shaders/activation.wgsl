// Activation functions shared by matmul's epilogue and the elementwise kernels.
// Codes match `kernels::Activation` (tested on the Rust side).
const ACT_IDENTITY: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u;
const ACT_GELU: u32 = 3u;
const ACT_TANH: u32 = 4u;
const ACT_SIGMOID: u32 = 5u;

// sqrt(2 / pi), for GELU's tanh form (PyTorch's approximate='tanh').
const GELU_C: f32 = 0.7978845608028654;
const GELU_K: f32 = 0.044715;

// tanh without the driver's builtin, whose precision Vulkan leaves loose and which some
// drivers turn into inf/inf = NaN for large |x|. Near 0 a short series keeps relative error
// small where 1 - e^{-2|x|} would cancel.
fn stable_tanh(x: f32) -> f32 {
    let ax = abs(x);
    if ax < 0.0625 {
        let x2 = x * x;
        return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0)));
    }
    let e = exp(-2.0 * ax);
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// The logistic function, evaluated so exp never overflows.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn activate(x: f32, act: u32, slope: f32) -> f32 {
    switch act {
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_LEAKY_RELU: { return select(slope * x, x, x > 0.0); }
        // 0.5·(1 + tanh(u)) = σ(2u): the sigmoid form keeps full relative accuracy for x < 0,
        // where 1 + tanh(u) would cancel.
        case ACT_GELU: { return x * sigmoid(2.0 * GELU_C * (x + GELU_K * x * x * x)); }
        case ACT_TANH: { return stable_tanh(x); }
        case ACT_SIGMOID: { return sigmoid(x); }
        default: { return x; }
    }
}

// d activate(x) / dx, at the activation's input x.
fn activate_grad(x: f32, act: u32, slope: f32) -> f32 {
    switch act {
        case ACT_RELU: { return select(0.0, 1.0, x > 0.0); }
        case ACT_LEAKY_RELU: { return select(slope, 1.0, x > 0.0); }
        case ACT_GELU: {
            // d/dx x·σ(2u) = σ(2u) + 2x·σ(2u)·σ(−2u)·u'(x), with 1 − σ(v) written σ(−v).
            let v = 2.0 * GELU_C * (x + GELU_K * x * x * x);
            let s = sigmoid(v);
            return s + 2.0 * x * s * sigmoid(-v) * GELU_C * (1.0 + 3.0 * GELU_K * x * x);
        }
        case ACT_TANH: { let t = stable_tanh(x); return 1.0 - t * t; }
        case ACT_SIGMOID: { return sigmoid(x) * sigmoid(-x); }
        default: { return 1.0; }
    }
}

// The two above on four values at once (an epilogue storing a vec4).
fn activate4(v: vec4<f32>, act: u32, slope: f32) -> vec4<f32> {
    return vec4<f32>(activate(v.x, act, slope), activate(v.y, act, slope),
                     activate(v.z, act, slope), activate(v.w, act, slope));
}

fn activate_grad4(v: vec4<f32>, act: u32, slope: f32) -> vec4<f32> {
    return vec4<f32>(activate_grad(v.x, act, slope), activate_grad(v.y, act, slope),
                     activate_grad(v.z, act, slope), activate_grad(v.w, act, slope));
}
