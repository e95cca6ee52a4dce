use wgtrain::kernels::text::sample_blocks;
use wgtrain::reference;

use crate::common::*;
use crate::step_ring;

#[test]
fn sampled_blocks_are_the_stream_at_the_hashed_starts_and_targets_the_next_tokens() {
    let mut rng = rng("sample blocks");
    let (seed, step, salt) = (rng.next_u32(), 5, 0x7e47);
    let ring = step_ring(seed, step);
    // (tokens, rows, block): the shortest stream (one start), odd sizes, a real batch.
    for (n, rows, block) in [(2usize, 1usize, 1usize), (1000, 3, 17), (70_001, 12, 64)] {
        let stream: Vec<u32> = (0..n).map(|_| rng.next_u32() % 78).collect();
        let tokens = gpu().tensor_u32(&stream, &[n]).expect("tokens");
        let input = gpu()
            .tensor_u32(&vec![u32::MAX; rows * block], &[rows, block])
            .expect("poisoned input");
        let target = poisoned(&[rows * block]);
        run(&[&sample_blocks(gpu(), salt, &ring, &tokens, &input, &target).expect("valid")]);
        let got_input: Vec<u32> = read(&input).iter().map(|v| v.to_bits()).collect();
        let got_target = read(&target);
        let starts = reference::block_starts(n, block, rows, (seed, step, salt));
        for (r, &start) in starts.iter().enumerate() {
            let row = r * block..(r + 1) * block;
            assert_eq!(
                got_input[row.clone()],
                stream[start..start + block],
                "n={n} row {r}: input is not the block at {start}"
            );
            let next: Vec<f32> = stream[start + 1..=start + block]
                .iter()
                .map(|&t| t as f32)
                .collect();
            assert_eq!(got_target[row], next[..], "n={n} row {r}: targets");
        }
    }
}

#[test]
fn block_starts_cover_the_stream_evenly() {
    // 4096 rows over 100 possible starts: each start expects 41 hits (σ ≈ 6.4); every one is
    // hit and none more than twice its share, or the draw is biased or stuck.
    let (n, block, rows) = (101usize, 1usize, 4096usize);
    let stream: Vec<u32> = (0..n as u32).collect();
    let tokens = gpu().tensor_u32(&stream, &[n]).expect("tokens");
    let input = gpu()
        .tensor_u32(&vec![0; rows], &[rows, block])
        .expect("input");
    let target = poisoned(&[rows]);
    let ring = step_ring(seed("block starts") as u32, 1);
    run(&[&sample_blocks(gpu(), 1, &ring, &tokens, &input, &target).expect("valid")]);
    let mut hits = vec![0usize; n - block];
    for v in read(&input) {
        hits[v.to_bits() as usize] += 1;
    }
    assert!(
        hits.iter().all(|&h| h > 0 && h < 2 * rows / (n - block)),
        "start histogram {hits:?}"
    );
}

#[test]
fn a_stream_without_a_whole_block_and_its_next_token_is_refused() {
    let ring = step_ring(0, 1);
    let tokens = gpu().tensor_u32(&[1, 2, 3], &[3]).expect("tokens");
    let input = gpu().tensor_u32(&[0; 3], &[1, 3]).expect("input");
    let target = poisoned(&[3]);
    let Err(err) = sample_blocks(gpu(), 0, &ring, &tokens, &input, &target) else {
        panic!("3 tokens have no block of 3 and a next token");
    };
    assert!(err.to_string().contains("block of 4"), "{err}");
}
