// 2-D pooling over NCHW images, each of the B·C planes on its own, as torch.nn.MaxPool2d and
// AvgPool2d (count_include_pad=True, ceil_mode=False): window (oy, ox) covers input rows
// oy·sh − ph .. + kh and columns ox·sw − pw .. + kw, padding never chosen as a max.
// Legend: x [planes, H, W], y and dy [planes, Ho, Wo], dx [planes, H, W].
// Backward kernels gather: one thread per input pixel adds the dy of every window that covers
// it, in a fixed order, so results are the same every run and no atomics are needed (where
// windows tile the image, `max_pool_backward_tiled` writes each window's cells instead: no cell
// has two windows). Max pooling recomputes each window's argmax from x rather than storing
// it: the first maximum in row-major window order wins, and a NaN wins over numbers, as in
// PyTorch.
// GRAD_MASK (max pooling's backward): x is the output of an activation ACT fused into the layer
// before (a Conv2d or Linear epilogue), and dx is also multiplied by ACT'(x), its derivative
// read off its output (activation.wgsl's `activate_grad`), as the activation's own backward
// would have done: the fusion pass lets a ReLU before a max pool ride in the product.
// Bindings: 0 params (uniform), 1 x (read), 2 dy (read; x again in forward), 3 out (rw: y or dx).
// Grid: grid_1d(len(out), 256); `max_pool_backward_tiled` grid_1d(len(dy), 256).

struct PoolParams {
    planes: u32,
    // The fused activation's slope (GRAD_MASK).
    slope: f32,
    _pad1: u32,
    _pad2: u32,
}

// The window's geometry: window.wgsl (prepended).
override GRAD_MASK: bool = false;
override ACT: u32 = 0u;

@group(0) @binding(0) var<uniform> params: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// A max pooling gradient g reaching x[at], times the fused activation's derivative there.
fn masked(g: f32, at: u32) -> f32 {
    if !GRAD_MASK { return g; }
    return g * activate_grad(x[at], ACT, params.slope);
}

fn thread_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * 256u + gid.x;
}

// The in-bounds rows (or columns) [x, y) of the window starting at padded coordinate `start`.
fn window(start: u32, pad: u32, kernel: u32, size: u32) -> vec2<u32> {
    let lo = max(start, pad) - pad;
    let hi = min(start + kernel, size + pad) - pad;
    return vec2<u32>(lo, max(hi, lo));
}

fn rows_of(oy: u32) -> vec2<u32> { return window(oy * STRIDE_H, PAD_H, KERNEL_H, HEIGHT); }
fn cols_of(ox: u32) -> vec2<u32> { return window(ox * STRIDE_W, PAD_W, KERNEL_W, WIDTH); }

// The windows (first, last + 1) along one axis that cover input coordinate i.
fn covering(i: u32, pad: u32, kernel: u32, stride: u32, outs: u32) -> vec2<u32> {
    let padded = i + pad;
    var first = 0u;
    if padded + 1u > kernel { first = (padded + 1u - kernel + stride - 1u) / stride; }
    let last = min(padded / stride + 1u, outs);
    return vec2<u32>(first, max(last, first));
}

// Index in the plane of the max of window (oy, ox) of plane `base`.
fn argmax(base: u32, oy: u32, ox: u32) -> u32 {
    let rows = rows_of(oy);
    let cols = cols_of(ox);
    var best = rows.x * WIDTH + cols.x;
    var best_value = x[base + best];
    for (var iy = rows.x; iy < rows.y; iy++) {
        for (var ix = cols.x; ix < cols.y; ix++) {
            let v = x[base + iy * WIDTH + ix];
            if v > best_value || (v != v && best_value == best_value) {
                best = iy * WIDTH + ix;
                best_value = v;
            }
        }
    }
    return best;
}

@compute @workgroup_size(256)
fn max_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    let per_plane = OUT_HEIGHT * OUT_WIDTH;
    if i >= params.planes * per_plane { return; }
    let base = (i / per_plane) * HEIGHT * WIDTH;
    let p = i % per_plane;
    out[i] = x[base + argmax(base, p / OUT_WIDTH, p % OUT_WIDTH)];
}

@compute @workgroup_size(256)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    let plane = HEIGHT * WIDTH;
    if i >= params.planes * plane { return; }
    let base = (i / plane) * plane;
    let q = i % plane;
    let ys = covering(q / WIDTH, PAD_H, KERNEL_H, STRIDE_H, OUT_HEIGHT);
    let xs = covering(q % WIDTH, PAD_W, KERNEL_W, STRIDE_W, OUT_WIDTH);
    let dy_base = (i / plane) * OUT_HEIGHT * OUT_WIDTH;
    var g = 0.0;
    for (var oy = ys.x; oy < ys.y; oy++) {
        for (var ox = xs.x; ox < xs.y; ox++) {
            if argmax(base, oy, ox) == q { g += dy[dy_base + oy * OUT_WIDTH + ox]; }
        }
    }
    out[i] = masked(g, i);
}

// Max pooling's backward where the windows tile the image (stride = kernel, no padding): one
// thread per window (grid_1d(len(dy), 256)) writes each of its cells of dx, dy at the first
// maximum and 0 elsewhere, and the last window of a row or column of windows also zeroes the
// cells past it, which no window covers. A third of the gather's loads and stores per cell.
@compute @workgroup_size(256)
fn max_pool_backward_tiled(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    let per_plane = OUT_HEIGHT * OUT_WIDTH;
    if i >= params.planes * per_plane { return; }
    let base = (i / per_plane) * HEIGHT * WIDTH;
    let oy = (i % per_plane) / OUT_WIDTH;
    let ox = (i % per_plane) % OUT_WIDTH;
    let best = argmax(base, oy, ox);
    let g = masked(dy[i], base + best);
    let y0 = oy * KERNEL_H;
    let x0 = ox * KERNEL_W;
    let y1 = select(y0 + KERNEL_H, HEIGHT, oy + 1u == OUT_HEIGHT);
    let x1 = select(x0 + KERNEL_W, WIDTH, ox + 1u == OUT_WIDTH);
    for (var iy = y0; iy < y1; iy++) {
        for (var ix = x0; ix < x1; ix++) {
            let q = iy * WIDTH + ix;
            out[base + q] = select(0.0, g, q == best);
        }
    }
}

@compute @workgroup_size(256)
fn avg_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    let per_plane = OUT_HEIGHT * OUT_WIDTH;
    if i >= params.planes * per_plane { return; }
    let base = (i / per_plane) * HEIGHT * WIDTH;
    let p = i % per_plane;
    let rows = rows_of(p / OUT_WIDTH);
    let cols = cols_of(p % OUT_WIDTH);
    var sum = 0.0;
    for (var iy = rows.x; iy < rows.y; iy++) {
        for (var ix = cols.x; ix < cols.y; ix++) { sum += x[base + iy * WIDTH + ix]; }
    }
    out[i] = sum / f32(KERNEL_H * KERNEL_W);
}

@compute @workgroup_size(256)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    let plane = HEIGHT * WIDTH;
    if i >= params.planes * plane { return; }
    let q = i % plane;
    let ys = covering(q / WIDTH, PAD_H, KERNEL_H, STRIDE_H, OUT_HEIGHT);
    let xs = covering(q % WIDTH, PAD_W, KERNEL_W, STRIDE_W, OUT_WIDTH);
    let dy_base = (i / plane) * OUT_HEIGHT * OUT_WIDTH;
    var g = 0.0;
    for (var oy = ys.x; oy < ys.y; oy++) {
        for (var ox = xs.x; ox < xs.y; ox++) { g += dy[dy_base + oy * OUT_WIDTH + ox]; }
    }
    out[i] = g / f32(KERNEL_H * KERNEL_W);
}
