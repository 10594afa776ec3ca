//! Layout: how a tensor's shape maps onto its storage (strides and offset), and the views that
//! only change this mapping, never the data.
//!
//! Element `(i0, i1, .., in)` lives at `offset + Σ ik * strides[k]` in the storage. A stride of
//! 0 repeats an element along a dim: that is how broadcasting and `expand` avoid copies.

use crate::shape::Shape;

/// Shape, strides (in elements) and offset into the storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// The row-major layout of a freshly allocated tensor.
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout { shape, strides, offset: 0 }
    }

    pub(crate) fn new(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(shape.rank(), strides.len());
        Layout { shape, strides, offset }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    /// True when the elements are stored row-major with no gaps (the offset may be non-zero),
    /// so `storage[offset..offset + numel]` is the tensor. Size-1 dims may have any stride.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&size, &stride) in self.dims().iter().zip(&self.strides).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected *= size;
        }
        true
    }

    /// The last storage index this layout touches, plus one (0 for an empty tensor).
    pub fn storage_extent(&self) -> usize {
        if self.shape.numel() == 0 {
            return 0;
        }
        let last: usize = self.dims().iter().zip(&self.strides).map(|(&n, &s)| (n - 1) * s).sum();
        self.offset + last + 1
    }

    /// The element offset of matrix `i` (row-major over the leading `batch` dims) of a batched
    /// layout, whose batch dims may be broadcast (stride 0): where a batched matmul finds it.
    pub(crate) fn batch_offset(&self, batch: &[usize], mut i: usize) -> usize {
        let mut offset = self.offset;
        for d in (0..batch.len()).rev() {
            offset += (i % batch[d]) * self.strides[d];
            i /= batch[d];
        }
        offset
    }

    /// Swaps two dims (already resolved to non-negative indices).
    pub(crate) fn transpose(&self, d0: usize, d1: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.swap(d0, d1);
        strides.swap(d0, d1);
        Layout::new(dims.into(), strides, self.offset)
    }

    /// Reorders dims: output dim `i` is input dim `perm[i]`. `perm` must be a permutation.
    pub(crate) fn permute(&self, perm: &[usize]) -> Layout {
        let dims = perm.iter().map(|&p| self.dims()[p]).collect::<Vec<_>>();
        let strides = perm.iter().map(|&p| self.strides[p]).collect();
        Layout::new(dims.into(), strides, self.offset)
    }

    /// Keeps indices `start..start + len` of `dim`; the offset moves, the strides stay.
    pub(crate) fn narrow(&self, dim: usize, start: usize, len: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        dims[dim] = len;
        let offset = if len == 0 { self.offset } else { self.offset + start * self.strides[dim] };
        Layout::new(dims.into(), self.strides.clone(), offset)
    }

    /// Broadcasts to `target` (same rank or more): new leading dims and size-1 dims get stride 0.
    /// Returns `None` when a dim is neither equal to the target's nor 1.
    pub(crate) fn broadcast_to(&self, target: &Shape) -> Option<Layout> {
        let extra = target.rank().checked_sub(self.shape.rank())?;
        let mut strides = vec![0; target.rank()];
        for (i, (&size, &stride)) in self.dims().iter().zip(&self.strides).enumerate() {
            let want = target.dims()[extra + i];
            strides[extra + i] = match size {
                s if s == want => stride,
                1 => 0,
                _ => return None,
            };
        }
        Some(Layout::new(target.clone(), strides, self.offset))
    }

    /// Inserts a size-1 dim at `dim` (0..=rank). Its stride is irrelevant; we pick the one that
    /// keeps a contiguous layout contiguous.
    pub(crate) fn unsqueeze(&self, dim: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        let stride = if dim < strides.len() { strides[dim] * dims[dim] } else { 1 };
        dims.insert(dim, 1);
        strides.insert(dim, stride);
        Layout::new(dims.into(), strides, self.offset)
    }

    /// Removes dim `dim`, which must have size 1.
    pub(crate) fn squeeze(&self, dim: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.remove(dim);
        strides.remove(dim);
        Layout::new(dims.into(), strides, self.offset)
    }

    /// Storage indices of every element in row-major order.
    pub fn offsets(&self) -> StridedOffsets<'_> {
        StridedOffsets::new(self)
    }
}

/// Iterator over the storage index of each element of a layout, in row-major order.
/// Counts like an odometer: bump the last index, carry into earlier dims when one wraps.
pub struct StridedOffsets<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: Option<usize>,
}

impl<'a> StridedOffsets<'a> {
    fn new(layout: &'a Layout) -> Self {
        let next = (layout.shape.numel() > 0).then_some(layout.offset);
        StridedOffsets { layout, index: vec![0; layout.shape.rank()], next }
    }
}

impl Iterator for StridedOffsets<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let current = self.next?;
        let dims = self.layout.dims();
        let strides = &self.layout.strides;
        let mut offset = current;
        let mut d = dims.len();
        loop {
            if d == 0 {
                self.next = None;
                break;
            }
            d -= 1;
            self.index[d] += 1;
            offset += strides[d];
            if self.index[d] < dims[d] {
                self.next = Some(offset);
                break;
            }
            offset -= strides[d] * dims[d];
            self.index[d] = 0;
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_layout_visits_columns_first() {
        let l = Layout::contiguous((2, 3)).transpose(0, 1);
        assert_eq!(l.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert!(!l.is_contiguous());
    }

    #[test]
    fn broadcast_gives_zero_strides() {
        let l = Layout::contiguous(3).broadcast_to(&Shape::from((2, 3))).unwrap();
        assert_eq!(l.strides(), &[0, 1]);
        assert_eq!(l.offsets().collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2]);
        assert!(Layout::contiguous(3).broadcast_to(&Shape::from(4)).is_none());
    }

    #[test]
    fn narrow_moves_the_offset() {
        let l = Layout::contiguous((3, 4)).narrow(1, 1, 2);
        assert_eq!(l.offsets().collect::<Vec<_>>(), vec![1, 2, 5, 6, 9, 10]);
        assert_eq!(l.storage_extent(), 11);
    }

    #[test]
    fn scalar_and_empty_layouts() {
        assert_eq!(Layout::contiguous(()).offsets().collect::<Vec<_>>(), vec![0]);
        assert_eq!(Layout::contiguous((2, 0)).offsets().count(), 0);
    }
}
