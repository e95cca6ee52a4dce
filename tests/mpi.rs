//! Data parallelism across processes, run by `.ci/run` as `mpirun --allow-run-as-root -np 2`
//! (MPI initialises once per process, so this is a program of its own, not a test harness):
//!
//! - 2 ranks with batch B each report the losses of 1 rank with batch 2B over the same data
//!   order, and end with bit-identical weights on both ranks; a second run gives the same
//!   bits; weights made to differ are caught at the next check, different seeds and
//!   datasets of different sizes before the first step;
//! - `--bad-data-on R`: rank R's data holds a NaN, and the whole job must end with its error
//!   (`.ci/run` checks the message and that the job does not hang).
//!
//! Run alone (`cargo test --features mpi`), it says it needs `mpirun` and passes.

use std::sync::Arc;

use wgtrain::data::{Dataset, DeviceDataset};
use wgtrain::dist::{self, Communicator};
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::optim::Optimizer;
use wgtrain::train::{TrainConfig, Trainer};
use wgtrain::{Error, Gpu, Result};

/// 48 rows split evenly over 2, 3, 4 or 6 ranks (uneven shards would wrap round and repeat
/// rows, which one process does not), batches of 4 per rank.
const ROWS: usize = 48;
const BATCH: usize = 4;
const EPOCHS: usize = 3;

fn main() {
    let comm = match dist::from_env() {
        Ok(comm) => comm,
        Err(error) => panic!("{error}"),
    };
    if comm.size() == 1 {
        println!(
            "tests/mpi.rs: run under `mpirun -np 2` to test data parallelism; nothing to do alone"
        );
        return;
    }
    let bad_rank: Option<usize> = std::env::args()
        .skip_while(|a| a != "--bad-data-on")
        .nth(1)
        .and_then(|r| r.parse().ok());
    if let Err(error) = run(&comm, bad_rank) {
        comm.abort(&error.to_string());
    }
    println!("rank {} of {}: ok", comm.rank(), comm.size());
}

/// The same `ROWS` rows of 6 features and 3 classes on every rank (from a fixed formula),
/// one NaN on `bad_rank`.
fn data(rank: usize, bad_rank: Option<usize>) -> Result<Dataset> {
    rows_of_data(ROWS, rank, bad_rank)
}

fn rows_of_data(rows: usize, rank: usize, bad_rank: Option<usize>) -> Result<Dataset> {
    let mut features: Vec<f32> = (0..rows * 6)
        .map(|i| ((i * 7919 % 113) as f32 / 56.0) - 1.0)
        .collect();
    if bad_rank == Some(rank) {
        features[17] = f32::NAN;
    }
    let labels = (0..rows).map(|i| (i * 31 % 3) as u32).collect();
    Dataset::classification(features, 6, labels)
}

fn trainer(gpu: &Gpu, batch_size: usize) -> Result<Trainer> {
    seeded_trainer(gpu, batch_size, 5)
}

fn seeded_trainer(gpu: &Gpu, batch_size: usize, seed: u64) -> Result<Trainer> {
    let model = Sequential::mlp(6, &[16, 16], 3, Activation::Relu, 0.0, false);
    let config = TrainConfig {
        batch_size,
        optimizer: Optimizer::adam(0.01),
        seed,
        ..TrainConfig::default()
    };
    Trainer::for_model(gpu, &model, Loss::CrossEntropy, config)
}

fn losses(trainer: &mut Trainer, data: &DeviceDataset) -> Result<Vec<f32>> {
    let mut losses = vec![];
    for epoch in 0..EPOCHS {
        trainer.fit_epoch(data, epoch, &mut |log| losses.push(log.loss))?;
    }
    Ok(losses)
}

fn run(comm: &Arc<dyn Communicator>, bad_rank: Option<usize>) -> Result<()> {
    let gpu = Gpu::new()?;
    let data = DeviceDataset::upload(&gpu, &data(comm.rank(), bad_rank)?)?;

    // One rank alone, batch 2B: the reference every rank computes for itself.
    let mut alone = trainer(&gpu, BATCH * comm.size())?;
    let want = losses(&mut alone, &data)?;

    let mut parallel = trainer(&gpu, BATCH)?;
    parallel.set_communicator(Arc::clone(comm))?;
    let got = losses(&mut parallel, &data)?;

    // Each step's loss and gradient are the same sums over the same 2B rows, added in
    // another order (per rank, then across ranks), so they differ by f32 roundings: a few
    // units of 2⁻²⁴ relative per step, which the next steps carry on (1.1e-7 seen over 18
    // steps). 2e-6 relative, about 34 units, leaves a margin and still fails on any wrong
    // row, shard or averaging (those change the losses in the second digit).
    assert_eq!(got.len(), want.len(), "steps");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0f32, f32::max);
    println!(
        "rank {}: {} steps, worst relative loss difference {worst:.2e}",
        comm.rank(),
        got.len()
    );
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        let error = (g - w).abs();
        assert!(
            error <= 2e-6 * w.abs() + 1e-7,
            "rank {}: step {}: 2 ranks gave loss {g}, 1 rank with the double batch {w}",
            comm.rank(),
            step + 1
        );
    }
    let params = parallel.weights().read_params(&gpu)?.concat();
    dist::expect_same_weights(&**comm, dist::checksum(&params), parallel.step())?;

    // The ranks sum in a fixed order: the same job again gives the same bits.
    let mut again = trainer(&gpu, BATCH)?;
    again.set_communicator(Arc::clone(comm))?;
    let repeated = losses(&mut again, &data)?;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&repeated),
        bits(&got),
        "rank {}: a rerun differs",
        comm.rank()
    );
    assert_eq!(again.weights().read_params(&gpu)?.concat(), params);

    // Weights that drift apart are caught at the next check, on every rank.
    let mut drifted = trainer(&gpu, BATCH)?;
    drifted.set_communicator(Arc::clone(comm))?;
    drifted.set_weight_check_steps(2);
    if comm.rank() == 1 {
        let mut values = drifted.weights().read_params(&gpu)?;
        values[0][0] += 1e-3;
        drifted.set_params(&values)?;
    }
    match drifted.fit_epoch(&data, 0, &mut |_| {}) {
        Err(Error::WrongResult(message)) if message.contains("weights differ after step 2") => {}
        other => panic!("rank {}: drifted weights gave {other:?}", comm.rank()),
    }

    // Ranks that start from different weights (another seed) are refused before any step.
    let mut unseeded = seeded_trainer(&gpu, BATCH, 5 + comm.rank() as u64)?;
    match unseeded.set_communicator(Arc::clone(comm)) {
        Err(Error::WrongResult(message)) if message.contains("at the start") => {}
        other => panic!("rank {}: different seeds gave {other:?}", comm.rank()),
    }

    // So are datasets of different sizes, before the first step.
    let uneven = DeviceDataset::upload(&gpu, &rows_of_data(ROWS - comm.rank(), 0, None)?)?;
    let mut unevenly_fed = trainer(&gpu, BATCH)?;
    unevenly_fed.set_communicator(Arc::clone(comm))?;
    let sizes: Vec<usize> = (0..comm.size()).map(|rank| ROWS - rank).collect();
    match unevenly_fed.fit_epoch(&uneven, 0, &mut |_| {}) {
        Err(Error::WrongResult(message)) if message.contains(&format!("{sizes:?} rows")) => {}
        other => panic!("rank {}: uneven datasets gave {other:?}", comm.rank()),
    }
    assert_eq!(unevenly_fed.step(), 0);
    Ok(())
}
