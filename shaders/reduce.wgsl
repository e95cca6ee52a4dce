// Deterministic reductions: a fixed tree in workgroup memory, then (for global sums) a second
// pass across workgroups. WGSL has no float atomics, and an atomic order would make results
// depend on scheduling.
//   rows, cols: the input is a rows×cols row-major matrix (n = rows·cols for global sums).
// Bindings: 0 params (uniform), 1 inp (read), 2 out (read_write).
// Grids: sum_rows: ceil(cols / 64) groups of 64×4; sum_cols, argmax_rows: one group of 256 per
// row (spread over x and y); sum_partials, sum_squares_partials: ceil(n / 4096) groups of 256;
// clip_coefficient: one group.

struct ReduceParams {
    rows: u32,
    cols: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Only `copy_to_step_slot` binds this: the step's slot in a loss ring.
@group(0) @binding(3) var<uniform> step: StepParams;

var<workgroup> partial: array<f32, 256>;

// Sums partial[0..256) into partial[0]; every thread of the workgroup must call it.
fn tree_sum(lane: u32) {
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if lane < stride { partial[lane] += partial[lane + stride]; }
    }
    workgroupBarrier();
}

fn group_index(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wid.y * groups.x + wid.x;
}

// out[c] = scale · Σ_r inp[r, c]   (bias gradients: db = Σ_batch dy)
@compute @workgroup_size(64, 4)
fn sum_rows(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let col = group_index(wid, groups) * 64u + lid.x;
    var sum = 0.0;
    if col < params.cols {
        for (var r = lid.y; r < params.rows; r += 4u) { sum += inp[r * params.cols + col]; }
    }
    partial[lid.y * 64u + lid.x] = sum;
    workgroupBarrier();
    if lid.y == 0u && col < params.cols {
        let total = (partial[lid.x] + partial[64u + lid.x]) + (partial[128u + lid.x] + partial[192u + lid.x]);
        out[col] = params.scale * total;
    }
}

// out[r] = scale · Σ_c inp[r, c]   (also the second pass of a global sum, with rows = 1)
@compute @workgroup_size(256)
fn sum_cols(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = group_index(wid, groups);
    var sum = 0.0;
    if row < params.rows {
        for (var c = lid.x; c < params.cols; c += 256u) { sum += inp[row * params.cols + c]; }
    }
    partial[lid.x] = sum;
    tree_sum(lid.x);
    if lid.x == 0u && row < params.rows { out[row] = params.scale * partial[0]; }
}

const CHUNK: u32 = 4096u;

fn chunk_sum(lane: u32, group: u32, square: bool) {
    let n = params.rows * params.cols;
    let start = group * CHUNK;
    var sum = 0.0;
    for (var i = start + lane; i < min(start + CHUNK, n); i += 256u) {
        let v = inp[i];
        sum += select(v, v * v, square);
    }
    partial[lane] = sum;
    tree_sum(lane);
    if lane == 0u { out[group] = partial[0]; }
}

// out[g] = Σ of chunk g (4096 elements) of inp: the first pass of a global sum.
@compute @workgroup_size(256)
fn sum_partials(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    chunk_sum(lid.x, group_index(wid, groups), false);
}

// out[g] = Σ of squares over chunk g: the first pass of a global sum of squares.
@compute @workgroup_size(256)
fn sum_squares_partials(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    chunk_sum(lid.x, group_index(wid, groups), true);
}

// From partial sums of squares: out[0] = ‖g‖ and out[1] = min(1, scale / (‖g‖ + 1e-6)),
// torch.nn.utils.clip_grad_norm_'s coefficient with scale = max_norm.
@compute @workgroup_size(256)
fn clip_coefficient(@builtin(local_invocation_id) lid: vec3<u32>) {
    var sum = 0.0;
    for (var c = lid.x; c < params.cols; c += 256u) { sum += inp[c]; }
    partial[lid.x] = sum;
    tree_sum(lid.x);
    if lid.x == 0u {
        let norm = sqrt(partial[0]);
        out[0] = norm;
        out[1] = min(1.0, params.scale / (norm + 1e-6));
    }
}

// out[step.slot] = inp[0]: a step's loss into its slot of the loss ring, inside the pass (a
// buffer copy would end the pass, and a pass costs far more than a dispatch).
@compute @workgroup_size(1)
fn copy_to_step_slot() {
    out[step.slot] = inp[0];
}

// out[r] = the first index of the largest element of row r, as f32 (exact below 2^24).

@compute @workgroup_size(256)
fn argmax_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.y * groups.x * 256u + gid.x;
    if row >= params.rows { return; }
    var best = 0u;
    var best_value = inp[row * params.cols];
    for (var c = 1u; c < params.cols; c++) {
        let v = inp[row * params.cols + c];
        if v > best_value { best = c; best_value = v; }
    }
    out[row] = f32(best);
}
