//! What the trainer needs from a communicator: four collectives over the ranks of a run.

/// The collectives of a data-parallel run. Every rank must call the same collectives in the
/// same order with buffers of the same length, as MPI requires; `what` names the call for the
/// message a stuck collective produces (e.g. "gradient bucket 3 of step 12").
///
/// [`SingleProcess`] is the one-rank case; [`MpiWorld`](super::MpiWorld) (cargo feature
/// `mpi`) runs over MPI.
///
/// ```
/// use deltaw_train::distributed::{Collective, SingleProcess};
///
/// let world = SingleProcess;
/// let (grads, mut sum) = ([0.5f32, -1.0], [0.0; 2]);
/// world.all_reduce_sum_f32(&grads, &mut sum, "example"); // the sum over one rank: a copy
/// assert_eq!((world.rank(), world.size(), sum), (0, 1, [0.5, -1.0]));
/// ```
pub trait Collective {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Writes into `sum` the element-wise sum of every rank's `send` (same lengths).
    fn all_reduce_sum_f32(&self, send: &[f32], sum: &mut [f32], what: &str);
    /// Replaces `buf` by the element-wise sum of every rank's `buf`.
    fn all_reduce_sum_u64(&self, buf: &mut [u64], what: &str);
    /// Replaces `buf` on every rank by `root`'s.
    fn broadcast_f32(&self, root: usize, buf: &mut [f32], what: &str);
    /// Returns once every rank has called it.
    fn barrier(&self, what: &str);
}

/// One process: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum_f32(&self, send: &[f32], sum: &mut [f32], _: &str) {
        sum.copy_from_slice(send);
    }

    fn all_reduce_sum_u64(&self, _: &mut [u64], _: &str) {}

    fn broadcast_f32(&self, _: usize, _: &mut [f32], _: &str) {}

    fn barrier(&self, _: &str) {}
}

/// A shared communicator (the command line keeps one for its own barriers and gives the
/// trainer a handle).
impl<C: Collective + ?Sized> Collective for std::sync::Arc<C> {
    fn rank(&self) -> usize {
        (**self).rank()
    }

    fn size(&self) -> usize {
        (**self).size()
    }

    fn all_reduce_sum_f32(&self, send: &[f32], sum: &mut [f32], what: &str) {
        (**self).all_reduce_sum_f32(send, sum, what)
    }

    fn all_reduce_sum_u64(&self, buf: &mut [u64], what: &str) {
        (**self).all_reduce_sum_u64(buf, what)
    }

    fn broadcast_f32(&self, root: usize, buf: &mut [f32], what: &str) {
        (**self).broadcast_f32(root, buf, what)
    }

    fn barrier(&self, what: &str) {
        (**self).barrier(what)
    }
}
