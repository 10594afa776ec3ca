//! Ops that copy rows by index: `cat`, `stack`, `index_select`, `gather`. They work for every
//! dtype (f32, f16, bf16, i32).

use crate::cpu::index as kernels;
use crate::shape::Dim;
use crate::storage::{CpuStorage, IntoStorage};
use crate::DType;
use crate::Tensor;
use half::{bf16, f16};

impl Tensor {
    /// Concatenates along `dim`; all other dims must match, as `torch.cat`.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let dev = Device::Cpu;
    /// let (a, b) = (Tensor::zeros((2, 1), &dev), Tensor::ones((2, 2), &dev));
    /// assert_eq!(Tensor::cat(&[&a, &b], -1).to_vec(), vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    /// ```
    ///
    /// # Panics
    /// If `tensors` is empty, or shapes, dtypes or devices disagree (naming both shapes).
    #[track_caller]
    pub fn cat(tensors: &[&Tensor], dim: impl Dim) -> Tensor {
        let first = *tensors.first().expect("cat: needs at least one tensor");
        let d = dim.resolve(first.rank(), "cat", first.shape());
        for t in tensors {
            let same_rest =
                t.rank() == first.rank() && (0..first.rank()).all(|i| i == d || t.dims()[i] == first.dims()[i]);
            assert!(same_rest, "cat: shapes {:?} and {:?} differ outside dim {d}", first.shape(), t.shape());
            assert_eq!(t.dtype(), first.dtype(), "cat: dtypes {} and {} differ", first.dtype(), t.dtype());
            assert_eq!(t.device(), first.device(), "cat: devices {} and {} differ", first.device(), t.device());
        }
        let outer: usize = first.dims()[..d].iter().product();
        let inner: usize = first.dims()[d + 1..].iter().product();
        let mut shape = first.dims().to_vec();
        shape[d] = tensors.iter().map(|t| t.dims()[d]).sum();
        #[cfg(feature = "gpu")]
        if let Some(out) = super::on_gpu::cat(tensors, outer, inner, d, shape.clone()) {
            return out;
        }
        let parts: Vec<Tensor> = tensors.iter().map(|t| t.contiguous()).collect();
        let data = match first.dtype() {
            DType::F32 => cat_typed::<f32>(&parts, outer, inner, d),
            DType::F16 => cat_typed::<f16>(&parts, outer, inner, d),
            DType::BF16 => cat_typed::<bf16>(&parts, outer, inner, d),
            DType::I32 => cat_typed::<i32>(&parts, outer, inner, d),
        };
        Tensor::from_cpu(data, shape)
    }

    /// Stacks equal-shaped tensors along a new dim `dim`, as `torch.stack`.
    #[track_caller]
    pub fn stack(tensors: &[&Tensor], dim: impl Dim) -> Tensor {
        let first = *tensors.first().expect("stack: needs at least one tensor");
        let d = dim.resolve(first.rank() + 1, "stack", first.shape());
        for t in tensors {
            assert_eq!(t.shape(), first.shape(), "stack: shapes {:?} and {:?} differ", first.shape(), t.shape());
        }
        let expanded: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(d)).collect();
        Tensor::cat(&expanded.iter().collect::<Vec<_>>(), d)
    }

    /// Picks entries `index` (a 1-D i32 tensor) along `dim`, as `torch.index_select`.
    ///
    /// # Panics
    /// If `index` is not 1-D i32 or holds an out-of-range entry.
    #[track_caller]
    pub fn index_select(&self, dim: impl Dim, index: &Tensor) -> Tensor {
        let d = dim.resolve(self.rank(), "index_select", self.shape());
        assert_eq!(index.rank(), 1, "index_select: index must be 1-D, got shape {:?}", index.shape());
        #[cfg(feature = "gpu")]
        if let Some(out) = super::on_gpu::index_select(self, d, index) {
            return out;
        }
        let idx = index.i32_values("index_select");
        let dims = (self.dims()[..d].iter().product(), self.dims()[d], self.dims()[d + 1..].iter().product());
        let src = self.contiguous();
        let start = src.layout().offset();
        let range = start..start + src.numel();
        let data = match src.cpu_storage() {
            CpuStorage::F32(v) => CpuStorage::F32(kernels::index_select(&v[range], dims, &idx, "index_select")),
            CpuStorage::F16(v) => CpuStorage::F16(kernels::index_select(&v[range], dims, &idx, "index_select")),
            CpuStorage::BF16(v) => CpuStorage::BF16(kernels::index_select(&v[range], dims, &idx, "index_select")),
            CpuStorage::I32(v) => CpuStorage::I32(kernels::index_select(&v[range], dims, &idx, "index_select")),
        };
        let mut shape = self.dims().to_vec();
        shape[d] = idx.len();
        Tensor::from_cpu(data, shape)
    }

    /// `out[i][j][k] = self[i][index[i][j][k]][k]` for `dim = 1` (and likewise for any dim),
    /// as `torch.gather`. `index` is i32 with the rank of `self`; the output has its shape.
    ///
    /// # Panics
    /// If the ranks differ, `index` is larger than `self` outside `dim`, or an index is out of range.
    #[track_caller]
    pub fn gather(&self, dim: impl Dim, index: &Tensor) -> Tensor {
        let d = dim.resolve(self.rank(), "gather", self.shape());
        let fits = index.rank() == self.rank() && (0..self.rank()).all(|i| i == d || index.dims()[i] <= self.dims()[i]);
        assert!(
            fits,
            "gather: index of shape {:?} does not fit input of shape {:?} along dim {d}",
            index.shape(),
            self.shape()
        );
        #[cfg(feature = "gpu")]
        if let Some(out) = super::on_gpu::gather(self, d, index) {
            return out;
        }
        let idx = index.i32_values("gather");
        let src = self.contiguous();
        let start = src.layout().offset();
        let range = start..start + src.numel();
        let (xd, id) = (self.dims(), index.dims());
        let data = match src.cpu_storage() {
            CpuStorage::F32(v) => CpuStorage::F32(kernels::gather(&v[range], xd, d, &idx, id)),
            CpuStorage::F16(v) => CpuStorage::F16(kernels::gather(&v[range], xd, d, &idx, id)),
            CpuStorage::BF16(v) => CpuStorage::BF16(kernels::gather(&v[range], xd, d, &idx, id)),
            CpuStorage::I32(v) => CpuStorage::I32(kernels::gather(&v[range], xd, d, &idx, id)),
        };
        Tensor::from_cpu(data, index.shape())
    }
}

/// Runs the `cat` kernel over the parts' buffers of element type `T`.
fn cat_typed<T: IntoStorage + Default>(parts: &[Tensor], outer: usize, inner: usize, dim: usize) -> CpuStorage {
    let slices: Vec<(&[T], usize)> = parts
        .iter()
        .map(|t| {
            let start = t.layout().offset();
            let all = t.cpu_storage().as_slice::<T>().expect("dtypes checked by cat");
            (&all[start..start + t.numel()], t.dims()[dim])
        })
        .collect();
    T::into_storage(kernels::cat(&slices, outer, inner))
}
