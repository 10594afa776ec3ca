//! Copying kernels that move rows around: `index_select` (and embedding lookup), `gather`,
//! and `cat`. Generic over the element type; inputs are contiguous and viewed as
//! `(outer, d, inner)` around the dim being indexed.

use rayon::prelude::*;

/// `out[o, j, :] = x[o, index[j], :]` with `x` of shape `(outer, d, inner)`.
///
/// # Panics
/// If an index is outside `0..d`; the message names `op`.
pub fn index_select<T: Copy + Send + Sync + Default>(
    x: &[T],
    (outer, d, inner): (usize, usize, usize),
    index: &[i32],
    op: &str,
) -> Vec<T> {
    for &i in index {
        assert!(i >= 0 && (i as usize) < d, "{op}: index {i} is out of range for a dim of size {d}");
    }
    let k = index.len();
    let mut out = vec![T::default(); outer * k * inner];
    let rows_per_task = (4096 / inner.max(1)).max(1);
    out.par_chunks_mut(inner.max(1)).enumerate().with_min_len(rows_per_task).for_each(|(r, dst)| {
        let (o, j) = (r / k, r % k);
        let src = (o * d + index[j] as usize) * inner;
        dst.copy_from_slice(&x[src..src + inner]);
    });
    out
}

/// `out[.., j, ..] = x[.., index[.., j, ..], ..]` along `dim`, as `torch.gather`: `index` has
/// the rank of `x` and its shape is the output's; other dims index `x` directly.
///
/// # Panics
/// If an index is outside `0..x_dims[dim]`.
pub fn gather<T: Copy + Send + Sync + Default>(
    x: &[T],
    x_dims: &[usize],
    dim: usize,
    index: &[i32],
    index_dims: &[usize],
) -> Vec<T> {
    let x_strides = row_major_strides(x_dims);
    let mut out = vec![T::default(); index.len()];
    out.par_iter_mut().enumerate().with_min_len(1024).for_each(|(flat, y)| {
        let (mut rem, mut src) = (flat, 0);
        for d in (0..index_dims.len()).rev() {
            let i = rem % index_dims[d];
            rem /= index_dims[d];
            let coord = if d == dim { index[flat] } else { i as i32 };
            assert!(
                coord >= 0 && (coord as usize) < x_dims[d],
                "gather: index {coord} is out of range for dim {d} of size {}",
                x_dims[d]
            );
            src += coord as usize * x_strides[d];
        }
        *y = x[src];
    });
    out
}

fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * dims[d + 1];
    }
    strides
}

/// Concatenates `(outer, d_i, inner)` blocks along the middle dim.
pub fn cat<T: Copy + Send + Sync + Default>(parts: &[(&[T], usize)], outer: usize, inner: usize) -> Vec<T> {
    let total_d: usize = parts.iter().map(|(_, d)| d).sum();
    let mut out = vec![T::default(); outer * total_d * inner];
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
