// Fused causal self-attention: scores, causal mask, online softmax and the weighted sum in
// one kernel per direction, so the T × T matrix of a head never exists in memory
// (FlashAttention's recurrence; Dao et al. 2022, 2023).
// qkv is [B, T, 3C] as c_attn writes it: head h's query at columns h·D.., its key at
// C + h·D.., its value at 2C + h·D.. (C = H·D). out and dout are [B, T, C] (heads side by
// side, as the composed version's transpose and reshape leave them). stats is [2, B, H, T]:
// each query row's logsumexp (forward), then Δ_i = dout_i · out_i (backward).
// The launcher prepends HEAD_DIM_MAX (32 or 64) and TILE (32 or 16): tiles of TILE rows of
// HEAD_DIM_MAX columns, zero past the head dimension or the sequence, are staged in
// workgroup memory, and each of the 64 threads owns TILE/TPR entries
// of a TILE × TILE score tile and HEAD_DIM_MAX/TPR columns of one output row, so every
// product is shared by the whole workgroup and every loop has a constant bound.
// Binding table, one access mode per binding:
//   | binding | attention_forward | attention_backward_query | attention_backward_key_value |
//   | 0       | params            | params                   | params                       |
//   | 1       | qkv               | qkv                      | qkv                          |
//   | 2       | (qkv)             | out                      | (qkv)                        |
//   | 3       | (qkv)             | dout                     | dout                         |
//   | 4 rw    | out               | dqkv (query columns)     | dqkv (key and value columns) |
//   | 5 rw    | stats (logsumexp) | stats (reads L, writes Δ)| stats                        |
// Grid: (ceil(T / TILE), B·H): one tile of query rows (forward, backward_query) or of key
// rows (backward_key_value) per workgroup; the other side's tiles are visited in index
// order and every sum runs in a fixed order, so every run gives the same bits.

struct AttentionParams {
    batch: u32,
    seq: u32,
    heads: u32,
    head_dim: u32,
    // 1 / √D
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const THREADS: u32 = 64u;
// Threads per tile row, score entries and output columns per thread.
const TPR: u32 = THREADS / TILE;
const ENTRIES: u32 = TILE / TPR;
const COLUMNS: u32 = HEAD_DIM_MAX / TPR;
// Below every score that can occur, and finite: the compiler may assume floats are.
const LOWEST: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> params: AttentionParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> out_read: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> result: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

// Row tiles: `own` holds this workgroup's rows (queries, or keys), `other` the other side's,
// `extra` a second tile of the workgroup's side (dout, or values; backward only), `scores`
// one TILE × TILE tile of scores, probabilities or their gradients. Each entry point uses
// at most 16 KiB of them, every adapter's minimum.
var<workgroup> own: array<f32, TILE * HEAD_DIM_MAX>;
var<workgroup> other: array<f32, TILE * HEAD_DIM_MAX>;
var<workgroup> extra: array<f32, TILE * HEAD_DIM_MAX>;
var<workgroup> scores: array<f32, TILE * TILE>;
// The forward's running maximum, denominator and rescale factor per query row.
var<workgroup> row_max: array<f32, TILE>;
var<workgroup> row_sum: array<f32, TILE>;
var<workgroup> row_rescale: array<f32, TILE>;

fn width() -> u32 {
    return params.heads * params.head_dim;
}

// Where row t of sequence b starts in qkv, and in out and dout.
fn qkv_row(b: u32, t: u32) -> u32 {
    return (b * params.seq + t) * 3u * width();
}

fn out_row(b: u32, t: u32) -> u32 {
    return (b * params.seq + t) * width();
}

// Element e of a staged tile: row e / HEAD_DIM_MAX of the tile starting at sequence row t0.
// `source` 0..2 is the query, key or value of head h (times `factor`), 3 is dout.
fn staged(source: u32, b: u32, h: u32, t0: u32, e: u32, factor: f32) -> f32 {
    let t = t0 + e / HEAD_DIM_MAX;
    let d = e % HEAD_DIM_MAX;
    if t >= params.seq || d >= params.head_dim { return 0.0; }
    if source == 3u { return dout[out_row(b, t) + h * params.head_dim + d]; }
    return factor * qkv[qkv_row(b, t) + source * width() + h * params.head_dim + d];
}

fn stage_own(source: u32, b: u32, h: u32, t0: u32, lane: u32, factor: f32) {
    for (var e = lane; e < TILE * HEAD_DIM_MAX; e += THREADS) { own[e] = staged(source, b, h, t0, e, factor); }
}

fn stage_other(source: u32, b: u32, h: u32, t0: u32, lane: u32) {
    for (var e = lane; e < TILE * HEAD_DIM_MAX; e += THREADS) { other[e] = staged(source, b, h, t0, e, 1.0); }
}

fn stage_extra(source: u32, b: u32, h: u32, t0: u32, lane: u32) {
    for (var e = lane; e < TILE * HEAD_DIM_MAX; e += THREADS) { extra[e] = staged(source, b, h, t0, e, 1.0); }
}

// This thread's entries of own · otherᵀ: row `row` against rows row_part + k·TPR of other.
fn own_times_other(row: u32, part: u32) -> array<f32, ENTRIES> {
    var acc: array<f32, ENTRIES>;
    for (var d = 0u; d < HEAD_DIM_MAX; d++) {
        let a = own[row * HEAD_DIM_MAX + d];
        for (var k = 0u; k < ENTRIES; k++) { acc[k] += a * other[(part + k * TPR) * HEAD_DIM_MAX + d]; }
    }
    return acc;
}

// y_i = Σ_{j ≤ i} softmax_j(q_i·k_j / √D) v_j, one tile of keys at a time: the running
// maximum and denominator of each row rescale its accumulator whenever a tile raises the
// maximum.
@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let i0 = wg.x * TILE;
    let row = lane / TPR;
    let part = lane % TPR;
    stage_own(0u, b, h, i0, lane, params.scale);
    if lane < TILE {
        row_max[lane] = LOWEST;
        row_sum[lane] = 0.0;
    }
    var acc: array<f32, COLUMNS>;
    for (var j0 = 0u; j0 <= i0; j0 += TILE) {
        workgroupBarrier();
        stage_other(1u, b, h, j0, lane);
        workgroupBarrier();
        let s = own_times_other(row, part);
        for (var k = 0u; k < ENTRIES; k++) {
            let j = j0 + part + k * TPR;
            scores[row * TILE + part + k * TPR] = select(s[k], LOWEST, j > i0 + row);
        }
        workgroupBarrier();
        // Each row's statistics, one thread a row, while all stage the values where the keys
        // were.
        if lane < TILE {
            var tile_max = LOWEST;
            for (var c = 0u; c < TILE; c++) { tile_max = max(tile_max, scores[lane * TILE + c]); }
            let m = max(row_max[lane], tile_max);
            let rescale = exp(row_max[lane] - m);
            var sum = 0.0;
            for (var c = 0u; c < TILE; c++) {
                let p = exp(scores[lane * TILE + c] - m);
                scores[lane * TILE + c] = p;
                sum += p;
            }
            row_sum[lane] = row_sum[lane] * rescale + sum;
            row_max[lane] = m;
            row_rescale[lane] = rescale;
        }
        stage_other(2u, b, h, j0, lane);
        workgroupBarrier();
        let rescale = row_rescale[row];
        for (var k = 0u; k < COLUMNS; k++) { acc[k] *= rescale; }
        for (var c = 0u; c < TILE; c++) {
            let p = scores[row * TILE + c];
            for (var k = 0u; k < COLUMNS; k++) { acc[k] += p * other[c * HEAD_DIM_MAX + part + k * TPR]; }
        }
    }
    let i = i0 + row;
    if i >= params.seq { return; }
    let base = out_row(b, i) + h * params.head_dim;
    let norm = 1.0 / row_sum[row];
    for (var k = 0u; k < COLUMNS; k++) {
        let d = part + k * TPR;
        if d < params.head_dim { result[base + d] = acc[k] * norm; }
    }
    if part == 0u { stats[wg.y * params.seq + i] = row_max[row] + log(row_sum[row]); }
}

// ∂L/∂q_i = (1/√D) Σ_{j ≤ i} P_ij (dout_i·v_j − Δ_i) k_j with P_ij = exp(q_i·k_j/√D − L_i)
// recomputed from the forward's logsumexp; also writes Δ_i for backward_key_value.
// own = queries (scaled), extra = dout, other = keys, then values, then keys again.
@compute @workgroup_size(64)
fn attention_backward_query(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let i0 = wg.x * TILE;
    let row = lane / TPR;
    let part = lane % TPR;
    let i = i0 + row;
    let in_range = i < params.seq;
    stage_own(0u, b, h, i0, lane, params.scale);
    stage_extra(3u, b, h, i0, lane);
    workgroupBarrier();
    // Δ_i and L_i of this thread's row (each of its TPR threads computes them alike).
    var delta = 0.0;
    var lse = 0.0;
    if in_range {
        let base = out_row(b, i) + h * params.head_dim;
        for (var d = 0u; d < params.head_dim; d++) { delta += extra[row * HEAD_DIM_MAX + d] * out_read[base + d]; }
        lse = stats[wg.y * params.seq + i];
    }
    var dq: array<f32, COLUMNS>;
    for (var j0 = 0u; j0 <= i0; j0 += TILE) {
        workgroupBarrier();
        stage_other(1u, b, h, j0, lane);
        workgroupBarrier();
        let s = own_times_other(row, part);
        workgroupBarrier();
        stage_other(2u, b, h, j0, lane);
        workgroupBarrier();
        // dP_ij = dout_i · v_j for this thread's entries, then dS = P ∘ (dP − Δ).
        var dp: array<f32, ENTRIES>;
        for (var d = 0u; d < HEAD_DIM_MAX; d++) {
            let g = extra[row * HEAD_DIM_MAX + d];
            for (var k = 0u; k < ENTRIES; k++) { dp[k] += g * other[(part + k * TPR) * HEAD_DIM_MAX + d]; }
        }
        for (var k = 0u; k < ENTRIES; k++) {
            let j = j0 + part + k * TPR;
            let p = select(exp(s[k] - lse), 0.0, j > i || !in_range);
            scores[row * TILE + part + k * TPR] = p * (dp[k] - delta);
        }
        workgroupBarrier();
        stage_other(1u, b, h, j0, lane);
        workgroupBarrier();
        for (var c = 0u; c < TILE; c++) {
            let ds = scores[row * TILE + c];
            for (var k = 0u; k < COLUMNS; k++) { dq[k] += ds * other[c * HEAD_DIM_MAX + part + k * TPR]; }
        }
    }
    if !in_range { return; }
    let base = qkv_row(b, i) + h * params.head_dim;
    for (var k = 0u; k < COLUMNS; k++) {
        let d = part + k * TPR;
        if d < params.head_dim { result[base + d] = dq[k] * params.scale; }
    }
    if part == 0u { stats[(params.batch * params.heads + wg.y) * params.seq + i] = delta; }
}

// ∂L/∂v_j = Σ_{i ≥ j} P_ij dout_i and ∂L/∂k_j = (1/√D) Σ_{i ≥ j} P_ij (dout_i·v_j − Δ_i) q_i,
// one tile of query rows at a time. own = keys (scaled), extra = values, other = queries,
// then dout, then queries again.
@compute @workgroup_size(64)
fn attention_backward_key_value(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let j0 = wg.x * TILE;
    let row = lane / TPR;
    let part = lane % TPR;
    let j = j0 + row;
    stage_own(1u, b, h, j0, lane, params.scale);
    stage_extra(2u, b, h, j0, lane);
    let rows = params.batch * params.heads * params.seq;
    var dk: array<f32, COLUMNS>;
    var dv: array<f32, COLUMNS>;
    for (var i0 = j0; i0 < params.seq; i0 += TILE) {
        workgroupBarrier();
        stage_other(0u, b, h, i0, lane);
        workgroupBarrier();
        // P_ij for this thread's entries (key row j against query rows i), zero where masked.
        let s = own_times_other(row, part);
        var p: array<f32, ENTRIES>;
        for (var k = 0u; k < ENTRIES; k++) {
            let i = i0 + part + k * TPR;
            if i >= j && i < params.seq && j < params.seq {
                p[k] = exp(s[k] - stats[wg.y * params.seq + i]);
            }
        }
        workgroupBarrier();
        stage_other(3u, b, h, i0, lane);
        workgroupBarrier();
        // dV_j += Σ_i P_ij dout_i; dP_ij = dout_i · v_j; dS = P ∘ (dP − Δ_i).
        for (var k = 0u; k < ENTRIES; k++) { scores[row * TILE + part + k * TPR] = p[k]; }
        var dp: array<f32, ENTRIES>;
        for (var d = 0u; d < HEAD_DIM_MAX; d++) {
            let v = extra[row * HEAD_DIM_MAX + d];
            for (var k = 0u; k < ENTRIES; k++) { dp[k] += v * other[(part + k * TPR) * HEAD_DIM_MAX + d]; }
        }
        workgroupBarrier();
        for (var c = 0u; c < TILE; c++) {
            let pc = scores[row * TILE + c];
            for (var k = 0u; k < COLUMNS; k++) { dv[k] += pc * other[c * HEAD_DIM_MAX + part + k * TPR]; }
        }
        workgroupBarrier();
        for (var k = 0u; k < ENTRIES; k++) {
            let i = min(i0 + part + k * TPR, params.seq - 1u);
            scores[row * TILE + part + k * TPR] = p[k] * (dp[k] - stats[rows + wg.y * params.seq + i]);
        }
        stage_other(0u, b, h, i0, lane);
        workgroupBarrier();
        for (var c = 0u; c < TILE; c++) {
            let ds = scores[row * TILE + c];
            for (var k = 0u; k < COLUMNS; k++) { dk[k] += ds * other[c * HEAD_DIM_MAX + part + k * TPR]; }
        }
    }
    if j >= params.seq { return; }
    let base = qkv_row(b, j) + h * params.head_dim;
    for (var k = 0u; k < COLUMNS; k++) {
        let d = part + k * TPR;
        if d < params.head_dim {
            result[base + width() + d] = dk[k] * params.scale;
            result[base + 2u * width() + d] = dv[k];
        }
    }
}
