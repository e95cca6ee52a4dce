// Conv2d over NCHW images as implicit GEMMs on gemm_tiles.wgsl's register-blocked tiling: the
// im2col matrix is never stored; load_b computes each of its elements from the image.
// Legend: B batch, C in channels, H×W input, O out channels, kh×kw kernel, Ho×Wo output,
//         P = Ho·Wo, T = kh·kw taps; x is [B, C, H, W], weight [O, C, kh, kw], y and dy
//         [B, O, Ho, Wo]; an output pixel (oy, ox) reads input (oy·s + ky·d − pad, ...).
// MODE (override) picks the product:
//   0 forward      y[b, o, p]  = act(Σ_{c,t} w[o, c, t] · im2col[b, (c, t), p] + bias[o])
//                  M = O, N = B·P, K = C·T
//   1 input grad   dx[b, c, q] = Σ_{o,t} w[o, c, t] · dy[b, o, p(q, t)]  (0 where q is no
//                  tap t of any output pixel), times act'(aux) under GRAD_MASK (the fused
//                  activation of x's producer);  M = C, N = B·H·W, K = O·T
//   2 weight grad  dw[o, (c, t)] = Σ_{b,p} dy[b, o, p] · im2col[b, (c, t), p], and with
//                  HAS_BIAS db[o] = Σ_{b,p} dy[b, o, p] as an extra column of ones;
//                  M = O, N = C·T (+1), K = B·P, split along K over workgroup z (SPLIT:
//                  each split writes partial[z, o, col], then `conv_weight_grad_sum` adds).
// Bindings: 0 params (uniform), 1 x (read), 2 weight (read), 3 dy (read), 4 aux (read: bias
//           [O] in mode 0, the pre-mask values [B, C, H, W] under GRAD_MASK), 5 out (rw: y,
//           dx, dw or partial), 6 out2 (rw: db in mode 2; else out again).
// Grid: the tiled kernels' (ceil(N / tile), ceil(M / tile), splits); the sum: grid_1d(M·N', 256).

struct ConvParams {
    m: u32,
    n: u32,
    k: u32,
    k_chunk: u32,
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    out_channels: u32,
    out_height: u32,
    out_width: u32,
    slope: f32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dilation_h: u32,
    dilation_w: u32,
}

override MODE: u32 = 0u;
override HAS_BIAS: bool = false;
override GRAD_MASK: bool = false;
override SPLIT: bool = false;
override ACT: u32 = 0u;

@group(0) @binding(0) var<uniform> params: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> aux: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> out2: array<f32>;

var<private> split_index: u32;

fn begin_workgroup(z: u32) -> vec2<u32> {
    split_index = z;
    let start = z * params.k_chunk;
    return vec2<u32>(start, min(params.k, start + params.k_chunk));
}

// Mode 1 stages A by channel, whose weights lie T apart; the other operands run along K or N.
fn a_runs_along_m() -> bool { return false; }
fn b_runs_along_k() -> bool { return MODE == 2u; }

fn taps() -> u32 { return params.kernel_h * params.kernel_w; }
fn out_pixels() -> u32 { return params.out_height * params.out_width; }

// im2col[b, (c, t), p]: the input pixel tap t of output pixel p sees, 0 in the padding.
fn im2col(b: u32, ct: u32, p: u32) -> f32 {
    let c = ct / taps();
    let t = ct % taps();
    let yy = (p / params.out_width) * params.stride_h + (t / params.kernel_w) * params.dilation_h;
    let xx = (p % params.out_width) * params.stride_w + (t % params.kernel_w) * params.dilation_w;
    if yy < params.pad_h || xx < params.pad_w { return 0.0; }
    let iy = yy - params.pad_h;
    let ix = xx - params.pad_w;
    if iy >= params.height || ix >= params.width { return 0.0; }
    return x[((b * params.channels + c) * params.height + iy) * params.width + ix];
}

// dy[b, o, p] for the output pixel whose tap t lands on input pixel q, 0 if none does.
fn dy_through_tap(b: u32, ot: u32, q: u32) -> f32 {
    let o = ot / taps();
    let t = ot % taps();
    let yy = q / params.width + params.pad_h;
    let xx = q % params.width + params.pad_w;
    let dy_off = (t / params.kernel_w) * params.dilation_h;
    let dx_off = (t % params.kernel_w) * params.dilation_w;
    if yy < dy_off || xx < dx_off { return 0.0; }
    let sy = yy - dy_off;
    let sx = xx - dx_off;
    if sy % params.stride_h != 0u || sx % params.stride_w != 0u { return 0.0; }
    let oy = sy / params.stride_h;
    let ox = sx / params.stride_w;
    if oy >= params.out_height || ox >= params.out_width { return 0.0; }
    return dy[((b * params.out_channels + o) * params.out_height + oy) * params.out_width + ox];
}

fn load_a(row: u32, k: u32) -> f32 {
    if row >= params.m { return 0.0; }
    switch MODE {
        case 0u: { return weight[row * params.k + k]; }
        case 1u: { return weight[((k / taps()) * params.channels + row) * taps() + k % taps()]; }
        default: {
            let p = out_pixels();
            return dy[((k / p) * params.out_channels + row) * p + k % p];
        }
    }
}

fn load_b(k: u32, col: u32) -> f32 {
    switch MODE {
        case 0u: {
            if col >= params.n { return 0.0; }
            return im2col(col / out_pixels(), k, col % out_pixels());
        }
        case 1u: {
            if col >= params.n { return 0.0; }
            let plane = params.height * params.width;
            return dy_through_tap(col / plane, k, col % plane);
        }
        default: {
            if HAS_BIAS && col == params.n { return 1.0; }
            if col >= params.n { return 0.0; }
            return im2col(k / out_pixels(), col, k % out_pixels());
        }
    }
}

fn store4(row: u32, col: u32, v: vec4<f32>) {
    if row >= params.m { return; }
    for (var j = 0u; j < 4u; j++) {
        let c_col = col + j;
        switch MODE {
            case 0u: {
                if c_col >= params.n { return; }
                let p = out_pixels();
                var y = v[j];
                if HAS_BIAS { y += aux[row]; }
                out[((c_col / p) * params.out_channels + row) * p + c_col % p] = activate(y, ACT, params.slope);
            }
            case 1u: {
                if c_col >= params.n { return; }
                let plane = params.height * params.width;
                let i = ((c_col / plane) * params.channels + row) * plane + c_col % plane;
                var g = v[j];
                if GRAD_MASK { g *= activate_grad(aux[i], ACT, params.slope); }
                out[i] = g;
            }
            default: {
                let cols = params.n + select(0u, 1u, HAS_BIAS);
                if c_col >= cols { return; }
                if SPLIT {
                    out[(split_index * params.m + row) * cols + c_col] = v[j];
                } else if c_col == params.n {
                    out2[row] = v[j];
                } else {
                    out[row * params.n + c_col] = v[j];
                }
            }
        }
    }
}

// dw and db from the splits' partials [splits, O, N'] (bound as x): a fixed order of
// additions, so the result is the same every run.
@compute @workgroup_size(256)
fn conv_weight_grad_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let cols = params.n + select(0u, 1u, HAS_BIAS);
    let i = gid.y * groups.x * 256u + gid.x;
    if i >= params.m * cols { return; }
    let splits = (params.k + params.k_chunk - 1u) / params.k_chunk;
    var sum = 0.0;
    for (var z = 0u; z < splits; z++) { sum += x[z * params.m * cols + i]; }
    let row = i / cols;
    let col = i % cols;
    if col == params.n { out2[row] = sum; } else { out[row * params.n + col] = sum; }
}
