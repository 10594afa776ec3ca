//! Updates that write into a tensor's own buffer.
//!
//! Tensors are values: every op returns a new one, and a tensor's buffer may be shared by its
//! clones and views (a recorded autograd graph keeps the tensors it used). So an in-place
//! update here writes into the buffer only when no other tensor shares it, and otherwise
//! replaces `self` by a new tensor with the same values as the allocating op would give.
//! Either way the result has the same bits; the in-place path just takes no new memory. The
//! training step uses these for the updates it makes to whole parameters, gradients and
//! optimizer moments every step (see `docs/guide/14-data-parallel.md` for what that is worth).

use crate::cpu::{self, pool};
use crate::kinds::AdamWScalars;
use crate::storage::{CpuStorage, Storage};
use crate::tensor::Tensor;

impl Tensor {
    /// The values for writing, when `self` is a contiguous f32 host tensor whose buffer no
    /// other tensor shares; `None` otherwise (a GPU, f16 or strided tensor, or one with a live
    /// clone or view).
    ///
    /// ```
    /// use deltaw_tensor::{Device, Tensor};
    /// let mut t = Tensor::from_vec(vec![1.0f32, 2.0], 2, &Device::Cpu)?;
    /// t.values_mut().expect("not shared")[1] = 5.0;
    /// assert_eq!(t.to_vec(), [1.0, 5.0]);
    /// let view = t.clone();
    /// assert!(t.values_mut().is_none()); // the clone shares the buffer
    /// # drop(view);
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    pub fn values_mut(&mut self) -> Option<&mut [f32]> {
        if !self.is_contiguous() {
            return None;
        }
        let (start, n) = (self.layout().offset(), self.numel());
        match self.storage_mut()? {
            Storage::Cpu(CpuStorage::F32(data)) => Some(&mut data[start..start + n]),
            _ => None,
        }
    }

    /// `self ← self·k` (in place where [`Tensor::values_mut`] allows).
    pub fn mul_scalar_in_place(&mut self, k: f32) {
        let _op = crate::profile::op("mul_scalar", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(n, 2.0 * n)
        });
        match self.values_mut() {
            Some(xs) => cpu::elementwise::scale_in_place(xs, k),
            None => *self = self.mul_scalar(k),
        }
    }

    /// `self ← self + other` for tensors of one shape (in place where [`Tensor::values_mut`]
    /// allows).
    ///
    /// # Panics
    /// If the shapes differ (both are named).
    #[track_caller]
    pub fn add_in_place(&mut self, other: &Tensor) {
        let _op = crate::profile::op("add", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(n, 3.0 * n)
        });
        assert_eq!(
            self.shape(),
            other.shape(),
            "add_in_place: shapes {:?} and {:?} differ",
            self.shape(),
            other.shape()
        );
        let on_host = other.device().is_cpu() && other.dtype() == crate::DType::F32;
        match self.values_mut().filter(|_| on_host) {
            Some(xs) if other.is_contiguous() => {
                cpu::elementwise::zip_in_place(xs, &other.f32_values("add_in_place"), |a, b| a + b)
            }
            Some(xs) => {
                // A view: gathered into a recycled buffer first.
                let src = other.cpu_storage().as_slice::<f32>().expect("f32, checked above");
                let mut ys = pool::take(xs.len()); // every element written by the gather
                cpu::copy::gather_into(src, other.layout(), &mut ys);
                cpu::elementwise::zip_in_place(xs, &ys, |a, b| a + b);
                pool::give_back(ys);
            }
            None => *self = self.add(other),
        }
    }

    /// [`Tensor::adamw_update`] writing the new parameter and moments over `self`, `m` and
    /// `v` (in place where [`Tensor::values_mut`] allows all three).
    ///
    /// # Panics
    /// As [`Tensor::adamw_update`].
    #[track_caller]
    pub fn adamw_update_in_place(&mut self, grad: &Tensor, m: &mut Tensor, v: &mut Tensor, scalars: AdamWScalars) {
        let _op = crate::profile::op("adamw", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(12.0 * n, 7.0 * n)
        });
        let grad_on_host = grad.device().is_cpu() && grad.shape() == self.shape();
        if let (true, Some(p), Some(mv), Some(vv)) = (grad_on_host, self.values_mut(), m.values_mut(), v.values_mut()) {
            if mv.len() == p.len() && vv.len() == p.len() {
                return cpu::optim::adamw_in_place(p, &grad.f32_values("adamw_update"), mv, vv, scalars);
            }
        }
        let (p2, m2, v2) = self.adamw_update(grad, m, v, scalars);
        (*self, *m, *v) = (p2, m2, v2);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Device, Seed, Tensor};

    fn bits(t: &Tensor) -> Vec<u32> {
        t.to_vec().iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn in_place_updates_give_the_bits_of_the_allocating_ops() {
        let dev = Device::Cpu;
        let n = 300_000; // several parallel blocks and a ragged last one
        let (a, b) = (Tensor::randn(n, Seed(1), &dev), Tensor::randn(n, Seed(2), &dev));
        let mut x = Tensor::from_vec(a.to_vec(), n, &dev).unwrap();
        let ptr = x.values_mut().unwrap().as_ptr();
        x.add_in_place(&b);
        assert_eq!(bits(&x), bits(&a.add(&b)));
        x.mul_scalar_in_place(0.37);
        assert_eq!(bits(&x), bits(&a.add(&b).mul_scalar(0.37)));
        assert_eq!(x.values_mut().unwrap().as_ptr(), ptr, "no new buffer");

        let s = crate::ops::optim::sample_scalars(-0.01);
        let (m, v) = (Tensor::randn(n, Seed(3), &dev), Tensor::rand(n, Seed(4), &dev));
        let want = a.adamw_update(&b, &m, &v, s);
        let copy = |t: &Tensor| Tensor::from_vec(t.to_vec(), n, &dev).unwrap();
        let (mut p2, mut m2, mut v2) = (copy(&a), copy(&m), copy(&v));
        p2.adamw_update_in_place(&b, &mut m2, &mut v2, s);
        assert_eq!((bits(&p2), bits(&m2), bits(&v2)), (bits(&want.0), bits(&want.1), bits(&want.2)));
    }

    #[test]
    fn views_and_scatters_add_in_place() {
        let dev = Device::Cpu;
        // Large enough for the pool (a recycled buffer holds old values: every one is written).
        let (r, c) = (600, 700);
        let a = Tensor::randn((r, c), Seed(6), &dev);
        let b = Tensor::randn((c, r), Seed(7), &dev).t(); // a (r, c) view, strided
        let mut x = Tensor::from_vec(a.to_vec(), (r, c), &dev).unwrap();
        x.add_in_place(&b); // a transposed view, gathered
        assert_eq!(bits(&x), bits(&a.add(&b)));
        let rows = Tensor::randn((r, 2 * c), Seed(9), &dev).narrow(1, 3, c); // strided rows
        x.add_in_place(&rows); // gathered
        assert_eq!(bits(&x), bits(&a.add(&b).add(&rows)));

        let ids = Tensor::from_vec(vec![3i32, 0, 3, 599], 4, &dev).unwrap();
        let rows = Tensor::randn((4, c), Seed(8), &dev);
        let mut table = Tensor::zeros((r, c), &dev);
        table.index_add_in_place(0, &ids, &rows);
        assert_eq!(bits(&table), bits(&Tensor::zeros((r, c), &dev).index_add(0, &ids, &rows)));
    }

    #[test]
    fn a_shared_buffer_is_never_written() {
        let dev = Device::Cpu;
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2, 2), &dev).unwrap();
        let mut view = a.t(); // strided, and shares `a`'s buffer
        view.mul_scalar_in_place(10.0);
        assert_eq!(view.to_vec(), [10.0, 30.0, 20.0, 40.0]);
        let mut clone = a.clone();
        clone.add_in_place(&a);
        assert_eq!((a.to_vec(), clone.to_vec()), (vec![1.0, 2.0, 3.0, 4.0], vec![2.0, 4.0, 6.0, 8.0]));
    }
}
