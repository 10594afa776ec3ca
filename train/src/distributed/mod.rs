//! Data-parallel training: several processes (ranks) train one model together, each on its
//! own slice of every global batch, as llm.c and PyTorch's DDP do.
//!
//! # The math
//! The trainer's step already sums the gradients of `grad_accum` micro-batches, each loss
//! scaled by `1 / grad_accum`:
//!
//! ```text
//! g = Σ_{k < grad_accum} ∇ (loss_k / grad_accum)
//! ```
//!
//! A sum can be split: with `N` ranks, rank `r` runs micro-batches
//! `r·grad_accum/N .. (r+1)·grad_accum/N` of the step and sums them into `g_r`, and an
//! **all-reduce** (every rank sends its vector and receives the element-wise sum) gives every
//! rank `g = Σ_r g_r`, the single process's gradient. Every rank then holds the same `g`, clips
//! it by the same global norm and takes the same AdamW step, so the parameters stay equal on
//! every rank without being sent. The global batch (`batch_size · grad_accum`), the data
//! order, the dropout masks (seeded by the global micro-batch index) and the learning rate do
//! not depend on `N`: only where the work runs does.
//!
//! Floating-point addition is commutative but not associative. With 2 ranks and 2
//! micro-batches the single process computes `g_0 + g_1` and the all-reduce `g_0 + g_1` (or
//! `g_1 + g_0`, the same bits): the runs are equal bit for bit. With more micro-batches per
//! rank the grouping changes (`((g_0+g_1)+g_2)+g_3` against `(g_0+g_1)+(g_2+g_3)`) and the
//! results agree to rounding.
//!
//! # Buckets
//! Gradients are flattened in parameter order and summed in buckets of at most
//! [`DistConfig::bucket_elems`] values: small tensors share one message (one latency instead of
//! hundreds) and no message needs a copy of all gradients at once.
//!
//! # ZeRO-1
//! AdamW keeps two moments per parameter, twice the parameters' memory. With
//! [`DistConfig::zero1`], rank `r` keeps the moments of one contiguous shard of the parameter
//! list only ([`shard_ranges`]: whole tensors, split where the running element count crosses
//! `r/N` of the total), steps only that shard, and then broadcasts the shard's new values to
//! the others (together, an all-gather of the parameters). Per-parameter AdamW does the same
//! arithmetic wherever it runs, so ZeRO-1 gives the plain run's bits, with about `1/N` of its
//! optimizer memory per rank.
//!
//! # Faults
//! A rank that dies is noticed by the MPI launcher, which ends the others (MPICH's and Open
//! MPI's `mpiexec` both do). A rank that hangs, or a launcher that does not clean up, is caught
//! by a watchdog in [`MpiWorld`]: a collective that waits longer than its timeout ends the
//! rank with a message naming the step and the collective. Checkpoints are written only when
//! every rank has finished the step, so `--resume` continues from a complete one.

mod collective;
#[cfg(feature = "mpi")]
mod mpi_world;
mod sync;

pub use collective::{Collective, SingleProcess};
#[cfg(feature = "mpi")]
pub use mpi_world::MpiWorld;
pub use sync::{all_reduce_grads, broadcast_params, shard_ranges};

use crate::error::{Error, Result};
use deltaw_autograd::Var;
use deltaw_tensor::DType;
use std::ops::Range;

/// How a data-parallel run communicates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistConfig {
    /// The most f32 values summed in one message (default 4 Mi values, 16 MiB).
    pub bucket_elems: usize,
    /// Shard AdamW's state over the ranks (ZeRO stage 1).
    pub zero1: bool,
}

impl Default for DistConfig {
    fn default() -> Self {
        DistConfig { bucket_elems: 4 << 20, zero1: false }
    }
}

/// The trainer's view of a data-parallel run: the communicator, its settings, and this rank's
/// shard of the parameters (all of them without ZeRO-1).
pub struct Distributed {
    pub(crate) comm: Box<dyn Collective>,
    pub(crate) config: DistConfig,
    /// This rank's parameters (indices into the trainer's list) under ZeRO-1.
    pub(crate) shard: Range<usize>,
    /// Every rank's shard, by rank.
    pub(crate) shards: Vec<Range<usize>>,
}

impl Distributed {
    /// Checks that `params` can be trained over `comm` with `grad_accum` micro-batches a step
    /// (the trainer's, through [`Trainer::distributed`](crate::Trainer::distributed)).
    ///
    /// # Errors
    /// `grad_accum` not a multiple of the number of ranks (each rank runs the same number of
    /// micro-batches, so the step is the single process's), a bucket of 0 values, or a
    /// trainable parameter that is not f32 (gradients are summed as f32).
    pub(crate) fn new(
        comm: Box<dyn Collective>,
        config: DistConfig,
        params: &[Var],
        grad_accum: usize,
    ) -> Result<Distributed> {
        let n = comm.size();
        if !grad_accum.is_multiple_of(n) {
            return Err(Error::Options(format!(
                "grad_accum {grad_accum} must be a multiple of the number of ranks ({n}): each rank runs \
                 grad_accum / ranks micro-batches of every step (e.g. --grad-accum {n})"
            )));
        }
        if config.bucket_elems == 0 {
            return Err(Error::Options("the all-reduce bucket must hold at least one value".into()));
        }
        if let Some(p) = params.iter().find(|p| p.value().dtype() != DType::F32) {
            let (name, dtype) = (p.name().unwrap_or("?"), p.value().dtype());
            return Err(Error::Options(format!(
                "distributed training sums f32 gradients; parameter {name} is {dtype:?}"
            )));
        }
        let numels: Vec<usize> = params.iter().map(|p| p.value().numel()).collect();
        let shards = if config.zero1 { shard_ranges(&numels, n) } else { vec![0..params.len(); n] };
        let shard = shards[comm.rank()].clone();
        Ok(Distributed { comm, config, shard, shards })
    }

    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// The micro-batches of a step (`0..grad_accum`) that this rank runs.
    pub fn local_micro_batches(&self, grad_accum: usize) -> Range<usize> {
        let per = grad_accum / self.size();
        self.rank() * per..(self.rank() + 1) * per
    }

    /// True on every rank when `flag` is true on any (an interrupt must stop all ranks at the
    /// same step, or the others would wait for ever in the next all-reduce).
    pub fn any(&self, flag: bool, step: usize) -> bool {
        let mut v = [u64::from(flag)];
        self.comm.all_reduce_sum_u64(&mut v, &format!("the stop flag of step {step}"));
        v[0] > 0
    }
}
