//! Ops that copy rows by index: `cat`, `stack`, `index_select`, `gather` (for every dtype: f32,
//! f16, bf16, i32), each gather beside its backward scatter-add (`index_add`, `scatter_add`).

use crate::cpu::index as kernels;
use crate::shape::Dim;
use crate::storage::{CpuStorage, IntoStorage, Storage};
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
        if let DType::Quant(ty) = first.dtype() {
            panic!("cat: {ty} tensors store blocks, not elements; to_dtype(F32) first");
        }
        let outer: usize = first.dims()[..d].iter().product();
        let inner: usize = first.dims()[d + 1..].iter().product();
        let mut shape = first.dims().to_vec();
        shape[d] = tensors.iter().map(|t| t.dims()[d]).sum();
        match first.storage() {
            Storage::Cpu(_) => {
                let parts: Vec<Tensor> = tensors.iter().map(|t| t.contiguous()).collect();
                let data = match first.dtype() {
                    DType::F32 => cat_typed::<f32>(&parts, outer, inner, d),
                    DType::F16 => cat_typed::<f16>(&parts, outer, inner, d),
                    DType::BF16 => cat_typed::<bf16>(&parts, outer, inner, d),
                    DType::I32 => cat_typed::<i32>(&parts, outer, inner, d),
                    DType::Quant(_) => unreachable!("refused above"),
                };
                Tensor::from_cpu(data, shape)
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::cat(tensors, outer, inner, d, shape),
        }
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
        let _op = crate::profile::op("index_select", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(0.0, 2.0 * n)
        });
        let d = dim.resolve(self.rank(), "index_select", self.shape());
        assert_eq!(index.rank(), 1, "index_select: index must be 1-D, got shape {:?}", index.shape());
        match self.storage() {
            Storage::Cpu(_) => {
                let op = "index_select";
                let idx = index.i32_values(op);
                let dims = around(self.dims(), d);
                let src = self.contiguous();
                let start = src.layout().offset();
                let range = start..start + src.numel();
                let data = match src.cpu_storage() {
                    CpuStorage::F32(v) => CpuStorage::F32(kernels::index_select(&v[range], dims, &idx, op)),
                    CpuStorage::F16(v) => CpuStorage::F16(kernels::index_select(&v[range], dims, &idx, op)),
                    CpuStorage::BF16(v) => CpuStorage::BF16(kernels::index_select(&v[range], dims, &idx, op)),
                    CpuStorage::I32(v) => CpuStorage::I32(kernels::index_select(&v[range], dims, &idx, op)),
                    CpuStorage::Quant { .. } => return super::quant::index_select(&src, d, &idx),
                };
                let mut shape = self.dims().to_vec();
                shape[d] = idx.len();
                Tensor::from_cpu(data, shape)
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::index_select(self, d, index),
        }
    }

    /// `self` plus `source` added at rows `index` along `dim`, as `torch.index_add`:
    /// `out[.., index[j], ..] = self[.., index[j], ..] + Σ source[.., j, ..]` (repeated indices
    /// accumulate). The backward of `index_select` and embedding lookup (with `self` zeros).
    ///
    /// # Panics
    /// If `index` is not 1-D i32, `source` is not `self`'s shape with `dim` resized to
    /// `index.len()`, or an index is out of range.
    #[track_caller]
    pub fn index_add(&self, dim: impl Dim, index: &Tensor, source: &Tensor) -> Tensor {
        let _op = crate::profile::op("index_add", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(source.numel() as f64, 2.0 * n + source.numel() as f64)
        });
        let d = self.check_index_add(dim, index, source);
        match self.storage() {
            Storage::Cpu(_) => scatter_on_cpu(self, index, source, "index_add", |out, idx, src| {
                kernels::index_add(out, around(self.dims(), d), idx, src)
            }),
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::index_add(self, d, index, source),
        }
    }

    /// [`Tensor::index_add`] into `self`'s own buffer where [`Tensor::values_mut`] allows (an
    /// embedding's gradient: a few rows added into a table-sized tensor of zeros).
    ///
    /// # Panics
    /// As [`Tensor::index_add`].
    #[track_caller]
    pub fn index_add_in_place(&mut self, dim: impl Dim, index: &Tensor, source: &Tensor) {
        let _op = crate::profile::op("index_add", || {
            crate::profile::Cost::new(source.numel() as f64, 2.0 * source.numel() as f64)
        });
        let d = self.check_index_add(dim, index, source);
        let dims = around(self.dims(), d);
        let on_host = index.device().is_cpu() && source.device().is_cpu();
        match self.values_mut().filter(|_| on_host) {
            Some(out) => kernels::index_add(out, dims, &index.i32_values("index_add"), &source.f32_values("index_add")),
            None => *self = self.index_add(d, index, source),
        }
    }

    /// `index_add`'s shape checks; returns the resolved dim.
    #[track_caller]
    fn check_index_add(&self, dim: impl Dim, index: &Tensor, source: &Tensor) -> usize {
        let d = dim.resolve(self.rank(), "index_add", self.shape());
        assert_eq!(index.rank(), 1, "index_add: index must be 1-D, got shape {:?}", index.shape());
        let mut want = self.dims().to_vec();
        want[d] = index.numel();
        assert_eq!(
            source.dims(),
            want,
            "index_add: source {:?} does not fit input {:?} and index {:?}",
            source.shape(),
            self.shape(),
            index.shape()
        );
        d
    }

    /// `out[i][j][k] = self[i][index[i][j][k]][k]` for `dim = 1` (and likewise for any dim),
    /// as `torch.gather`. `index` is i32 with the rank of `self`; the output has its shape.
    ///
    /// # Panics
    /// If the ranks differ, `index` is larger than `self` outside `dim`, or an index is out of range.
    #[track_caller]
    pub fn gather(&self, dim: impl Dim, index: &Tensor) -> Tensor {
        let _op = crate::profile::op("gather", || crate::profile::Cost::new(0.0, 2.0 * index.numel() as f64));
        let d = dim.resolve(self.rank(), "gather", self.shape());
        check_index_fits("gather", self, index, d);
        match self.storage() {
            Storage::Cpu(_) => {
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
                    CpuStorage::Quant { ty, .. } => {
                        panic!("gather: a {ty} tensor stores blocks, not elements; to_dtype(F32) first")
                    }
                };
                Tensor::from_cpu(data, index.shape())
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::gather(self, d, index),
        }
    }

    /// `self` plus `source` scattered along `dim` by `index`, as `torch.scatter_add`:
    /// `out[i][index[i][j][k]][k] += source[i][j][k]` for `dim = 1`. The backward of `gather`.
    ///
    /// # Panics
    /// If `index` and `source` differ in shape, their rank differs from `self`'s, or an
    /// index is out of range.
    #[track_caller]
    pub fn scatter_add(&self, dim: impl Dim, index: &Tensor, source: &Tensor) -> Tensor {
        let _op = crate::profile::op("scatter_add", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(source.numel() as f64, 2.0 * n + source.numel() as f64)
        });
        let d = dim.resolve(self.rank(), "scatter_add", self.shape());
        assert_eq!(
            index.shape(),
            source.shape(),
            "scatter_add: index {:?} and source {:?} differ in shape",
            index.shape(),
            source.shape()
        );
        check_index_fits("scatter_add", self, index, d);
        match self.storage() {
            Storage::Cpu(_) => scatter_on_cpu(self, index, source, "scatter_add", |out, idx, src| {
                kernels::scatter_add(out, self.dims(), d, idx, index.dims(), src)
            }),
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::scatter_add(self, d, index, source),
        }
    }
}

/// Panics unless `index` has `x`'s rank and is no larger than `x` off dim `d`: the index
/// shape of `gather` and `scatter_add`.
#[track_caller]
fn check_index_fits(op: &str, x: &Tensor, index: &Tensor, d: usize) {
    let fits = index.rank() == x.rank() && (0..x.rank()).all(|i| i == d || index.dims()[i] <= x.dims()[i]);
    assert!(fits, "{op}: index of shape {:?} does not fit input of shape {:?} along dim {d}", index.shape(), x.shape());
}

/// A scatter-add on the host: a copy of f32 `x` to which `kernel` adds `source` at `index`.
#[track_caller]
fn scatter_on_cpu(
    x: &Tensor,
    index: &Tensor,
    source: &Tensor,
    op: &str,
    kernel: impl FnOnce(&mut [f32], &[i32], &[f32]),
) -> Tensor {
    let mut out = x.f32_values(op).into_owned();
    kernel(&mut out, &index.i32_values(op), &source.f32_values(op));
    Tensor::from_f32(out, x.shape())
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

/// The `(outer, d, inner)` view of row-major `dims` around dim `d`: the products of the dims
/// before it, its size, and the product of the dims after it.
pub(crate) fn around(dims: &[usize], d: usize) -> (usize, usize, usize) {
    (dims[..d].iter().product(), dims[d], dims[d + 1..].iter().product())
}
