//! Data parallelism across processes, as PyTorch's DistributedDataParallel: every rank holds
//! the whole model, trains on its own shard of each global batch, and before each update the
//! ranks average their gradients, so every rank applies the same update to the same weights.
//!
//! A [`Communicator`] is what the ranks share. [`from_env`] gives the one the process was
//! launched with: MPI's world under `mpirun` (the `mpi` cargo feature), otherwise [`Solo`],
//! a single rank at no cost. Hand it to [`Trainer::set_communicator`](crate::train::Trainer::set_communicator).

#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
mod mpi_world;

#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
pub use mpi_world::MpiWorld;

use std::sync::Arc;

use crate::error::{Error, Result};

/// The ranks of one data-parallel job and the few collectives training needs. Every rank must
/// call the collectives in the same order with buffers of the same length.
pub trait Communicator: std::fmt::Debug + Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// How many ranks the job has.
    fn size(&self) -> usize;
    /// Rank `r` receives piece `r` of `send` (`size()` pieces of `recv.len() / size()`), and
    /// piece `s` of `recv` comes from rank `s`.
    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// Every rank's `send`, in rank order, into `recv` (`size()` times as long).
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// [`Communicator::all_gather`] of one u64 per rank.
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>>;
    /// Ends every rank of the job, after printing `message` with this rank's number. A rank
    /// that fails alone must call it, or the others wait for it in their next collective.
    fn abort(&self, message: &str) -> !;

    /// Replaces `values` on every rank by their mean over the ranks, bit-identical on all of
    /// them and from run to run: MPI promises no order for its sums, so the sum is done here.
    /// Rank r adds up piece r of every rank's values in rank order (an all-to-all), then the
    /// pieces go round (an all-gather): each rank sends and receives about twice the values'
    /// bytes, as a ring all-reduce does.
    fn mean(&self, values: &mut [f32]) -> Result<()> {
        let ranks = self.size();
        if ranks <= 1 {
            return Ok(());
        }
        // Ranks that reach this with different lengths have drifted out of step (a timing
        // decision each made alone, say): an error now, not MPI's crash or a hang.
        expect_same(self, values.len() as u64, |lengths| {
            format!(
                "the ranks averaged values of different lengths ({lengths:?} by rank): every \
                 rank must make the same training calls"
            )
        })?;
        let piece = values.len().div_ceil(ranks);
        let padded = piece * ranks;
        SCRATCH.with_borrow_mut(|(staging, pieces)| {
            // Buffers kept from call to call: on fresh ones the first touches of their pages
            // cost more than the transfers (11.6 ms against 2 for 7.5 MB on 2 local ranks).
            pieces.resize(padded, 0.0);
            if padded == values.len() {
                self.all_to_all(values, pieces)?;
            } else {
                staging.clear();
                staging.extend_from_slice(values);
                staging.resize(padded, 0.0);
                self.all_to_all(staging, pieces)?;
            }
            let (mine, others) = pieces.split_at_mut(piece);
            for from in others.chunks(piece) {
                for (sum, v) in mine.iter_mut().zip(from) {
                    *sum += v;
                }
            }
            let scale = 1.0 / ranks as f32;
            for v in mine.iter_mut() {
                *v *= scale;
            }
            if padded == values.len() {
                self.all_gather(mine, values)
            } else {
                self.all_gather(mine, staging)?;
                values.copy_from_slice(&staging[..values.len()]);
                Ok(())
            }
        })
    }
}

thread_local! {
    /// [`Communicator::mean`]'s buffers: a padded copy to send (and to gather into), and the
    /// pieces received.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = Default::default();
}

/// One process alone: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Communicator for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }

    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }

    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        Ok(vec![value])
    }

    fn abort(&self, message: &str) -> ! {
        crate::train::warn(message);
        std::process::exit(1)
    }
}

/// How many ranks `mpirun` (Open MPI, MPICH, or any PMI launcher) says this process is one
/// of, if it was launched by one.
pub fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
}

/// This process's rank among those on its own host, as the launcher says (0 alone): which
/// GPU of a multi-GPU host it takes.
pub fn local_rank() -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "PMI_LOCAL_RANK",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok()?.parse().ok())
    .unwrap_or(0)
}

/// The communicator this process was launched with: MPI's world under a launcher of more
/// than one rank, [`Solo`] otherwise (MPI is not even initialised then). A build without the
/// `mpi` feature refuses to run as one of several ranks rather than train N separate models.
/// Call it once per process (MPI initialises once), and let the last clone drop before the
/// process exits: MPI finalises then, and `mpirun` counts a rank that exits without it as
/// failed.
pub fn from_env() -> Result<Arc<dyn Communicator>> {
    match launched_ranks() {
        Some(ranks) if ranks > 1 => multi_rank(ranks),
        _ => Ok(Arc::new(Solo)),
    }
}

/// The body of a program's `main` that trains data-parallel under `mpirun` and alone without
/// it: opens the launched communicator, silences [`say`](crate::train::say) on every rank but
/// 0, runs `job`, and turns its error into the exit code, ending every rank with this rank's
/// message when there are several (the others would wait for it in their next collective).
/// MPI finalises when `job` has returned and dropped its clones of the communicator.
pub fn run_as_rank(
    job: impl FnOnce(&Arc<dyn Communicator>) -> Result<()>,
) -> std::process::ExitCode {
    let comm = match from_env() {
        Ok(comm) => comm,
        Err(error) => {
            crate::train::warn(format_args!("error: {error}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    crate::train::set_quiet(comm.rank() != 0);
    let result = job(&comm);
    exit_code(Some(&*comm), result)
}

/// How a process (one rank of a job, or alone) ends after `result`: success; an interrupted
/// run's 128 + signal, said once (by rank 0); or an error, said on stderr, which on one of
/// several ranks ends every rank with this one's message (the others would wait for it in
/// their next collective).
pub fn exit_code(comm: Option<&dyn Communicator>, result: Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Error::Interrupted { signal, detail }) => {
            if comm.is_none_or(|c| c.rank() == 0) {
                crate::train::warn(format_args!("interrupted by signal {signal}: {detail}"));
            }
            std::process::ExitCode::from(128 + signal as u8)
        }
        Err(error) => {
            if let Some(comm) = comm.filter(|c| c.size() > 1) {
                comm.abort(&format!("error: {error}"));
            }
            crate::train::warn(format_args!("error: {error}"));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
fn multi_rank(_ranks: usize) -> Result<Arc<dyn Communicator>> {
    Ok(Arc::new(MpiWorld::init()?))
}

#[cfg(not(all(feature = "mpi", not(target_arch = "wasm32"))))]
fn multi_rank(ranks: usize) -> Result<Arc<dyn Communicator>> {
    Err(Error::InvalidArgument(format!(
        "launched as one of {ranks} ranks, but this wgtrain was built without the `mpi` \
         feature: build with `--features mpi` to train data-parallel"
    )))
}

/// A checksum of `values`' bits (FNV-1a over each f32's bytes): equal on two ranks exactly
/// when their weights are (but for a 2⁻⁶⁴ chance).
pub fn checksum(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325, |hash, v| {
        v.to_bits().to_le_bytes().iter().fold(hash, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    })
}

/// Fails unless every rank's `checksum` of its weights is the same: weights that drift apart
/// (a rank that skipped a step, different seeds or files at the start) are an error, not a
/// silent divergence.
pub fn expect_same_weights(comm: &dyn Communicator, checksum: u64, step: u64) -> Result<()> {
    expect_same(comm, checksum, |all| {
        let when = match step {
            0 => "at the start (different seeds or checkpoints?)".to_string(),
            step => format!("after step {step}"),
        };
        format!("the ranks' weights differ {when} (checksums by rank: {all:x?})")
    })
}

/// Fails on every rank unless every rank has the same `value`; `describe` words the error
/// from the values by rank.
pub fn expect_same<C: Communicator + ?Sized>(
    comm: &C,
    value: u64,
    describe: impl FnOnce(&[u64]) -> String,
) -> Result<()> {
    let all = comm.all_gather_u64(value)?;
    if all.iter().any(|&v| v != all[0]) {
        return Err(Error::WrongResult(describe(&all)));
    }
    Ok(())
}
