//! Gradients summed and parameters shared over the ranks, in buckets.

use super::Collective;
use crate::error::Result;
use deltaw_autograd::{Grads, Var};
use deltaw_tensor::Tensor;
use std::borrow::Cow;
use std::ops::Range;

/// Sums every rank's gradients of `params` so each rank holds the total (see the module docs
/// for why that is the single process's gradient). Tensors are flattened in `params`' order
/// and sent in buckets of at most `bucket_elems` values. A parameter whose gradient exists on
/// some ranks only counts as zeros on the others; one that no rank reached stays absent, so
/// the optimizer skips it as a single process would.
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
    // Sent straight from the gradients' buffers (no copy on the host); received into new ones.
    let sums: Vec<Vec<f32>> = {
        let sends: Vec<Cow<[f32]>> = reached
            .iter()
            .map(|p| grads.get(p).map_or_else(|| Cow::Owned(vec![0.0; p.value().numel()]), Tensor::values))
            .collect();
        let mut sums: Vec<Vec<f32>> = sends.iter().map(|v| vec![0.0; v.len()]).collect();
        let lens: Vec<usize> = sends.iter().map(|v| v.len()).collect();
        for (index, piece) in plan(&lens, bucket_elems).into_iter().enumerate() {
            let what = format!("gradient bucket {index} of step {step}");
            match piece {
                Piece::Part(i, range) => comm.all_reduce_sum_f32(&sends[i][range.clone()], &mut sums[i][range], &what),
                Piece::Joined(run) => {
                    let joined: Vec<f32> = sends[run.clone()].iter().flat_map(|v| v.iter().copied()).collect();
                    let mut sum = vec![0.0; joined.len()];
                    comm.all_reduce_sum_f32(&joined, &mut sum, &what);
                    split_into(&sum, &mut sums[run]);
                }
            }
        }
        sums
    };
    for (p, v) in reached.into_iter().zip(sums) {
        grads.insert(p, Tensor::from_vec(v, p.shape(), &p.value().device())?);
    }
    Ok(())
}

/// Gives every rank the values of the parameters each rank updated: rank `r` broadcasts
/// `params[shards[r]]`, in buckets, and the others take them (ZeRO-1's all-gather).
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
        let mut values: Vec<Vec<f32>> =
            owned.iter().map(|p| if mine { p.value().to_vec() } else { vec![0.0; p.value().numel()] }).collect();
        let lens: Vec<usize> = values.iter().map(Vec::len).collect();
        for (index, piece) in plan(&lens, bucket_elems).into_iter().enumerate() {
            let what = format!("parameter bucket {index} of rank {owner}, step {step}");
            match piece {
                Piece::Part(i, range) => comm.broadcast_f32(owner, &mut values[i][range], &what),
                Piece::Joined(run) => {
                    let mut joined: Vec<f32> = values[run.clone()].iter().flatten().copied().collect();
                    comm.broadcast_f32(owner, &mut joined, &what);
                    split_into(&joined, &mut values[run]);
                }
            }
        }
        if !mine {
            for (p, v) in owned.iter().zip(values) {
                p.set_value(Tensor::from_vec(v, p.shape(), &p.value().device())?);
            }
        }
    }
    Ok(())
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

/// Copies the consecutive parts of `joined` back into `vecs`.
fn split_into(joined: &[f32], vecs: &mut [Vec<f32>]) {
    let mut at = 0;
    for v in vecs {
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
