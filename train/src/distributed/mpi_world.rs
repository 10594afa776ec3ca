//! [`Collective`] over MPI (the `mpi` crate, rsmpi), with a watchdog so no rank waits for ever.

use super::Collective;
use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// MPI's world communicator: every rank `mpiexec` started.
///
/// Only the thread that made it calls MPI (`MPI_THREAD_FUNNELED`); rayon's threads compute.
/// A watchdog thread ends this rank with a message when one collective waits longer than
/// `timeout`: a rank that died is normally reported by the launcher, which then ends the
/// others, but a rank that hangs (or a launcher that does not clean up) would otherwise leave
/// every rank waiting for ever.
pub struct MpiWorld {
    world: SimpleCommunicator,
    watch: Arc<Watch>,
    // Last: MPI_Finalize runs when the universe drops, after the communicator.
    _universe: Universe,
}

/// The collective in progress, if any, and since when.
struct Watch {
    current: Mutex<Option<(Instant, String)>>,
    timeout: Duration,
}

impl MpiWorld {
    /// Initialises MPI (once per process) and starts the watchdog.
    ///
    /// # Errors
    /// MPI was already initialised in this process.
    pub fn init(timeout: Duration) -> Result<MpiWorld> {
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| Error::Options("MPI is already initialised in this process".into()))?;
        let world = universe.world();
        let watch = Arc::new(Watch { current: Mutex::new(None), timeout });
        let (rank, size) = (world.rank(), world.size());
        if size > 1 {
            let watched = watch.clone();
            std::thread::spawn(move || watched.run(rank, size));
        }
        Ok(MpiWorld { world, watch, _universe: universe })
    }

    /// How many ranks run on this host (they share its cores).
    pub fn ranks_on_this_host(&self) -> usize {
        self.world.split_shared(0).size() as usize
    }

    /// This host's name, as MPI knows it.
    pub fn host(&self) -> String {
        mpi::environment::processor_name().unwrap_or_else(|_| "?".into())
    }

    /// Ends every rank of the run with `code` (`MPI_Abort`): for an error on one rank, which
    /// the others, waiting in a collective, could not see.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// Runs one collective under the watchdog.
    fn watched<R>(&self, what: &str, collective: impl FnOnce() -> R) -> R {
        *self.watch.current.lock().expect("watch lock") = Some((Instant::now(), what.to_string()));
        let out = collective();
        *self.watch.current.lock().expect("watch lock") = None;
        out
    }
}

impl Watch {
    /// Polls the collective in progress; ends the process when it has waited too long.
    fn run(&self, rank: i32, size: i32) {
        let tick = (self.timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            std::thread::sleep(tick);
            let current = self.current.lock().expect("watch lock");
            if let Some((since, what)) = current.as_ref().filter(|(since, _)| since.elapsed() > self.timeout) {
                let line = format!(
                    "error: rank {rank} of {size}: no answer from the other ranks for {:.0} s in {what}: a rank has \
                     died or hangs, or the network is down. Stopping this rank; continue from the last checkpoint \
                     with --resume (the same command).\n",
                    since.elapsed().as_secs_f64()
                );
                // One write: the ranks share the launcher's stderr.
                std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes()).ok();
                // Time for the launcher to forward the line before it ends the other ranks.
                std::thread::sleep(Duration::from_millis(500));
                std::process::exit(1);
            }
        }
    }
}

impl Drop for MpiWorld {
    fn drop(&mut self) {
        // Unwinding from a panic on one rank: MPI_Finalize would wait for the others, which
        // wait in a collective for this one. End them all instead.
        if std::thread::panicking() && self.world.size() > 1 {
            self.world.abort(1);
        }
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum_f32(&self, send: &[f32], sum: &mut [f32], what: &str) {
        self.watched(what, || self.world.all_reduce_into(send, sum, SystemOperation::sum()));
    }

    fn all_reduce_sum_u64(&self, buf: &mut [u64], what: &str) {
        let send = buf.to_vec();
        self.watched(what, || self.world.all_reduce_into(&send[..], buf, SystemOperation::sum()));
    }

    fn broadcast_f32(&self, root: usize, buf: &mut [f32], what: &str) {
        self.watched(what, || self.world.process_at_rank(root as i32).broadcast_into(buf));
    }

    fn barrier(&self, what: &str) {
        self.watched(what, || self.world.barrier());
    }
}
