// Fused causal self-attention: scores, causal mask, online softmax and the weighted sum in
// one kernel per direction, so the T × T matrix of a head never exists in memory
// (FlashAttention's recurrence; Dao et al. 2022, 2023).
// qkv is [B, T, 3C] as c_attn writes it: head h's query at columns h·D.., its key at
// C + h·D.., its value at 2C + h·D.. (C = H·D). out and dout are [B, T, C] (heads side by
// side, as the composed version's transpose and reshape leave them). stats is [2, B, H, T]:
// each query row's logsumexp (forward), then Δ_i = dout_i · out_i (backward).
// The launcher prepends HEAD_DIM_MAX (32 or 64) and TILE (32 or 16). Tiles of TILE rows of
// HEAD_DIM_MAX columns, zero past the head dimension or the sequence, are staged in
// workgroup memory (16 KiB at most). Thread `lane` of 64 owns row lane % TILE of its
// workgroup's tile and part lane / TILE of the other side: ENTRIES consecutive entries of a
// score row and 16 consecutive columns of an output row, held in named vec4 registers
// (arrays of accumulators spill on some drivers). A row block's threads read neighbouring
// words of the transposed own tile and one shared vec4 of the other tile.
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
// Parts per row, score entries per thread (16 or 4: four or one vec4), vec4s per tile row.
const PARTS: u32 = THREADS / TILE;
const ENTRIES: u32 = TILE / PARTS;
const ROW_VECS: u32 = HEAD_DIM_MAX / 4u;
// Below every score that can occur, and finite: the compiler may assume floats are.
const LOWEST: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> params: AttentionParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> out_read: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> result: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

// own: this workgroup's rows (queries, or keys) stored [d][row]; extra: a second tile of
// them (dout, or values; backward only), also [d][row]; other: the other side's rows, as
// [row][d] (`rows` layout) or [d][row] (`columns` layout) as the next product needs;
// scores: one TILE × TILE tile of scores, probabilities or their gradients, [entry][row].
var<workgroup> own: array<f32, TILE * HEAD_DIM_MAX>;
var<workgroup> extra: array<f32, TILE * HEAD_DIM_MAX>;
var<workgroup> other: array<vec4<f32>, TILE * ROW_VECS>;
var<workgroup> scores: array<f32, TILE * TILE>;
// The forward's running maximum, denominator and rescale factor per query row.
var<workgroup> row_max: array<f32, TILE>;
var<workgroup> row_sum: array<f32, TILE>;
var<workgroup> row_rescale: array<f32, TILE>;

// Sixteen values in registers: a thread's score entries or output columns.
struct Block {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
}

fn width() -> u32 {
    return params.heads * params.head_dim;
}

fn qkv_row(b: u32, t: u32) -> u32 {
    return (b * params.seq + t) * 3u * width();
}

fn out_row(b: u32, t: u32) -> u32 {
    return (b * params.seq + t) * width();
}

// Element e (row e / HEAD_DIM_MAX, column e % HEAD_DIM_MAX) of the tile of sequence rows
// t0.. of `source`: 0..2 the query, key or value of head h times `factor`, 3 dout.
fn staged(source: u32, b: u32, h: u32, t0: u32, e: u32, factor: f32) -> f32 {
    let t = t0 + e / HEAD_DIM_MAX;
    let d = e % HEAD_DIM_MAX;
    if t >= params.seq || d >= params.head_dim { return 0.0; }
    if source == 3u { return dout[out_row(b, t) + h * params.head_dim + d]; }
    return factor * qkv[qkv_row(b, t) + source * width() + h * params.head_dim + d];
}

// Where element e goes in a [d][row] tile.
fn transposed(e: u32) -> u32 {
    return (e % HEAD_DIM_MAX) * TILE + e / HEAD_DIM_MAX;
}

fn stage_own(source: u32, b: u32, h: u32, t0: u32, lane: u32, factor: f32) {
    for (var e = lane; e < TILE * HEAD_DIM_MAX; e += THREADS) { own[transposed(e)] = staged(source, b, h, t0, e, factor); }
}

fn stage_extra(source: u32, b: u32, h: u32, t0: u32, lane: u32) {
    for (var e = lane; e < TILE * HEAD_DIM_MAX; e += THREADS) { extra[transposed(e)] = staged(source, b, h, t0, e, 1.0); }
}

// other as [row][d]: the right operand of (scores) · other.
fn stage_rows(source: u32, b: u32, h: u32, t0: u32, lane: u32) {
    for (var e = lane; e < TILE * HEAD_DIM_MAX; e += THREADS) { other[e / 4u][e % 4u] = staged(source, b, h, t0, e, 1.0); }
}

// other as [d][row]: the right operand of own · otherᵀ.
fn stage_columns(source: u32, b: u32, h: u32, t0: u32, lane: u32) {
    for (var e = lane; e < TILE * HEAD_DIM_MAX; e += THREADS) {
        let at = transposed(e);
        other[at / 4u][at % 4u] = staged(source, b, h, t0, e, 1.0);
    }
}

// This thread's entries of `tile` · otherᵀ, tile ([d][row], own or extra) row `row` against
// other rows part·ENTRIES.. (other in columns layout).
fn times_other_t(from_extra: bool, row: u32, part: u32) -> Block {
    var r: Block;
    for (var d = 0u; d < HEAD_DIM_MAX; d++) {
        var x = own[d * TILE + row];
        if from_extra { x = extra[d * TILE + row]; }
        let at = (d * TILE + part * ENTRIES) / 4u;
        r.a += x * other[at];
        if ENTRIES > 4u {
            r.b += x * other[at + 1u];
            r.c += x * other[at + 2u];
            r.d += x * other[at + 3u];
        }
    }
    return r;
}

// This thread's 16 output columns part·16.. of scores(row, :) · other (other in rows layout),
// added to `acc`.
fn scores_times_other(acc: Block, row: u32, part: u32) -> Block {
    var r = acc;
    for (var c = 0u; c < TILE; c++) {
        let p = scores[c * TILE + row];
        let at = c * ROW_VECS + part * 4u;
        r.a += p * other[at];
        r.b += p * other[at + 1u];
        r.c += p * other[at + 2u];
        r.d += p * other[at + 3u];
    }
    return r;
}

// Entry k (0..16) of a block.
fn entry(v: Block, k: u32) -> f32 {
    switch k / 4u {
        case 0u: { return v.a[k % 4u]; }
        case 1u: { return v.b[k % 4u]; }
        case 2u: { return v.c[k % 4u]; }
        default: { return v.d[k % 4u]; }
    }
}

fn put_scores(v: Block, row: u32, part: u32) {
    for (var k = 0u; k < ENTRIES; k++) { scores[(part * ENTRIES + k) * TILE + row] = entry(v, k); }
}

fn scale_block(v: Block, s: f32) -> Block {
    return Block(v.a * s, v.b * s, v.c * s, v.d * s);
}

// Writes columns part·16.. of `v` to `base` + column, those inside the head.
fn store_columns(v: Block, base: u32, part: u32) {
    for (var k = 0u; k < 16u; k++) {
        let d = part * 16u + k;
        if d < params.head_dim { result[base + d] = entry(v, k); }
    }
}

// Entries whose column index (first + k) is beyond `last`, or all when `dead`, set to `to`.
fn mask_after(v: Block, first: u32, last: u32, dead: bool, to: f32) -> Block {
    let k = vec4<u32>(0u, 1u, 2u, 3u) + first;
    let t = vec4<f32>(to);
    return Block(
        select(v.a, t, (k > vec4<u32>(last)) | vec4<bool>(dead)),
        select(v.b, t, (k + 4u > vec4<u32>(last)) | vec4<bool>(dead)),
        select(v.c, t, (k + 8u > vec4<u32>(last)) | vec4<bool>(dead)),
        select(v.d, t, (k + 12u > vec4<u32>(last)) | vec4<bool>(dead)),
    );
}

// y_i = Σ_{j ≤ i} softmax_j(q_i·k_j / √D) v_j, one tile of keys at a time: the running
// maximum and denominator of each row rescale its accumulator whenever a tile raises the
// maximum.
@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let i0 = wg.x * TILE;
    let row = lane % TILE;
    let part = lane / TILE;
    stage_own(0u, b, h, i0, lane, params.scale);
    if lane < TILE {
        row_max[lane] = LOWEST;
        row_sum[lane] = 0.0;
    }
    var acc: Block;
    for (var j0 = 0u; j0 <= i0; j0 += TILE) {
        workgroupBarrier();
        stage_columns(1u, b, h, j0, lane);
        workgroupBarrier();
        // Keys after the query are masked.
        let s = mask_after(times_other_t(false, row, part), j0 + part * ENTRIES, i0 + row, false, LOWEST);
        put_scores(s, row, part);
        workgroupBarrier();
        // Each row's statistics, one thread a row, while all stage the values where the keys
        // were.
        if lane < TILE {
            var tile_max = LOWEST;
            for (var c = 0u; c < TILE; c++) { tile_max = max(tile_max, scores[c * TILE + lane]); }
            let m = max(row_max[lane], tile_max);
            let rescale = exp(row_max[lane] - m);
            var sum = 0.0;
            for (var c = 0u; c < TILE; c++) {
                let p = exp(scores[c * TILE + lane] - m);
                scores[c * TILE + lane] = p;
                sum += p;
            }
            row_sum[lane] = row_sum[lane] * rescale + sum;
            row_max[lane] = m;
            row_rescale[lane] = rescale;
        }
        stage_rows(2u, b, h, j0, lane);
        workgroupBarrier();
        acc = scores_times_other(scale_block(acc, row_rescale[row]), row, part);
    }
    let i = i0 + row;
    if i >= params.seq { return; }
    store_columns(scale_block(acc, 1.0 / row_sum[row]), out_row(b, i) + h * params.head_dim, part);
    if part == 0u { stats[wg.y * params.seq + i] = row_max[row] + log(row_sum[row]); }
}

// P_ij ∘ (dP_ij − Δ) per entry, with P = exp(s − L).
fn score_gradient(s: Block, dp: Block, lse: f32, delta: f32) -> Block {
    let l = vec4<f32>(lse);
    let dl = vec4<f32>(delta);
    return Block(
        exp(s.a - l) * (dp.a - dl),
        exp(s.b - l) * (dp.b - dl),
        exp(s.c - l) * (dp.c - dl),
        exp(s.d - l) * (dp.d - dl),
    );
}

// ∂L/∂q_i = (1/√D) Σ_{j ≤ i} P_ij (dout_i·v_j − Δ_i) k_j with P_ij = exp(q_i·k_j/√D − L_i)
// recomputed from the forward's logsumexp; also writes Δ_i for backward_key_value.
// own = queries (scaled), extra = dout, other = keys, then values, then keys again.
@compute @workgroup_size(64)
fn attention_backward_query(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let i0 = wg.x * TILE;
    let row = lane % TILE;
    let part = lane / TILE;
    let i = i0 + row;
    let in_range = i < params.seq;
    stage_own(0u, b, h, i0, lane, params.scale);
    stage_extra(3u, b, h, i0, lane);
    workgroupBarrier();
    // Δ_i and L_i of this thread's row (each of its threads computes them alike).
    var delta = 0.0;
    var lse = 0.0;
    if in_range {
        let base = out_row(b, i) + h * params.head_dim;
        for (var d = 0u; d < params.head_dim; d++) { delta += extra[d * TILE + row] * out_read[base + d]; }
        lse = stats[wg.y * params.seq + i];
    }
    var dq: Block;
    for (var j0 = 0u; j0 <= i0; j0 += TILE) {
        workgroupBarrier();
        stage_columns(1u, b, h, j0, lane);
        workgroupBarrier();
        let s = times_other_t(false, row, part);
        workgroupBarrier();
        stage_columns(2u, b, h, j0, lane);
        workgroupBarrier();
        // dP_ij = dout_i · v_j, then dS = P ∘ (dP − Δ), zero after the query.
        let dp = times_other_t(true, row, part);
        let ds = mask_after(score_gradient(s, dp, lse, delta), j0 + part * ENTRIES, i, !in_range, 0.0);
        put_scores(ds, row, part);
        workgroupBarrier();
        stage_rows(1u, b, h, j0, lane);
        workgroupBarrier();
        dq = scores_times_other(dq, row, part);
    }
    if !in_range { return; }
    store_columns(scale_block(dq, params.scale), qkv_row(b, i) + h * params.head_dim, part);
    if part == 0u { stats[(params.batch * params.heads + wg.y) * params.seq + i] = delta; }
}

// ∂L/∂v_j = Σ_{i ≥ j} P_ij dout_i and ∂L/∂k_j = (1/√D) Σ_{i ≥ j} P_ij (dout_i·v_j − Δ_i) q_i,
// one tile of query rows at a time. own = keys (scaled), extra = values; other = queries
// (columns), dout (rows, then columns), queries (rows).
@compute @workgroup_size(64)
fn attention_backward_key_value(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let j0 = wg.x * TILE;
    let row = lane % TILE;
    let part = lane / TILE;
    let j = j0 + row;
    stage_own(1u, b, h, j0, lane, params.scale);
    stage_extra(2u, b, h, j0, lane);
    let rows = params.batch * params.heads * params.seq;
    var dk: Block;
    var dv: Block;
    for (var i0 = j0; i0 < params.seq; i0 += TILE) {
        workgroupBarrier();
        stage_columns(0u, b, h, i0, lane);
        workgroupBarrier();
        // P_ij for this thread's entries (key row j against query rows i ≥ j), zero where
        // masked: the first query of the entries is i0 + part·ENTRIES.
        let first = i0 + part * ENTRIES;
        let s = times_other_t(false, row, part);
        var lse: Block;
        var delta: Block;
        for (var k = 0u; k < ENTRIES; k++) {
            let at = wg.y * params.seq + min(first + k, params.seq - 1u);
            switch k / 4u {
                case 0u: { lse.a[k % 4u] = stats[at]; delta.a[k % 4u] = stats[rows + at]; }
                case 1u: { lse.b[k % 4u] = stats[at]; delta.b[k % 4u] = stats[rows + at]; }
                case 2u: { lse.c[k % 4u] = stats[at]; delta.c[k % 4u] = stats[rows + at]; }
                default: { lse.d[k % 4u] = stats[at]; delta.d[k % 4u] = stats[rows + at]; }
            }
        }
        // Zero where masked: queries before the key (i < j) or past the sequence, or a key
        // past it.
        let ks = vec4<u32>(0u, 1u, 2u, 3u) + first;
        let key = vec4<u32>(j);
        let limit = vec4<u32>(params.seq);
        let dead = vec4<bool>(j >= params.seq);
        let zero = vec4<f32>(0.0);
        let p = Block(
            select(exp(s.a - lse.a), zero, (ks < key) | (ks >= limit) | dead),
            select(exp(s.b - lse.b), zero, (ks + 4u < key) | (ks + 4u >= limit) | dead),
            select(exp(s.c - lse.c), zero, (ks + 8u < key) | (ks + 8u >= limit) | dead),
            select(exp(s.d - lse.d), zero, (ks + 12u < key) | (ks + 12u >= limit) | dead),
        );
        put_scores(p, row, part);
        workgroupBarrier();
        stage_rows(3u, b, h, i0, lane);
        workgroupBarrier();
        // dV_j += Σ_i P_ij dout_i.
        dv = scores_times_other(dv, row, part);
        workgroupBarrier();
        stage_columns(3u, b, h, i0, lane);
        workgroupBarrier();
        // dP_ij = v_j · dout_i; dS = P ∘ (dP − Δ_i).
        let dp = times_other_t(true, row, part);
        let ds = Block(
            p.a * (dp.a - delta.a),
            p.b * (dp.b - delta.b),
            p.c * (dp.c - delta.c),
            p.d * (dp.d - delta.d),
        );
        put_scores(ds, row, part);
        workgroupBarrier();
        stage_rows(0u, b, h, i0, lane);
        workgroupBarrier();
        dk = scores_times_other(dk, row, part);
    }
    if j >= params.seq { return; }
    let base = qkv_row(b, j) + h * params.head_dim;
    store_columns(scale_block(dk, params.scale), base + width(), part);
    store_columns(dv, base + 2u * width(), part);
}
