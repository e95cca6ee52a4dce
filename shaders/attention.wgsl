// Fused causal self-attention: scores, causal mask, online softmax and the weighted sum in
// one kernel per direction, so the T × T matrix of a head never exists in memory
// (FlashAttention's recurrence; Dao et al. 2022, 2023).
// qkv is [B, T, 3C] as c_attn writes it: head h's query at columns h·D.., its key at
// C + h·D.., its value at 2C + h·D.. (C = H·D). out and dout are [B, T, C] (heads side by
// side, as the composed version's transpose and reshape leave them). stats is [2, B, H, T]:
// each query row's logsumexp (forward), then Δ_i = dout_i · out_i (backward).
// The launcher prepends HEAD_DIM_MAX (32 or 64): rows live in registers of that size, zero
// beyond head_dim, so every loop has a constant bound.
// Binding table, one access mode per binding:
//   | binding | attention_forward | attention_backward_query | attention_backward_key_value |
//   | 0       | params            | params                   | params                       |
//   | 1       | qkv               | qkv                      | qkv                          |
//   | 2       | (qkv)             | out                      | (qkv)                        |
//   | 3       | (qkv)             | dout                     | dout                         |
//   | 4 rw    | out               | dqkv (query columns)     | dqkv (key and value columns) |
//   | 5 rw    | stats (logsumexp) | stats (reads L, writes Δ)| stats                        |
// Grid: (ceil(T / TILE), B·H); TILE threads each own one query row (forward, backward_query)
// or one key row (backward_key_value), and sum over the other side's rows in index order,
// so every run gives the same bits.

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

const TILE: u32 = 32u;
// Below every score that can occur, and finite: the compiler may assume floats are.
const LOWEST: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> params: AttentionParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> out_read: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> result: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

// Rows of the other side, staged for the whole workgroup: keys and values (forward,
// backward_query) or queries and output gradients (backward_key_value).
var<workgroup> tile_a: array<f32, TILE * HEAD_DIM_MAX>;
var<workgroup> tile_b: array<f32, TILE * HEAD_DIM_MAX>;

fn width() -> u32 {
    return params.heads * params.head_dim;
}

// Where row t of sequence b starts in qkv.
fn qkv_row(b: u32, t: u32) -> u32 {
    return (b * params.seq + t) * 3u * width();
}

// Where row t of sequence b starts in out and dout.
fn out_row(b: u32, t: u32) -> u32 {
    return (b * params.seq + t) * width();
}

// Row `t` of `part` (0 query, 1 key, 2 value) of head h into tile_a (which = 0) or tile_b,
// zero past the sequence or the head dimension.
fn stage_qkv(which: u32, slot: u32, b: u32, h: u32, t: u32, part: u32) {
    let base = qkv_row(b, min(t, params.seq - 1u)) + part * width() + h * params.head_dim;
    for (var d = 0u; d < HEAD_DIM_MAX; d++) {
        var v = 0.0;
        if t < params.seq && d < params.head_dim { v = qkv[base + d]; }
        if which == 0u { tile_a[slot * HEAD_DIM_MAX + d] = v; } else { tile_b[slot * HEAD_DIM_MAX + d] = v; }
    }
}

// y_i = Σ_{j ≤ i} softmax_j(q_i·k_j / √D) v_j, one tile of keys at a time: the running
// maximum m and denominator l rescale the accumulator whenever a tile raises the maximum.
@compute @workgroup_size(32)
fn attention_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let i0 = wg.x * TILE;
    let i = i0 + lid.x;
    let in_range = i < params.seq;
    let q_base = qkv_row(b, min(i, params.seq - 1u)) + h * params.head_dim;
    var q: array<f32, HEAD_DIM_MAX>;
    var acc: array<f32, HEAD_DIM_MAX>;
    for (var d = 0u; d < HEAD_DIM_MAX; d++) {
        q[d] = select(0.0, qkv[q_base + min(d, params.head_dim - 1u)] * params.scale, d < params.head_dim);
        acc[d] = 0.0;
    }
    var m = LOWEST;
    var l = 0.0;
    for (var j0 = 0u; j0 <= i0; j0 += TILE) {
        workgroupBarrier();
        stage_qkv(0u, lid.x, b, h, j0 + lid.x, 1u);
        stage_qkv(1u, lid.x, b, h, j0 + lid.x, 2u);
        workgroupBarrier();
        if !in_range { continue; }
        // Keys j0 .. min(i, j0 + TILE − 1) are visible to row i.
        let visible = min(TILE, i - j0 + 1u);
        var s: array<f32, TILE>;
        var tile_max = LOWEST;
        for (var c = 0u; c < TILE; c++) {
            var score = 0.0;
            for (var d = 0u; d < HEAD_DIM_MAX; d++) { score += q[d] * tile_a[c * HEAD_DIM_MAX + d]; }
            s[c] = score;
            if c < visible { tile_max = max(tile_max, score); }
        }
        let m_new = max(m, tile_max);
        let rescale = exp(m - m_new);
        l *= rescale;
        for (var d = 0u; d < HEAD_DIM_MAX; d++) { acc[d] *= rescale; }
        for (var c = 0u; c < visible; c++) {
            let p = exp(s[c] - m_new);
            l += p;
            for (var d = 0u; d < HEAD_DIM_MAX; d++) { acc[d] += p * tile_b[c * HEAD_DIM_MAX + d]; }
        }
        m = m_new;
    }
    if !in_range { return; }
    let o_base = out_row(b, i) + h * params.head_dim;
    for (var d = 0u; d < params.head_dim; d++) { result[o_base + d] = acc[d] / l; }
    stats[wg.y * params.seq + i] = m + log(l);
}

// ∂L/∂q_i = (1/√D) Σ_{j ≤ i} P_ij (dout_i·v_j − Δ_i) k_j with P_ij = exp(q_i·k_j/√D − L_i)
// recomputed from the forward's logsumexp; also writes Δ_i for backward_key_value.
@compute @workgroup_size(32)
fn attention_backward_query(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let i0 = wg.x * TILE;
    let i = i0 + lid.x;
    let in_range = i < params.seq;
    let row = min(i, params.seq - 1u);
    let q_base = qkv_row(b, row) + h * params.head_dim;
    let o_base = out_row(b, row) + h * params.head_dim;
    var q: array<f32, HEAD_DIM_MAX>;
    var dy: array<f32, HEAD_DIM_MAX>;
    var dq: array<f32, HEAD_DIM_MAX>;
    var delta = 0.0;
    for (var d = 0u; d < HEAD_DIM_MAX; d++) {
        let inside = d < params.head_dim;
        let at = min(d, params.head_dim - 1u);
        q[d] = select(0.0, qkv[q_base + at] * params.scale, inside);
        dy[d] = select(0.0, dout[o_base + at], inside);
        delta += dy[d] * select(0.0, out_read[o_base + at], inside);
        dq[d] = 0.0;
    }
    let lse = stats[wg.y * params.seq + row];
    for (var j0 = 0u; j0 <= i0; j0 += TILE) {
        workgroupBarrier();
        stage_qkv(0u, lid.x, b, h, j0 + lid.x, 1u);
        stage_qkv(1u, lid.x, b, h, j0 + lid.x, 2u);
        workgroupBarrier();
        if !in_range { continue; }
        let visible = min(TILE, i - j0 + 1u);
        for (var c = 0u; c < visible; c++) {
            var s = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < HEAD_DIM_MAX; d++) {
                s += q[d] * tile_a[c * HEAD_DIM_MAX + d];
                dp += dy[d] * tile_b[c * HEAD_DIM_MAX + d];
            }
            let ds = exp(s - lse) * (dp - delta);
            for (var d = 0u; d < HEAD_DIM_MAX; d++) { dq[d] += ds * tile_a[c * HEAD_DIM_MAX + d]; }
        }
    }
    if !in_range { return; }
    let g_base = qkv_row(b, i) + h * params.head_dim;
    for (var d = 0u; d < params.head_dim; d++) { result[g_base + d] = dq[d] * params.scale; }
    stats[(params.batch * params.heads + wg.y) * params.seq + i] = delta;
}

// ∂L/∂v_j = Σ_{i ≥ j} P_ij dout_i and ∂L/∂k_j = (1/√D) Σ_{i ≥ j} P_ij (dout_i·v_j − Δ_i) q_i,
// one tile of query rows (and their output gradients) at a time.
@compute @workgroup_size(32)
fn attention_backward_key_value(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let j0 = wg.x * TILE;
    let j = j0 + lid.x;
    let in_range = j < params.seq;
    let kv_base = qkv_row(b, min(j, params.seq - 1u)) + h * params.head_dim;
    var k: array<f32, HEAD_DIM_MAX>;
    var v: array<f32, HEAD_DIM_MAX>;
    var dk: array<f32, HEAD_DIM_MAX>;
    var dv: array<f32, HEAD_DIM_MAX>;
    for (var d = 0u; d < HEAD_DIM_MAX; d++) {
        let inside = d < params.head_dim;
        let at = min(d, params.head_dim - 1u);
        k[d] = select(0.0, qkv[kv_base + width() + at] * params.scale, inside);
        v[d] = select(0.0, qkv[kv_base + 2u * width() + at], inside);
        dk[d] = 0.0;
        dv[d] = 0.0;
    }
    let rows = params.batch * params.heads * params.seq;
    for (var i0 = j0; i0 < params.seq; i0 += TILE) {
        workgroupBarrier();
        stage_qkv(0u, lid.x, b, h, i0 + lid.x, 0u);
        // The output gradient of query row i0 + lid into tile_b.
        let t = i0 + lid.x;
        let o_base = out_row(b, min(t, params.seq - 1u)) + h * params.head_dim;
        for (var d = 0u; d < HEAD_DIM_MAX; d++) {
            var g = 0.0;
            if t < params.seq && d < params.head_dim { g = dout[o_base + d]; }
            tile_b[lid.x * HEAD_DIM_MAX + d] = g;
        }
        workgroupBarrier();
        if !in_range { continue; }
        for (var c = 0u; c < TILE; c++) {
            let i = i0 + c;
            if i < j || i >= params.seq { continue; }
            var s = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < HEAD_DIM_MAX; d++) {
                s += k[d] * tile_a[c * HEAD_DIM_MAX + d];
                dp += v[d] * tile_b[c * HEAD_DIM_MAX + d];
            }
            let p = exp(s - stats[wg.y * params.seq + i]);
            let ds = p * (dp - stats[rows + wg.y * params.seq + i]);
            for (var d = 0u; d < HEAD_DIM_MAX; d++) {
                dv[d] += p * tile_b[c * HEAD_DIM_MAX + d];
                dk[d] += ds * tile_a[c * HEAD_DIM_MAX + d];
            }
        }
    }
    if !in_range { return; }
    let g_base = qkv_row(b, j) + h * params.head_dim;
    for (var d = 0u; d < params.head_dim; d++) {
        result[g_base + width() + d] = dk[d] * params.scale;
        result[g_base + 2u * width() + d] = dv[d];
    }
}
