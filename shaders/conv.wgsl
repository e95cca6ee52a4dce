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
// Bindings: 0 params (uniform: the GEMM's M, N, K and K per split; geometry is override
//           constants), 1 x (read), 2 weight (read), 3 dy (read), 4 aux (read: bias
//           [O] in mode 0, the pre-mask values [B, C, H, W] under GRAD_MASK), 5 out (rw: y,
//           dx, dw or partial), 6 out2 (rw: db in mode 2; else out again).
// Grid: the tiled kernels' (ceil(N / tile), ceil(M / tile), splits); the sum: grid_1d(M·N', 256).

struct ConvParams {
    m: u32,
    n: u32,
    k: u32,
    k_chunk: u32,
    slope: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The rest of the layer's geometry, compiled in like window.wgsl's (prepended).
override CHANNELS: u32 = 1u;
override OUT_CHANNELS: u32 = 1u;
override DILATION_H: u32 = 1u;
override DILATION_W: u32 = 1u;

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

// Im2col addressing has no vector loads: the tiles gather each vec4 element by element.
fn load_a4(row: u32, k: u32, k_end: u32) -> vec4<f32> { return gather_a4(row, k, k_end); }
fn load_b4(k: u32, col: u32, k_end: u32) -> vec4<f32> { return gather_b4(k, col, k_end); }

fn taps() -> u32 { return KERNEL_H * KERNEL_W; }
fn out_pixels() -> u32 { return OUT_HEIGHT * OUT_WIDTH; }
// Rows of im2col (C·T) before the stored matrix's padding.
fn col_rows() -> u32 { return CHANNELS * taps(); }

// im2col[b, (c, t), p]: the input pixel tap t of output pixel p sees, 0 in the padding.
fn im2col(b: u32, ct: u32, p: u32) -> f32 {
    let c = ct / taps();
    let t = ct % taps();
    let yy = (p / OUT_WIDTH) * STRIDE_H + (t / KERNEL_W) * DILATION_H;
    let xx = (p % OUT_WIDTH) * STRIDE_W + (t % KERNEL_W) * DILATION_W;
    if yy < PAD_H || xx < PAD_W { return 0.0; }
    let iy = yy - PAD_H;
    let ix = xx - PAD_W;
    if iy >= HEIGHT || ix >= WIDTH { return 0.0; }
    return x[((b * CHANNELS + c) * HEIGHT + iy) * WIDTH + ix];
}

const NO_PIXEL: u32 = 0xffffffffu;

// The output pixel whose tap t lands on input pixel q, or NO_PIXEL if none does.
fn tap_source(t: u32, q: u32) -> u32 {
    let yy = q / WIDTH + PAD_H;
    let xx = q % WIDTH + PAD_W;
    let dy_off = (t / KERNEL_W) * DILATION_H;
    let dx_off = (t % KERNEL_W) * DILATION_W;
    if yy < dy_off || xx < dx_off { return NO_PIXEL; }
    let sy = yy - dy_off;
    let sx = xx - dx_off;
    if sy % STRIDE_H != 0u || sx % STRIDE_W != 0u { return NO_PIXEL; }
    let oy = sy / STRIDE_H;
    let ox = sx / STRIDE_W;
    if oy >= OUT_HEIGHT || ox >= OUT_WIDTH { return NO_PIXEL; }
    return oy * OUT_WIDTH + ox;
}

// dy[b, o, p] for the output pixel whose tap t lands on input pixel q, 0 if none does.
fn dy_through_tap(b: u32, ot: u32, q: u32) -> f32 {
    let p = tap_source(ot % taps(), q);
    if p == NO_PIXEL { return 0.0; }
    return dy[(b * OUT_CHANNELS + ot / taps()) * out_pixels() + p];
}

fn load_a(row: u32, k: u32) -> f32 {
    if row >= params.m { return 0.0; }
    switch MODE {
        case 0u: { return weight[row * params.k + k]; }
        case 1u: { return weight[((k / taps()) * CHANNELS + row) * taps() + k % taps()]; }
        default: {
            let p = out_pixels();
            return dy[((k / p) * OUT_CHANNELS + row) * p + k % p];
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
            let plane = HEIGHT * WIDTH;
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
                out[((c_col / p) * OUT_CHANNELS + row) * p + c_col % p] = activate(y, ACT, params.slope);
            }
            case 1u: {
                if c_col >= params.n { return; }
                let plane = HEIGHT * WIDTH;
                let i = ((c_col / plane) * CHANNELS + row) * plane + c_col % plane;
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

// CPU adapters store the im2col matrix instead, so that each product runs on matmul.wgsl's
// `direct` (the tiled kernels' staging and barriers cost a CPU driver 4-6x; computing im2col's
// addresses per load without staging costs as much): the forward is col2 = im2col as
// [C·T, B·P] (`im2col_store`), y' = w · col2 as [O, B·P], then y (`from_channel_major`, with
// the bias and activation); the weight gradient is dy' · col2ᵀ, dy' = dy as [O, B·P]
// (`to_channel_major`), its row sums the bias gradient; the input gradient is
// dcol = wᵀ · dy' as [C·T, B·P], then dx (`col2im`). C·T is padded to a multiple of 4 (rows of
// zeros in col2, zero columns in w: `pad_weight`, `unpad_weight_grad`). Needs P % 4 == 0: each
// thread moves four pixels of one image as a vec4. params.m and n count the output's rows and
// columns (C·T padded), except in `col2im` (m: dx's elements, n: B·P).
// Grid: grid_1d(m · n / 4, 64), `col2im` grid_1d(m, 64).
// These entry points see bindings 1, 3 and 5 as vec4s where they move whole vec4s (an entry
// point may use one variable per binding).
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;

fn pass_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 64u + gid.x;
}

// col2[(c, t), (b, p)] = im2col[b, (c, t), p], into out4.
@compute @workgroup_size(64)
fn im2col_store(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pass_index(gid, groups);
    let quads = params.n / 4u;
    if i >= params.m * quads { return; }
    let ct = i / quads;
    if ct >= col_rows() {
        out4[i] = vec4<f32>(0.0);
        return;
    }
    let col = (i % quads) * 4u;
    let b = col / out_pixels();
    let p = col % out_pixels();
    out4[i] = vec4<f32>(im2col(b, ct, p), im2col(b, ct, p + 1u), im2col(b, ct, p + 2u),
                        im2col(b, ct, p + 3u));
}

// dy' [O, B·P] from dy [B, O, P] (dy4), into out4.
@compute @workgroup_size(64)
fn to_channel_major(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pass_index(gid, groups);
    let quads = params.n / 4u;
    if i >= params.m * quads { return; }
    let o = i / quads;
    let col = (i % quads) * 4u;
    let b = col / out_pixels();
    out4[i] = dy4[((b * OUT_CHANNELS + o) * out_pixels() + col % out_pixels()) / 4u];
}

// y [B, O, P] = act(y' [O, B·P] (x4) + bias[o] (aux)), into out4; params.m = O, n = B·P.
@compute @workgroup_size(64)
fn from_channel_major(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pass_index(gid, groups);
    if i >= params.m * params.n / 4u { return; }
    let quads = out_pixels() / 4u;
    let p = (i % quads) * 4u;
    let o = (i / quads) % OUT_CHANNELS;
    let b = i / quads / OUT_CHANNELS;
    var v = x4[(o * params.n + b * out_pixels() + p) / 4u];
    if HAS_BIAS { v += vec4<f32>(aux[o]); }
    out4[i] = activate4(v, ACT, params.slope);
}

// dx[b, c, q] = Σ_t dcol[(c, t), (b, p)] over the taps t that output pixels p see q through
// (dcol bound as x, [C·T, B·P]), in order of t, times act'(aux) under GRAD_MASK; into out.
@compute @workgroup_size(64)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pass_index(gid, groups);
    if i >= params.m { return; }
    let plane = HEIGHT * WIDTH;
    let q = i % plane;
    let c = (i / plane) % CHANNELS;
    let b = i / plane / CHANNELS;
    var sum = 0.0;
    for (var t = 0u; t < taps(); t++) {
        let p = tap_source(t, q);
        if p != NO_PIXEL { sum += x[(c * taps() + t) * params.n + b * out_pixels() + p]; }
    }
    if GRAD_MASK { sum *= activate_grad(aux[i], ACT, params.slope); }
    out[i] = sum;
}

// w [O, C·T] as [O, params.n] (C·T padded with zero columns), into out.
@compute @workgroup_size(64)
fn pad_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pass_index(gid, groups);
    if i >= params.m * params.n { return; }
    let j = i % params.n;
    var w = 0.0;
    if j < col_rows() { w = weight[(i / params.n) * col_rows() + j]; }
    out[i] = w;
}

// dw [O, C·T] from the product's [O, params.n] (bound as x), into out.
@compute @workgroup_size(64)
fn unpad_weight_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pass_index(gid, groups);
    let rows = col_rows();
    if i >= params.m * rows { return; }
    out[i] = x[(i / rows) * params.n + i % rows];
}
