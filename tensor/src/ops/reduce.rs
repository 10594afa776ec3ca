//! Reductions along a dim (`sum`, `mean`, `max`, `min`, `argmax`, `var`, each with a
//! `_keepdim` twin), over all elements (`sum_all`...), and `sum_to_shape`, which undoes a
//! broadcast (the backward of `expand`).

use crate::cpu::reduce as kernels;
use crate::kinds::{ReduceDims, ReduceOp};
use crate::shape::{Dim, Shape};
use crate::storage::{CpuStorage, Storage};
use crate::Tensor;

impl Tensor {
    /// Reduces `dim` with `op`; the output drops that dim, or keeps it with size 1.
    /// `ArgMax` gives an i32 tensor, every other op f32.
    #[track_caller]
    pub fn reduce(&self, dim: impl Dim, op: ReduceOp, keepdim: bool) -> Tensor {
        let name = op.name();
        if self.rank() == 0 {
            // As PyTorch: a 0-d tensor reduces over dim 0 or -1 to itself (a 1-element view).
            dim.resolve(1, name, self.shape());
            return self.reshape(1).reduce(0, op, false);
        }
        let d = dim.resolve(self.rank(), name, self.shape());
        let dims = self.dims();
        let rdims = ReduceDims { outer: dims[..d].iter().product(), d: dims[d], inner: dims[d + 1..].iter().product() };
        if rdims.d == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min | ReduceOp::ArgMax) {
            panic!("{name}: cannot reduce dim {d} of size 0 in shape {:?}", self.shape());
        }
        let _op = crate::profile::op(op.name(), || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(n, n)
        });
        let mut shape = dims.to_vec();
        if keepdim {
            shape[d] = 1;
        } else {
            shape.remove(d);
        }
        match self.storage() {
            Storage::Cpu(_) => {
                let out = kernels::reduce(op, &self.f32_values(name), rdims);
                match op {
                    ReduceOp::ArgMax => {
                        Tensor::from_cpu(CpuStorage::I32(out.iter().map(|&i| i as i32).collect()), shape)
                    }
                    _ => Tensor::from_f32(out, shape),
                }
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::reduce(self, op, rdims, shape),
        }
    }

    /// Sum over `dim`, which disappears from the shape.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3), &Device::Cpu)?;
    /// assert_eq!(x.sum(0).to_vec(), vec![5.0, 7.0, 9.0]);
    /// assert_eq!(x.sum_keepdim(-1).dims(), &[2, 1]);
    /// assert_eq!(x.argmax(1).to_vec_i32(), vec![2, 2]);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    #[track_caller]
    pub fn sum(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Sum, false)
    }

    /// Sum over `dim`, kept with size 1.
    #[track_caller]
    pub fn sum_keepdim(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Sum, true)
    }

    #[track_caller]
    pub fn mean(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Mean, false)
    }

    #[track_caller]
    pub fn mean_keepdim(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Mean, true)
    }

    /// Largest value along `dim` (NaN if any element is NaN).
    #[track_caller]
    pub fn max(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Max, false)
    }

    #[track_caller]
    pub fn max_keepdim(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Max, true)
    }

    #[track_caller]
    pub fn min(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Min, false)
    }

    #[track_caller]
    pub fn min_keepdim(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Min, true)
    }

    /// Index (i32) of the first maximum along `dim`.
    #[track_caller]
    pub fn argmax(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::ArgMax, false)
    }

    #[track_caller]
    pub fn argmax_keepdim(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::ArgMax, true)
    }

    /// Unbiased variance along `dim`: `Σ (x - mean)² / (d - 1)`, as `torch.var`.
    #[track_caller]
    pub fn var(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Var, false)
    }

    #[track_caller]
    pub fn var_keepdim(&self, dim: impl Dim) -> Tensor {
        self.reduce(dim, ReduceOp::Var, true)
    }

    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Tensor {
        self.flatten_all().sum(0)
    }

    /// `Σ x²` over all elements (the squared L2 norm), as a 0-d tensor: the bits of
    /// `self.mul(self).sum_all()`, without the `x·x` tensor on the host.
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let t = Tensor::from_vec(vec![3.0f32, 4.0], 2, &Device::Cpu)?;
    /// assert_eq!(t.sum_squares().to_vec(), [25.0]);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    pub fn sum_squares(&self) -> Tensor {
        let _op = crate::profile::op("sum_squares", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(2.0 * n, n)
        });
        match self.storage() {
            Storage::Cpu(CpuStorage::F32(_)) => {
                let xs = self.f32_values("sum_squares");
                Tensor::from_f32(vec![kernels::sum_map(&xs, |x| x * x)], Shape::from(()))
            }
            _ => self.mul(self).sum_all(),
        }
    }

    pub fn mean_all(&self) -> Tensor {
        self.flatten_all().mean(0)
    }

    pub fn max_all(&self) -> Tensor {
        self.flatten_all().max(0)
    }

    pub fn min_all(&self) -> Tensor {
        self.flatten_all().min(0)
    }

    /// Sums `self` down to `shape`, the inverse of broadcasting `shape` up to `self.shape()`:
    /// leading dims that broadcasting added are summed away, and dims where `shape` has 1 are
    /// summed with keepdim. Returns `self` unchanged (no copy) when the shapes are equal.
    ///
    /// # Panics
    /// If `shape` does not broadcast to `self.shape()`.
    #[track_caller]
    pub fn sum_to_shape(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        if &shape == self.shape() {
            return self.clone();
        }
        let fits = shape.broadcast(self.shape()).as_ref() == Some(self.shape());
        assert!(fits, "sum_to_shape: {:?} does not broadcast to {:?}", shape, self.shape());
        let extra = self.rank() - shape.rank();
        // Merge the added leading dims into one and sum it: one reduction, not `extra`.
        let lead: usize = self.dims()[..extra].iter().product();
        let mut out =
            if extra > 0 { self.reshape([&[lead], &self.dims()[extra..]].concat()).sum(0) } else { self.clone() };
        for (d, &size) in shape.dims().iter().enumerate() {
            if size == 1 && out.dims()[d] != 1 {
                out = out.sum_keepdim(d);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::{Device, Seed, Tensor};

    #[test]
    fn sum_squares_has_the_bits_of_mul_then_sum() {
        let x = Tensor::randn((300, 77), Seed(5), &Device::Cpu);
        for t in [x.clone(), x.t()] {
            assert_eq!(t.sum_squares().to_vec()[0].to_bits(), t.mul(&t).sum_all().to_vec()[0].to_bits());
        }
    }

    #[test]
    fn sum_to_shape_undoes_broadcast() {
        let dev = Device::Cpu;
        let g = Tensor::ones((2, 3, 4), &dev);
        assert_eq!(g.sum_to_shape((3, 1)).to_vec(), vec![8.0; 3]);
        assert_eq!(g.sum_to_shape(()).to_vec(), vec![24.0]);
        assert_eq!(g.sum_to_shape((1, 4)).dims(), &[1, 4]);
    }
}
