//! Views: ops that change only the layout and share the storage (no data is copied), plus
//! `reshape`, which copies only when the data is not contiguous.

use crate::shape::{Dim, Shape};
use crate::Tensor;

impl Tensor {
    /// The same elements in row-major order with another shape, as `torch.reshape`. A view when
    /// the tensor is contiguous, otherwise a contiguous copy first.
    ///
    /// # Panics
    /// If the element counts differ.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        assert_eq!(
            shape.numel(),
            self.numel(),
            "reshape: cannot view {:?} ({} elements) as {shape:?} ({} elements)",
            self.shape(),
            self.numel(),
            shape.numel()
        );
        let base = self.contiguous();
        let layout = crate::Layout::new(shape.clone(), shape.contiguous_strides(), base.layout().offset());
        base.with_layout(layout)
    }

    /// Like [`Tensor::reshape`], but never copies.
    ///
    /// # Panics
    /// If the element counts differ or the tensor is not contiguous.
    #[track_caller]
    pub fn view(&self, shape: impl Into<Shape>) -> Tensor {
        assert!(self.is_contiguous(), "view: tensor of shape {:?} is not contiguous; use reshape", self.shape());
        self.reshape(shape)
    }

    /// Swaps dims `dim0` and `dim1` (a view).
    #[track_caller]
    pub fn transpose(&self, dim0: impl Dim, dim1: impl Dim) -> Tensor {
        let d0 = dim0.resolve(self.rank(), "transpose", self.shape());
        let d1 = dim1.resolve(self.rank(), "transpose", self.shape());
        self.with_layout(self.layout().transpose(d0, d1))
    }

    /// Swaps the last two dims (the matrix transpose of every matrix in a batch).
    ///
    /// # Panics
    /// If the tensor has fewer than 2 dims.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        assert!(self.rank() >= 2, "t: tensor of shape {:?} has fewer than 2 dims", self.shape());
        self.transpose(-2, -1)
    }

    /// Reorders the dims: output dim `i` is input dim `dims[i]` (a view), as `torch.permute`.
    ///
    /// # Panics
    /// If `dims` is not a permutation of `0..rank`.
    #[track_caller]
    pub fn permute<D: Dim>(&self, dims: &[D]) -> Tensor {
        let perm: Vec<usize> = dims.iter().map(|d| d.resolve(self.rank(), "permute", self.shape())).collect();
        let mut seen = vec![false; self.rank()];
        for &p in &perm {
            seen[p] = true;
        }
        assert!(
            perm.len() == self.rank() && seen.iter().all(|&s| s),
            "permute: {dims:?} is not a permutation of the dims of shape {:?}",
            self.shape()
        );
        self.with_layout(self.layout().permute(&perm))
    }

    /// Indices `start..start + length` along `dim` (a view), as `torch.narrow`.
    ///
    /// # Panics
    /// If the range does not fit in the dim.
    #[track_caller]
    pub fn narrow(&self, dim: impl Dim, start: usize, length: usize) -> Tensor {
        let d = dim.resolve(self.rank(), "narrow", self.shape());
        assert!(
            start + length <= self.dims()[d],
            "narrow: range {start}..{} is out of bounds for dim {d} of shape {:?}",
            start + length,
            self.shape()
        );
        self.with_layout(self.layout().narrow(d, start, length))
    }

    /// Inserts a dim of size 1 at `dim` (`-1` appends), as `torch.unsqueeze`.
    #[track_caller]
    pub fn unsqueeze(&self, dim: impl Dim) -> Tensor {
        let d = dim.resolve(self.rank() + 1, "unsqueeze", self.shape());
        self.with_layout(self.layout().unsqueeze(d))
    }

    /// Removes `dim`, which must have size 1.
    ///
    /// # Panics
    /// If that dim's size is not 1.
    #[track_caller]
    pub fn squeeze(&self, dim: impl Dim) -> Tensor {
        let d = dim.resolve(self.rank(), "squeeze", self.shape());
        assert_eq!(
            self.dims()[d],
            1,
            "squeeze: dim {d} of shape {:?} has size {}, not 1",
            self.shape(),
            self.dims()[d]
        );
        self.with_layout(self.layout().squeeze(d))
    }

    /// Broadcasts to `shape` without copying (stride 0 on repeated dims), as `torch.expand`.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let row = Tensor::arange(0.0, 3.0, &Device::Cpu);
    /// let grid = row.expand((2, 3));
    /// assert!(grid.shares_storage_with(&row));
    /// assert_eq!(grid.to_vec(), vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
    /// ```
    ///
    /// # Panics
    /// If the shapes are not broadcast-compatible (each dim equal, or 1 in `self`).
    #[track_caller]
    pub fn expand(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        match self.layout().broadcast_to(&shape) {
            Some(layout) => self.with_layout(layout),
            None => panic!("expand: cannot broadcast shape {:?} to {shape:?}", self.shape()),
        }
    }

    /// Same as [`Tensor::expand`] (NumPy's name).
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        self.expand(shape)
    }

    /// Merges all dims into one (a view when contiguous).
    pub fn flatten_all(&self) -> Tensor {
        self.reshape(self.numel())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Device, Tensor};

    fn t23() -> Tensor {
        Tensor::from_vec((0..6).map(|x| x as f32).collect(), (2, 3), &Device::Cpu).unwrap()
    }

    #[test]
    fn views_share_storage() {
        let a = t23();
        assert!(a.t().shares_storage_with(&a));
        assert!(a.narrow(1, 1, 2).shares_storage_with(&a));
        assert!(a.unsqueeze(0).expand((4, 2, 3)).shares_storage_with(&a));
        assert!(a.reshape((3, 2)).shares_storage_with(&a));
        assert!(!a.t().reshape(6).shares_storage_with(&a));
    }

    #[test]
    fn transpose_then_contiguous_reorders() {
        assert_eq!(t23().t().to_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(t23().permute(&[1, 0]).dims(), &[3, 2]);
    }

    #[test]
    #[should_panic(expected = "reshape: cannot view (2, 3) (6 elements) as (4,) (4 elements)")]
    fn reshape_to_wrong_size_panics_with_both_shapes() {
        t23().reshape(4);
    }

    #[test]
    #[should_panic(expected = "expand: cannot broadcast shape (2, 3) to (2, 4)")]
    fn expand_to_incompatible_shape_panics() {
        t23().expand((2, 4));
    }
}
