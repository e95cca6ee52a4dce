//! [`Communicator`] over MPI's world (rsmpi).

use std::sync::{Mutex, MutexGuard};

use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _};

use super::Communicator;
use crate::error::{Error, Result};

/// MPI's world: every rank `mpirun` started. MPI is finalised when it drops.
pub struct MpiWorld {
    /// Behind a lock: MPI is initialised for calls from any thread, one at a time.
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    _universe: Universe,
}

// SAFETY: MPI is initialised with `Threading::Serialized` (checked in `init`), which allows
// calls from any thread as long as no two overlap; every call goes through `world`'s lock.
unsafe impl Send for MpiWorld {}
// SAFETY: as for Send: shared use is serialised by the same lock.
unsafe impl Sync for MpiWorld {}

impl std::fmt::Debug for MpiWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpiWorld(rank {} of {})", self.rank, self.size)
    }
}

impl MpiWorld {
    /// Initialises MPI (once per process: a second call is an error).
    pub fn init() -> Result<Self> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| {
                Error::InvalidArgument("MPI is already initialised in this process".into())
            })?;
        if threading < Threading::Serialized {
            return Err(Error::InvalidArgument(format!(
                "this MPI offers only {threading:?} threading; wgtrain needs Serialized"
            )));
        }
        let world = universe.world();
        Ok(Self {
            rank: world.rank() as usize,
            size: world.size() as usize,
            world: Mutex::new(world),
            _universe: universe,
        })
    }

    fn world(&self) -> Result<MutexGuard<'_, SimpleCommunicator>> {
        self.world
            .lock()
            .map_err(|_| Error::InvalidArgument("the MPI communicator's lock is poisoned".into()))
    }
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        self.world()?.all_to_all_into(send, recv);
        Ok(())
    }

    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        self.world()?.all_gather_into(send, recv);
        Ok(())
    }

    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        let mut all = vec![0u64; self.size];
        self.world()?.all_gather_into(&value, &mut all[..]);
        Ok(all)
    }

    fn abort(&self, message: &str) -> ! {
        crate::train::warn(format_args!("rank {}: {message}", self.rank));
        match self.world() {
            Ok(world) => world.abort(1),
            Err(_) => std::process::exit(1),
        }
    }
}
