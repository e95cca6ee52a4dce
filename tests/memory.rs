//! Bounded memory: a steady training loop allocates nothing. Alone in its own test binary
//! (and on its own device) so no other test's allocations move the counters.

#[path = "common/mod.rs"]
mod common;

use wgtrain::Gpu;
use wgtrain::data::{Dataset, DeviceDataset};
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::train::{TrainConfig, Trainer};

use common::*;

#[test]
fn two_thousand_steps_allocate_nothing_after_warm_up() {
    let mut rng = rng("bounded memory");
    let gpu = Gpu::new().expect("adapter");
    let data = DeviceDataset::upload(
        &gpu,
        &Dataset::classification(
            rng.uniform(160 * 6, -1.0, 1.0),
            6,
            rng.below(160, 3).iter().map(|&l| l as u32).collect(),
        )
        .expect("dataset"),
    )
    .expect("upload");
    let model = Sequential::mlp(6, &[32], 3, Activation::Relu, 0.1, false);
    let config = TrainConfig {
        batch_size: 16,
        seed: 2,
        ..TrainConfig::default()
    };
    let mut t = Trainer::for_model(&gpu, &model, Loss::CrossEntropy, config).expect("trainer");
    let rss = || -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0)
            * 4096
    };
    for epoch in 0..20 {
        t.fit_epoch(&data, epoch, &mut |_| {}).expect("warm-up");
    }
    let (pool, memory, reads) = (gpu.pool_stats(), rss(), gpu.readback_stats());
    let mut losses = 0;
    for epoch in 20..220 {
        t.fit_epoch(&data, epoch, &mut |_| losses += 1)
            .expect("epoch");
    }
    assert_eq!(t.step(), 2200);
    assert_eq!(losses, 2000, "every step's loss was read back");
    assert_eq!(
        gpu.pool_stats(),
        pool,
        "no buffer was created in 2000 steps"
    );
    // The losses come back through reused staging buffers, and each read waits for its own
    // submission only: none drains the queue.
    assert_eq!(
        gpu.readback_stats(),
        reads,
        "no staging buffer created and no wait for every submission in 2000 steps"
    );
    let growth = rss().saturating_sub(memory);
    // Allocator noise is a few pages; a per-step leak of even 1 KiB would be 2 MB.
    assert!(
        growth < 2 << 20,
        "host RSS grew by {growth} bytes over 2000 steps"
    );
}
