//! Walking several strided operands in lock step, the engine behind every elementwise kernel.
//!
//! An elementwise op writes a contiguous output of shape S while reading K operands whose
//! layouts were broadcast to S (stride 0 on broadcast dims). We first *coalesce* the dims:
//! two neighbouring dims merge when, for every operand, `stride[i] == stride[i + 1] * size[i + 1]`
//! (stepping the outer dim is the same as running off the end of the inner one). A contiguous
//! `(B, T, C)` tensor becomes one dim of `B·T·C`; a bias added to `(N, C)` becomes N rows of C,
//! inner stride 1 for both operands and outer stride 0 for the bias. The output is then cut into fixed-size chunks for rayon, and each chunk into *segments* that stay inside
//! one innermost row, so a kernel sees `(dst, start offsets, inner strides)` and can run a
//! tight, vectorisable loop over slices when the inner strides are 1 (or 0 for a scalar).

use rayon::prelude::*;

/// Output elements per rayon task: big enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 15;

/// Coalesced iteration plan over K operands broadcast to one shape.
#[derive(Clone, Debug)]
pub struct StridedPlan<const K: usize> {
    /// Coalesced sizes; never empty (a scalar becomes `[1]`).
    dims: Vec<usize>,
    /// Per operand, its stride for each coalesced dim.
    strides: [Vec<usize>; K],
    /// Per operand, the storage index of element 0.
    offsets: [usize; K],
}

impl<const K: usize> StridedPlan<K> {
    /// `operands[k] = (strides, offset)` of operand k, already broadcast to `dims`.
    pub fn new(dims: &[usize], operands: [(&[usize], usize); K]) -> Self {
        let mut out_dims: Vec<usize> = Vec::with_capacity(dims.len());
        let mut strides: [Vec<usize>; K] = std::array::from_fn(|_| Vec::new());
        for (d, &size) in dims.iter().enumerate() {
            if size == 1 {
                continue; // a size-1 dim never moves the index
            }
            let mergeable =
                !out_dims.is_empty() && (0..K).all(|k| *strides[k].last().unwrap() == operands[k].0[d] * size);
            if mergeable {
                *out_dims.last_mut().unwrap() *= size;
                for (k, s) in strides.iter_mut().enumerate() {
                    *s.last_mut().unwrap() = operands[k].0[d];
                }
            } else {
                out_dims.push(size);
                for (k, s) in strides.iter_mut().enumerate() {
                    s.push(operands[k].0[d]);
                }
            }
        }
        if out_dims.is_empty() || dims.contains(&0) {
            out_dims = vec![dims.iter().product()];
            strides = std::array::from_fn(|_| vec![1]);
        }
        let offsets = std::array::from_fn(|k| operands[k].1);
        StridedPlan { dims: out_dims, strides, offsets }
    }

    /// Total number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    fn inner_len(&self) -> usize {
        *self.dims.last().unwrap()
    }

    /// Each operand's stride along the innermost coalesced dim.
    pub fn inner_strides(&self) -> [usize; K] {
        std::array::from_fn(|k| *self.strides[k].last().unwrap())
    }

    /// Storage index of element `(row, col)` for each operand, where `row` enumerates the
    /// outer dims in row-major order.
    fn offsets_at(&self, mut row: usize, col: usize) -> [usize; K] {
        let mut offs = self.offsets;
        for (off, strides) in offs.iter_mut().zip(&self.strides) {
            *off += col * strides.last().unwrap();
        }
        for d in (0..self.dims.len() - 1).rev() {
            let i = row % self.dims[d];
            row /= self.dims[d];
            for (off, strides) in offs.iter_mut().zip(&self.strides) {
                *off += i * strides[d];
            }
        }
        offs
    }

    /// Calls `f(dst_segment, start_offsets, inner_strides)` for segments covering `out` (which
    /// has `numel()` elements, row-major), in parallel. Element `j` of a segment reads operand k
    /// at `start_offsets[k] + j * inner_strides[k]`.
    pub fn for_each_segment<T, F>(&self, out: &mut [T], f: F)
    where
        T: Send,
        F: Fn(&mut [T], [usize; K], [usize; K]) + Sync,
    {
        assert_eq!(out.len(), self.numel(), "strided plan and output disagree");
        let inner = self.inner_len().max(1);
        let strides = self.inner_strides();
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(chunk, dst)| {
            let mut e = chunk * CHUNK;
            let mut done = 0;
            while done < dst.len() {
                let (row, col) = (e / inner, e % inner);
                let len = (inner - col).min(dst.len() - done);
                f(&mut dst[done..done + len], self.offsets_at(row, col), strides);
                done += len;
                e += len;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_operands_coalesce_to_one_dim() {
        let p = StridedPlan::<2>::new(&[2, 3, 4], [(&[12, 4, 1], 0), (&[12, 4, 1], 5)]);
        assert_eq!(p.dims, vec![24]);
        assert_eq!(p.inner_strides(), [1, 1]);
    }

    #[test]
    fn row_broadcast_keeps_two_dims() {
        // (N, C) + (C,) broadcast: the bias has stride 0 along N.
        let p = StridedPlan::<2>::new(&[4, 3], [(&[3, 1], 0), (&[0, 1], 0)]);
        assert_eq!(p.dims, vec![4, 3]);
        assert_eq!(p.offsets_at(2, 1), [7, 1]);
    }

    #[test]
    fn segments_cover_every_element_once() {
        let p = StridedPlan::<1>::new(&[3, 5], [(&[1, 3], 0)]);
        let mut out = vec![0usize; 15];
        p.for_each_segment(&mut out, |dst, [o], [s]| {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = o + j * s;
            }
        });
        assert_eq!(out, vec![0, 3, 6, 9, 12, 1, 4, 7, 10, 13, 2, 5, 8, 11, 14]);
    }
}
