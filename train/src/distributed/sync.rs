//! Gradients summed and parameters shared over the ranks, in buckets.

use super::Collective;
use crate::error::Result;
use deltaw_autograd::{Grads, Var};
use deltaw_tensor::{Device, Tensor};
use std::ops::Range;

/// Sums every rank's gradients of `params` so each rank holds the total (see the module docs
/// for why that is the single process's gradient). Tensors are flattened in `params`' order
/// and sent in buckets of at most `bucket_elems` values. A parameter whose gradient exists on
/// some ranks only counts as zeros on the others; one that no rank reached stays absent, so
/// the optimizer skips it as a single process would.
///
/// Each bucket is sent straight from the gradient's buffer and its sum copied back into it
/// from one bucket-sized receive buffer. (A fresh receive buffer for the whole gradient, 0.5
/// GB for GPT-2, took a page fault from the OS for every 4 KiB, every step.)
///
/// # Errors
/// A gradient that cannot be made on its parameter's device again.
pub fn all_reduce_grads(
    comm: &dyn Collective,
    params: &[Var],
    grads: &mut Grads,
    bucket_elems: usize,
    step: usize,
) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let mut present: Vec<u64> = params.iter().map(|p| u64::from(grads.get(p).is_some())).collect();
    comm.all_reduce_sum_u64(&mut present, &format!("the gradient list of step {step}"));
    let reached: Vec<&Var> = params.iter().zip(&present).filter(|(_, &count)| count > 0).map(|(p, _)| p).collect();
    let mut host = Vec::with_capacity(reached.len());
    for p in &reached {
        let mut g = grads.remove(p).unwrap_or_else(|| Tensor::zeros(p.shape(), &Device::Cpu));
        make_writable(&mut g)?;
        host.push(g);
    }
    {
        let mut bufs: Vec<&mut [f32]> = host.iter_mut().map(writable).collect();
        let lens: Vec<usize> = bufs.iter().map(|b| b.len()).collect();
        let mut scratch = Scratch::new(&lens, bucket_elems);
        for (index, piece) in plan(&lens, bucket_elems).into_iter().enumerate() {
            let what = format!("gradient bucket {index} of step {step}");
            match piece {
                Piece::Part(i, range) => {
                    let sum = &mut scratch.sum[..range.len()];
                    comm.all_reduce_sum_f32(&bufs[i][range.clone()], sum, &what);
                    bufs[i][range].copy_from_slice(sum);
                }
                Piece::Joined(run) => {
                    let (joined, sum) = scratch.join(&bufs[run.clone()]);
                    comm.all_reduce_sum_f32(joined, sum, &what);
                    split_into(sum, &mut bufs[run]);
                }
            }
        }
    }
    for (p, g) in reached.into_iter().zip(host) {
        grads.insert(p, to_device(g, &p.value().device())?);
    }
    Ok(())
}

/// Gives every rank the values of the parameters each rank updated: rank `r` broadcasts
/// `params[shards[r]]`, in buckets, and the others take them (ZeRO-1's all-gather), received
/// straight into the parameters' buffers where they are on the host and not shared.
///
/// # Errors
/// A value that cannot be made on its parameter's device.
pub fn broadcast_params(
    comm: &dyn Collective,
    params: &[Var],
    shards: &[Range<usize>],
    bucket_elems: usize,
    step: usize,
) -> Result<()> {
    for (owner, range) in shards.iter().enumerate() {
        let mine = owner == comm.rank();
        let owned = &params[range.clone()];
        let devices: Vec<Device> = owned.iter().map(|p| p.value().device()).collect();
        for p in owned {
            p.update_value(make_writable)?;
        }
        let lens: Vec<usize> = owned.iter().map(|p| p.value().numel()).collect();
        let mut scratch = Scratch::new(&lens, bucket_elems);
        for (index, piece) in plan(&lens, bucket_elems).into_iter().enumerate() {
            let what = format!("parameter bucket {index} of rank {owner}, step {step}");
            match piece {
                Piece::Part(i, range) => {
                    owned[i].update_value(|t| comm.broadcast_f32(owner, &mut writable(t)[range], &what));
                }
                Piece::Joined(run) => {
                    let values: Vec<Tensor> = owned[run.clone()].iter().map(Var::value).collect();
                    let joined = scratch.join_values(&values, mine);
                    drop(values);
                    comm.broadcast_f32(owner, joined, &what);
                    if !mine {
                        let mut at = 0;
                        for p in &owned[run] {
                            p.update_value(|t| {
                                let dst = writable(t);
                                dst.copy_from_slice(&joined[at..at + dst.len()]);
                                at += dst.len();
                            });
                        }
                    }
                }
            }
        }
        for (p, device) in owned.iter().zip(&devices) {
            p.update_value(|t| -> Result<()> {
                if !device.is_cpu() {
                    *t = Tensor::from_vec(t.to_vec(), t.shape(), device)?;
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// Makes `t` a contiguous f32 host tensor with a buffer of its own (a copy when it is not).
fn make_writable(t: &mut Tensor) -> Result<()> {
    if t.values_mut().is_none() {
        *t = Tensor::from_vec(t.to_vec(), t.shape(), &Device::Cpu)?;
    }
    Ok(())
}

/// The values of a tensor passed through [`make_writable`].
fn writable(t: &mut Tensor) -> &mut [f32] {
    t.values_mut().expect("made writable on the host before the collective")
}

/// `t` (on the host) moved to `device`: itself on the CPU.
fn to_device(t: Tensor, device: &Device) -> Result<Tensor> {
    if device.is_cpu() {
        return Ok(t);
    }
    Ok(Tensor::from_vec(t.to_vec(), t.shape(), device)?)
}

/// The bucket-sized buffers of one collective: small tensors joined into one message, and the
/// received sum of a message.
struct Scratch {
    joined: Vec<f32>,
    sum: Vec<f32>,
}

impl Scratch {
    fn new(lens: &[usize], bucket: usize) -> Scratch {
        let size = bucket.min(lens.iter().sum());
        Scratch { joined: Vec::with_capacity(size), sum: vec![0.0; size] }
    }

    /// `bufs` one after another in the joined buffer, and a receive buffer of that length.
    fn join(&mut self, bufs: &[&mut [f32]]) -> (&[f32], &mut [f32]) {
        self.joined.clear();
        bufs.iter().for_each(|b| self.joined.extend_from_slice(b));
        (&self.joined, &mut self.sum[..self.joined.len()])
    }

    /// The tensors' values one after another when `fill`, zeros of their total length
    /// otherwise (a broadcast's receivers).
    fn join_values(&mut self, values: &[Tensor], fill: bool) -> &mut [f32] {
        self.joined.clear();
        for v in values {
            match fill {
                true => self.joined.extend_from_slice(&v.values()),
                false => self.joined.resize(self.joined.len() + v.numel(), 0.0),
            }
        }
        &mut self.joined
    }
}

/// ZeRO-1's shards: `n` contiguous ranges of a parameter list with these element counts, whole
/// tensors each. A tensor goes to the rank whose `1/n` of the total holds its midpoint, so the
/// shards differ by at most about one tensor's size. Ranks may get an empty range when there
/// are fewer tensors than ranks.
///
/// ```
/// use deltaw_train::distributed::shard_ranges;
/// assert_eq!(shard_ranges(&[6, 2, 2, 2], 2), vec![0..1, 1..4]);
/// assert_eq!(shard_ranges(&[1, 1, 1, 1], 2), vec![0..2, 2..4]);
/// assert_eq!(shard_ranges(&[5], 3), vec![0..0, 0..1, 1..1]);
/// ```
pub fn shard_ranges(numels: &[usize], n: usize) -> Vec<Range<usize>> {
    let total: usize = numels.iter().sum();
    let mut owner = Vec::with_capacity(numels.len());
    let mut before = 0usize;
    for &numel in numels {
        // The midpoint in half-elements, so odd sizes need no rounding.
        let mid2 = 2 * before + numel;
        let r = if total == 0 { 0 } else { (mid2 as u128 * n as u128 / (2 * total) as u128) as usize };
        owner.push(r.min(n - 1));
        before += numel;
    }
    (0..n)
        .map(|r| {
            let start = owner.partition_point(|&o| o < r);
            let end = owner.partition_point(|&o| o <= r);
            start..end
        })
        .collect()
}

/// One message of a bucketed collective over vectors of given lengths.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    /// Values `range` of vector `i` (a vector of a bucket or more, sent in bucket-sized parts).
    Part(usize, Range<usize>),
    /// Vectors `run`, joined into one message (each shorter than a bucket, together at most one).
    Joined(Range<usize>),
}

/// The messages that send vectors of lengths `lens`, in order, in buckets of at most `bucket`
/// values. The plan depends on the lengths alone, so every rank makes the same calls.
fn plan(lens: &[usize], bucket: usize) -> Vec<Piece> {
    let (mut pieces, mut i) = (Vec::new(), 0);
    while i < lens.len() {
        if lens[i] >= bucket {
            pieces.extend((0..lens[i]).step_by(bucket).map(|at| Piece::Part(i, at..(at + bucket).min(lens[i]))));
            i += 1;
            continue;
        }
        let (mut j, mut total) = (i, 0);
        while j < lens.len() && lens[j] < bucket && total + lens[j] <= bucket {
            total += lens[j];
            j += 1;
        }
        if total > 0 {
            pieces.push(Piece::Joined(i..j));
        }
        i = j;
    }
    pieces
}

/// Copies the consecutive parts of `joined` back into `bufs`.
fn split_into(joined: &[f32], bufs: &mut [&mut [f32]]) {
    let mut at = 0;
    for v in bufs {
        let n = v.len();
        v.copy_from_slice(&joined[at..at + n]);
        at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::{plan, Piece};

    /// The message sizes of the plan for vectors of these lengths.
    fn messages(lens: &[usize], bucket: usize) -> Vec<usize> {
        let mut sent = vec![0; lens.len()];
        let mut sizes = Vec::new();
        for piece in plan(lens, bucket) {
            match piece {
                Piece::Part(i, range) => {
                    assert_eq!(range.start, sent[i], "parts in order");
                    sent[i] = range.end;
                    sizes.push(range.len());
                }
                Piece::Joined(run) => {
                    for i in run.clone() {
                        sent[i] = lens[i];
                    }
                    sizes.push(lens[run].iter().sum());
                }
            }
        }
        assert_eq!(sent, lens, "every value goes in exactly one message");
        sizes
    }

    #[test]
    fn small_tensors_share_buckets_and_large_ones_are_cut() {
        assert_eq!(messages(&[3, 4, 2, 10, 1, 1], 8), vec![7, 2, 8, 2, 2]);
        assert_eq!(messages(&[8, 8], 8), vec![8, 8]);
        assert_eq!(messages(&[0, 0], 4), Vec::<usize>::new());
        assert_eq!(messages(&[1, 2, 3], 1 << 20), vec![6]);
    }
}
