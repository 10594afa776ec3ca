//! Gradients summed and parameters shared over the ranks, in buckets.

use super::Collective;
use crate::error::Result;
use deltaw_autograd::{Grads, Var};
use deltaw_tensor::Tensor;
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
    let mut values: Vec<Vec<f32>> =
        reached.iter().map(|p| grads.get(p).map_or_else(|| vec![0.0; p.value().numel()], Tensor::to_vec)).collect();
    bucketed(&mut values, bucket_elems, &mut |buf, i| {
        comm.all_reduce_sum_f32(buf, &format!("gradient bucket {i} of step {step}"));
    });
    for (p, v) in reached.into_iter().zip(values) {
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
        bucketed(&mut values, bucket_elems, &mut |buf, i| {
            comm.broadcast_f32(owner, buf, &format!("parameter bucket {i} of rank {owner}, step {step}"));
        });
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

/// Applies `op(bucket, index)` to `vecs` seen as one stream cut into buckets of at most
/// `bucket` values: runs of small vectors are joined into one message, and a vector of a
/// bucket or more is sent in bucket-sized pieces in place. The cuts depend on the lengths
/// alone, so every rank makes the same calls.
fn bucketed(vecs: &mut [Vec<f32>], bucket: usize, op: &mut dyn FnMut(&mut [f32], usize)) {
    let (mut i, mut index) = (0, 0);
    while i < vecs.len() {
        if vecs[i].len() >= bucket {
            for piece in vecs[i].chunks_mut(bucket) {
                op(piece, index);
                index += 1;
            }
            i += 1;
            continue;
        }
        let (mut j, mut total) = (i, 0);
        while j < vecs.len() && vecs[j].len() < bucket && total + vecs[j].len() <= bucket {
            total += vecs[j].len();
            j += 1;
        }
        if total > 0 {
            let mut joined: Vec<f32> = Vec::with_capacity(total);
            vecs[i..j].iter().for_each(|v| joined.extend_from_slice(v));
            op(&mut joined, index);
            let mut at = 0;
            for v in &mut vecs[i..j] {
                let n = v.len();
                v.copy_from_slice(&joined[at..at + n]);
                at += n;
            }
            index += 1;
        }
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::bucketed;

    /// The messages `bucketed` sends for vectors of these lengths.
    fn messages(lens: &[usize], bucket: usize) -> Vec<usize> {
        let mut vecs: Vec<Vec<f32>> = lens.iter().map(|&n| vec![1.0; n]).collect();
        let mut sent = Vec::new();
        bucketed(&mut vecs, bucket, &mut |buf, i| {
            assert_eq!(i, sent.len(), "bucket indices count up");
            buf.iter_mut().for_each(|x| *x += 1.0);
            sent.push(buf.len());
        });
        assert!(vecs.iter().flatten().all(|&x| x == 2.0), "every value went through exactly one message");
        sent
    }

    #[test]
    fn small_tensors_share_buckets_and_large_ones_are_cut() {
        assert_eq!(messages(&[3, 4, 2, 10, 1, 1], 8), vec![7, 2, 8, 2, 2]);
        assert_eq!(messages(&[8, 8], 8), vec![8, 8]);
        assert_eq!(messages(&[0, 0], 4), Vec::<usize>::new());
        assert_eq!(messages(&[1, 2, 3], 1 << 20), vec![6]);
    }
}
