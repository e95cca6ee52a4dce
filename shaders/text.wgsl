// Random contiguous blocks of a resident token stream, the batches of a language model:
// row r starts at s_r, drawn from (r, step, seed ^ salt·φ), and
//   input[r, t] = tokens[s_r + t], next_token[r, t] = f32(tokens[s_r + t + 1]) for t < block.
// s_r = hash mod starts with starts = n − block: a bias of at most starts / 2³² relative,
// 3·10⁻⁴ for a million tokens.
// Bindings: 0 params (uniform), 1 step (uniform, dynamic offset, StepParams), 2 tokens (read,
//           u32), 3 input (read_write, u32, rows·block), 4 next_token (read_write, f32, rows·block).
// Grid: grid_1d(rows·block, 256).

struct BlockParams {
    rows: u32,
    block: u32,
    starts: u32,
    salt: u32,
}

@group(0) @binding(0) var<uniform> params: BlockParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> input: array<u32>;
@group(0) @binding(4) var<storage, read_write> next_token: array<f32>;

@compute @workgroup_size(256)
fn sample_blocks(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * 256u + gid.x;
    if i >= params.rows * params.block { return; }
    let row = i / params.block;
    let key = vec3<u32>(row, step.step, step.seed ^ (params.salt * 0x9e3779b9u));
    let start = pcg3d(key).x % params.starts;
    let at = start + i % params.block;
    input[i] = tokens[at];
    next_token[i] = f32(tokens[at + 1u]);
}
