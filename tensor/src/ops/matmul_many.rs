//! `x @ Wᵢᵀ` for several weights that share their input (see `cpu::qdot::many`).

use crate::cpu::gemm::{gemv_t_many, MatRef, Widen};
use crate::cpu::qdot::{gemv_many, GemvPart};
use crate::dtype::Element;
use crate::storage::CpuStorage;
use crate::{DType, Device, QuantType, Tensor};
use half::{bf16, f16};

/// How [`Tensor::matmul_t_many`] computes: all weights in one pass, by their type.
enum Route {
    Quant(QuantType),
    Dense(DType),
}

impl Tensor {
    /// `[self @ W₀ᵀ, self @ W₁ᵀ, …]` for weights `Wᵢ` stored `(Nᵢ, K)` as `torch.nn.Linear`
    /// stores them, `self` `(.., K)`: each result as `self.matmul(&w.t())` gives it, bit for
    /// bit.
    ///
    /// One row of activations on the CPU against weights of one type (a decoding step's
    /// query, key and value projections, or the gated MLP's gate and up) reads every weight in
    /// one parallel pass: f32, bf16 or f16 weights by `sgemm`'s matrix–vector route,
    /// block-quantized ones with the row quantized once (`cpu::qdot::gemv_many`). Otherwise
    /// each product runs alone.
    ///
    /// # Panics
    /// As `self.matmul(&w.t())` does for any weight that does not fit.
    ///
    /// ```
    /// use deltaw_tensor::{DType, Device, QuantType, Tensor};
    /// let w = Tensor::from_vec((0..64 * 3).map(|i| (i % 5) as f32).collect::<Vec<_>>(), (3, 64), &Device::Cpu)?;
    /// let w = w.to_dtype(DType::Quant(QuantType::Q4_0))?;
    /// let x = Tensor::full((1, 1, 64), 0.5, &Device::Cpu);
    /// let outs = x.matmul_t_many(&[&w, &w.narrow(0, 0, 2)]);
    /// assert_eq!(outs[0].dims(), &[1, 1, 3]);
    /// assert_eq!(outs[1].to_vec(), x.matmul(&w.narrow(0, 0, 2).t()).to_vec());
    /// # Ok::<(), deltaw_tensor::Error>(())
    /// ```
    #[track_caller]
    pub fn matmul_t_many(&self, weights: &[&Tensor]) -> Vec<Tensor> {
        let outs = match self.one_row_route(weights) {
            Some(Route::Quant(ty)) => self.gemv_many_cpu(ty, weights),
            Some(Route::Dense(DType::F32)) => self.gemv_dense::<f32>(weights),
            Some(Route::Dense(DType::BF16)) => self.gemv_dense::<bf16>(weights),
            Some(Route::Dense(DType::F16)) => self.gemv_dense::<f16>(weights),
            _ => return weights.iter().map(|w| self.matmul(&w.t())).collect(),
        };
        let lead = &self.dims()[..self.rank() - 1];
        let shape = |n: usize| lead.iter().copied().chain([n]).collect::<Vec<_>>();
        outs.into_iter().zip(weights).map(|(o, w)| Tensor::from_f32(o, shape(w.dims()[0]))).collect()
    }

    /// The one-pass route when `self` is one contiguous f32 row on the CPU and every weight a
    /// contiguous 2-D `(N, K)` matrix there of one type, with `K` the row's length.
    fn one_row_route(&self, weights: &[&Tensor]) -> Option<Route> {
        let k = *self.dims().last()?;
        // Row-major strides, also on the size-1 dims (`is_contiguous` ignores those), so that
        // `matmul` itself would take the same route: `quant_matmul` for a quantized weight, the
        // dot products of the gemv for a dense one.
        let dense = |t: &Tensor| t.layout().strides() == t.shape().contiguous_strides();
        let row = self.device() == Device::Cpu
            && self.dtype() == DType::F32
            && self.numel() == k
            && dense(self)
            && self.rank() >= 2;
        let dtype = weights.first()?.dtype();
        let route = match dtype {
            DType::Quant(ty) => Route::Quant(ty),
            DType::F32 | DType::BF16 | DType::F16 => Route::Dense(dtype),
            DType::I32 => return None,
        };
        let fits = |w: &&Tensor| {
            w.device() == Device::Cpu
                && w.dtype() == dtype
                && w.rank() == 2
                && w.dims()[1] == k
                && dense(w)
                && dtype.quant_type().is_none_or(|ty| ty.bytes_for(w.layout().offset()).is_some())
        };
        (row && weights.iter().all(fits)).then_some(route)
    }

    /// The profiler's record of one pass over `weights`.
    fn profile_many(&self, weights: &[&Tensor]) -> Option<crate::profile::OpTimer> {
        crate::profile::op("matmul", || {
            let bytes: usize = weights.iter().map(|w| w.storage_bytes()).sum();
            let n: usize = weights.iter().map(|w| w.dims()[0]).sum();
            crate::profile::Cost::new(2.0 * (n * self.numel()) as f64, bytes as f64)
        })
    }

    fn gemv_dense<T: Widen + Element>(&self, weights: &[&Tensor]) -> Vec<Vec<f32>> {
        let _op = self.profile_many(weights);
        let k = self.numel();
        let x = self.f32_values("matmul_t_many");
        let bs: Vec<MatRef<'_, T>> = weights
            .iter()
            .map(|w| MatRef {
                data: w.cpu_storage().as_slice::<T>().expect("checked dtype"),
                offset: w.layout().offset(),
                row_stride: 1,
                col_stride: k,
            })
            .collect();
        let mut outs: Vec<Vec<f32>> = weights.iter().map(|w| crate::cpu::pool::take(w.dims()[0])).collect();
        let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
        gemv_t_many(&x, &bs, &mut refs);
        outs
    }

    fn gemv_many_cpu(&self, ty: QuantType, weights: &[&Tensor]) -> Vec<Vec<f32>> {
        let _op = self.profile_many(weights);
        let k = self.numel();
        let x = self.f32_values("matmul_t_many");
        let mut outs: Vec<Vec<f32>> = weights.iter().map(|w| crate::cpu::pool::take(w.dims()[0])).collect();
        let mut parts: Vec<GemvPart> = weights
            .iter()
            .zip(outs.iter_mut())
            .map(|(w, out)| {
                let CpuStorage::Quant { bytes, .. } = w.cpu_storage() else { unreachable!("checked quantized") };
                let from = ty.bytes_for(w.layout().offset()).expect("checked whole blocks");
                let n = w.dims()[0];
                GemvPart { w: &bytes[from..from + n * ty.bytes_for(k).expect("checked")], n, out }
            })
            .collect();
        gemv_many(ty, k, &x, &mut parts);
        outs
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Device, QuantType, Seed, Tensor};

    #[test]
    fn every_product_equals_its_matmul_bit_for_bit() {
        let dev = Device::Cpu;
        for k in [64, 100, 896] {
            let x = Tensor::randn((1, 1, k), Seed(1), &dev);
            for dtype in [DType::F32, DType::BF16, DType::F16, DType::Quant(QuantType::Q4_0)] {
                if matches!(dtype, DType::Quant(_)) && k % 32 != 0 {
                    continue;
                }
                let ws: Vec<Tensor> = [896, 128, 3, 1000]
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| Tensor::randn((n, k), Seed(10 + i as u64), &dev).to_dtype(dtype).unwrap())
                    .collect();
                let refs: Vec<&Tensor> = ws.iter().collect();
                for (got, w) in x.matmul_t_many(&refs).iter().zip(&ws) {
                    let want = x.matmul(&w.t());
                    assert_eq!(got.dims(), want.dims());
                    let same = got.to_vec().iter().zip(want.to_vec()).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{dtype:?}, k = {k}, n = {}", w.dims()[0]);
                }
            }
        }
    }

    #[test]
    fn views_with_other_strides_on_unit_dims_give_matmul_s_values() {
        let dev = Device::Cpu;
        let k = 64;
        let v = Tensor::randn((k,), Seed(5), &dev);
        let xs = [v.reshape((1, 1, k)).expand((1, 1, k)), Tensor::randn((k, 1), Seed(6), &dev).t().unsqueeze(0)];
        for dtype in [DType::F32, DType::Quant(QuantType::Q4_0)] {
            let w = Tensor::randn((3, k), Seed(7), &dev).to_dtype(dtype).unwrap();
            let w1 = Tensor::randn((k, 1), Seed(8), &dev).t().to_dtype(dtype).unwrap(); // (1, k)
            for x in &xs {
                for (got, w) in x.matmul_t_many(&[&w, &w1]).iter().zip([&w, &w1]) {
                    let want = x.matmul(&w.t()).to_vec();
                    assert!(got.to_vec().iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype:?}");
                }
            }
        }
    }

    #[test]
    fn several_rows_or_mixed_types_take_the_products_apart() {
        let dev = Device::Cpu;
        let x = Tensor::randn((2, 3, 64), Seed(2), &dev);
        let (a, b) = (Tensor::randn((5, 64), Seed(3), &dev), Tensor::randn((7, 64), Seed(4), &dev));
        let b16 = b.to_dtype(DType::BF16).unwrap();
        for (w0, w1) in [(&a, &b), (&a, &b16)] {
            let outs = x.matmul_t_many(&[w0, w1]);
            assert_eq!(outs[1].to_vec(), x.matmul(&w1.t()).to_vec());
            assert_eq!(outs[0].dims(), &[2, 3, 5]);
        }
    }
}
