//! `Communicator::mean` over ranks that are threads of this process (no MPI needed): the
//! all-to-all, the rank-ordered sum and the all-gather, at lengths that split unevenly.

use std::sync::{Arc, Barrier, Mutex};

use wgtrain::Result;
use wgtrain::dist::Communicator;
use wgtrain::kernels::Activation;
use wgtrain::kernels::loss::Loss;
use wgtrain::nn::Sequential;
use wgtrain::train::checkpoint::{self, Architecture, TrainingState};
use wgtrain::train::{TrainConfig, Trainer, steps_per_epoch};

#[path = "common/mod.rs"]
mod common;

/// Ranks as threads: each collective posts this rank's data, waits for every rank, reads
/// what it needs, and waits again before the slots are reused.
#[derive(Debug)]
struct ThreadRanks {
    rank: usize,
    size: usize,
    barrier: Arc<Barrier>,
    slots: Arc<Mutex<Vec<Vec<f32>>>>,
}

impl ThreadRanks {
    fn exchange(&self, send: &[f32]) -> Vec<Vec<f32>> {
        self.slots.lock().expect("slots")[self.rank] = send.to_vec();
        self.barrier.wait();
        let all = self.slots.lock().expect("slots").clone();
        self.barrier.wait();
        all
    }
}

impl Communicator for ThreadRanks {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        let piece = send.len() / self.size;
        for (from, theirs) in self.exchange(send).iter().enumerate() {
            recv[from * piece..(from + 1) * piece]
                .copy_from_slice(&theirs[self.rank * piece..(self.rank + 1) * piece]);
        }
        Ok(())
    }

    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        recv.copy_from_slice(&self.exchange(send).concat());
        Ok(())
    }

    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        let all = self.exchange(&[f32::from_bits(value as u32)]);
        Ok(all.iter().map(|v| u64::from(v[0].to_bits())).collect())
    }

    fn abort(&self, message: &str) -> ! {
        panic!("rank {} aborted: {message}", self.rank)
    }
}

/// Runs `job` on `size` thread ranks and returns each rank's result, in rank order.
fn on_ranks<T: Send>(size: usize, job: impl Fn(&ThreadRanks) -> T + Sync) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(size));
    let slots = Arc::new(Mutex::new(vec![vec![]; size]));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let comm = ThreadRanks {
                    rank,
                    size,
                    barrier: Arc::clone(&barrier),
                    slots: Arc::clone(&slots),
                };
                let job = &job;
                scope.spawn(move || job(&comm))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("rank thread"))
            .collect()
    })
}

/// Values that differ by rank and position, not exactly representable sums.
fn values(rank: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 37 + rank * 101) % 97) as f32 / 7.0 - 6.0)
        .collect()
}

#[test]
fn mean_is_the_rank_ordered_sum_scaled_and_bit_identical_on_every_rank() {
    for size in [1, 2, 3] {
        for len in [1, 2, 7, 1000, 1001] {
            let results = on_ranks(size, |comm| {
                let mut v = values(comm.rank(), len);
                comm.mean(&mut v).expect("mean");
                v
            });
            // The same additions in the same order (rank 0 + rank 1 + ...) times 1/size.
            let want: Vec<f32> = (0..len)
                .map(|i| {
                    let sum = (1..size).fold(values(0, len)[i], |s, r| s + values(r, len)[i]);
                    sum * (1.0 / size as f32)
                })
                .collect();
            for (rank, got) in results.iter().enumerate() {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(got),
                    bits(&want),
                    "{size} ranks, {len} values, rank {rank}"
                );
            }
        }
    }
}

#[test]
fn ranks_that_average_different_lengths_all_get_an_error() {
    let results = on_ranks(2, |comm| comm.mean(&mut values(0, 10 + comm.rank())));
    for result in results {
        let error = result.expect_err("lengths 10 and 11").to_string();
        assert!(error.contains("[10, 11]"), "{error}");
    }
}

/// A job of `size` ranks as far as a resume can tell: it averages nothing.
#[derive(Debug)]
struct Ranks(usize);

impl Communicator for Ranks {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        self.0
    }

    fn all_to_all(&self, _: &[f32], _: &mut [f32]) -> Result<()> {
        unreachable!("a resume averages nothing")
    }

    fn all_gather(&self, _: &[f32], _: &mut [f32]) -> Result<()> {
        unreachable!("a resume averages nothing")
    }

    /// Every rank holds what this one does (the weights check at `set_communicator`).
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        Ok(vec![value; self.0])
    }

    fn abort(&self, message: &str) -> ! {
        panic!("{message}")
    }
}

/// A checkpoint taken by 2 ranks after 3 batches of an epoch holds 6 global batches' rows:
/// one process continues at batch 6, 3 ranks at batch 2, and 4 ranks cannot continue there.
#[test]
fn a_mid_epoch_checkpoint_resumes_with_another_number_of_ranks_at_the_same_rows() {
    let gpu = common::gpu();
    let model = Sequential::mlp(3, &[4], 2, Activation::Relu, 0.0, false);
    let trainer = Trainer::for_model(gpu, &model, Loss::CrossEntropy, TrainConfig::default())
        .expect("trainer");
    let path =
        std::env::temp_dir().join(format!("wgtrain-ranks-{}.safetensors", std::process::id()));
    let state = TrainingState {
        epoch: 1,
        batch: 3,
        ranks: 2,
        step: 11,
        seed: 0,
        optimizer: trainer.config().optimizer,
        run: None,
    };
    let architecture = Architecture {
        graph: trainer.graph().clone(),
        standardize: None,
        vocabulary: None,
    };
    checkpoint::save(&path, &trainer, &architecture, &state).expect("save");
    let saved = checkpoint::load(&path).expect("load");
    let _ = std::fs::remove_file(&path);
    for (ranks, batch) in [
        (1, Some(6)),
        (2, Some(3)),
        (3, Some(2)),
        (4, None),
        (6, Some(1)),
    ] {
        let mut resumed =
            Trainer::for_model(gpu, &model, Loss::CrossEntropy, TrainConfig::default())
                .expect("trainer");
        resumed
            .set_communicator(Arc::new(Ranks(ranks)))
            .expect("the same weights");
        match (saved.load_training_state(&mut resumed), batch) {
            (Ok(state), Some(batch)) => {
                assert_eq!((state.epoch, state.batch, state.ranks), (1, batch, ranks));
                assert_eq!(resumed.step(), 11);
            }
            (Err(error), None) => assert!(error.to_string().contains("divides 6"), "{error}"),
            (result, _) => panic!("{ranks} ranks: {result:?}"),
        }
    }
}

/// `steps_per_epoch`, which the CLI and the examples size schedules with before a trainer
/// exists, counts the batches the trainer then runs, on any number of ranks.
#[test]
fn steps_per_epoch_counts_each_ranks_batches() {
    let model = Sequential::mlp(3, &[4], 2, Activation::Relu, 0.0, false);
    for ranks in 1..=4 {
        for batch_size in [1, 3, 7] {
            let config = TrainConfig {
                batch_size,
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::for_model(common::gpu(), &model, Loss::CrossEntropy, config)
                .expect("trainer");
            trainer
                .set_communicator(Arc::new(Ranks(ranks)))
                .expect("the same weights");
            for rows in [1, 10, 23] {
                assert_eq!(
                    trainer.epoch_batches(rows).len(),
                    steps_per_epoch(rows, ranks, batch_size),
                    "{rows} rows, {ranks} ranks, batch {batch_size}"
                );
            }
        }
    }
}
