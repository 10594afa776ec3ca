//! Copying kernels that move rows around: `index_select` (and embedding lookup), `gather`,
//! and `cat`. Generic over the element type; inputs are contiguous and viewed as
//! `(outer, d, inner)` around the dim being indexed.

use rayon::prelude::*;

/// `out[o, j, :] = x[o, index[j], :]` with `x` of shape `(outer, d, inner)`.
///
/// # Panics
/// If an index is outside `0..d`; the message names `op`.
pub fn index_select<T: Copy + Send + Sync + Default + 'static>(
    x: &[T],
    (outer, d, inner): (usize, usize, usize),
    index: &[i32],
    op: &str,
) -> Vec<T> {
    for &i in index {
        assert!(i >= 0 && (i as usize) < d, "{op}: index {i} is out of range for a dim of size {d}");
    }
    let k = index.len();
    let mut out = super::pool::take_any(outer * k * inner); // every row written
    let rows_per_task = (4096 / inner.max(1)).max(1);
    out.par_chunks_mut(inner.max(1)).enumerate().with_min_len(rows_per_task).for_each(|(r, dst)| {
        let (o, j) = (r / k, r % k);
        let src = (o * d + index[j] as usize) * inner;
        dst.copy_from_slice(&x[src..src + inner]);
    });
    out
}

/// `out[o, index[j], :] += src[o, j, :]` into `out` viewed as `(outer, d, inner)`, with `src`
/// of shape `(outer, k, inner)`, `k = index.len()`: the backward of `index_select` and of
/// embedding lookup. Repeated indices accumulate. Deterministic and parallel: the source rows
/// are bucketed by destination first, then each destination row sums its sources in order.
///
/// # Panics
/// If an index is outside `0..d`.
pub fn index_add(out: &mut [f32], (_outer, d, inner): (usize, usize, usize), index: &[i32], src: &[f32]) {
    for &i in index {
        assert!(i >= 0 && (i as usize) < d, "index_add: index {i} is out of range for a dim of size {d}");
    }
    // CSR buckets: sources of destination r are order[start[r]..start[r + 1]].
    let mut start = vec![0usize; d + 1];
    index.iter().for_each(|&i| start[i as usize + 1] += 1);
    (0..d).for_each(|r| start[r + 1] += start[r]);
    let mut fill = start.clone();
    let mut order = vec![0usize; index.len()];
    for (j, &i) in index.iter().enumerate() {
        order[fill[i as usize]] = j;
        fill[i as usize] += 1;
    }
    let k = index.len();
    let rows_per_task = (4096 / inner.max(1)).max(1);
    out.par_chunks_mut(inner.max(1)).enumerate().with_min_len(rows_per_task).for_each(|(row, dst)| {
        let (o, r) = (row / d, row % d); // row o·d + r of the (outer, d, inner) output
        for &j in &order[start[r]..start[r + 1]] {
            let s = (o * k + j) * inner; // row o·k + j of the (outer, k, inner) source
            dst.iter_mut().zip(&src[s..s + inner]).for_each(|(a, &b)| *a += b);
        }
    });
}

/// `out[.., j, ..] = x[.., index[.., j, ..], ..]` along `dim`, as `torch.gather`: `index` has
/// the rank of `x` and its shape is the output's; other dims index `x` directly.
///
/// # Panics
/// If an index is outside `0..x_dims[dim]`.
pub fn gather<T: Copy + Send + Sync + Default + 'static>(
    x: &[T],
    x_dims: &[usize],
    dim: usize,
    index: &[i32],
    index_dims: &[usize],
) -> Vec<T> {
    let x_strides = row_major_strides(x_dims);
    let mut out = super::pool::take_any(index.len()); // every element written
    out.par_iter_mut().enumerate().with_min_len(1024).for_each(|(flat, y)| {
        *y = x[indexed_offset(flat, index[flat], (index_dims, dim), (x_dims, &x_strides), "gather")];
    });
    out
}

/// `out[.., index[.., j, ..], ..] += src[.., j, ..]` along `dim`, as `torch.scatter_add`: the
/// backward of `gather`. `index` and `src` share `index_dims`; `out` has `out_dims`. Sequential:
/// two elements may land on the same destination, and gather's index tensors are small.
///
/// # Panics
/// If an index is outside `0..out_dims[dim]`.
pub fn scatter_add(out: &mut [f32], out_dims: &[usize], dim: usize, index: &[i32], index_dims: &[usize], src: &[f32]) {
    let out_strides = row_major_strides(out_dims);
    for (flat, (&i, &v)) in index.iter().zip(src).enumerate() {
        out[indexed_offset(flat, i, (index_dims, dim), (out_dims, &out_strides), "scatter_add")] += v;
    }
}

/// Where element `flat` of a row-major index tensor of `index_dims` points in `x` (`x_dims`,
/// row-major `x_strides`): its coordinates with the one along `dim` replaced by `i`. Gather
/// reads there and scatter_add adds there.
///
/// # Panics
/// If a coordinate is outside its dim of `x`; the message names `op`.
fn indexed_offset(
    flat: usize,
    i: i32,
    (index_dims, dim): (&[usize], usize),
    (x_dims, x_strides): (&[usize], &[usize]),
    op: &str,
) -> usize {
    let (mut rem, mut offset) = (flat, 0);
    for d in (0..index_dims.len()).rev() {
        let coord = rem % index_dims[d];
        rem /= index_dims[d];
        let at = if d == dim { i } else { coord as i32 };
        assert!(
            at >= 0 && (at as usize) < x_dims[d],
            "{op}: index {at} is out of range for dim {d} of size {}",
            x_dims[d]
        );
        offset += at as usize * x_strides[d];
    }
    offset
}

fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * dims[d + 1];
    }
    strides
}

/// Concatenates `(outer, d_i, inner)` blocks along the middle dim.
pub fn cat<T: Copy + Send + Sync + Default + 'static>(parts: &[(&[T], usize)], outer: usize, inner: usize) -> Vec<T> {
    let total_d: usize = parts.iter().map(|(_, d)| d).sum();
    let mut out = super::pool::take_any(outer * total_d * inner); // every block written
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(total_d * inner).enumerate().for_each(|(o, dst)| {
        let mut at = 0;
        for &(src, d) in parts {
            let len = d * inner;
            dst[at..at + len].copy_from_slice(&src[o * len..(o + 1) * len]);
            at += len;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_add_accumulates_repeated_indices() {
        let mut out = vec![0.0; 3 * 2];
        index_add(&mut out, (1, 3, 2), &[2, 0, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(out, vec![3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);
    }
}
