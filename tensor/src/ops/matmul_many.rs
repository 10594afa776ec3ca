//! `x @ Wᵢᵀ` for several weights that share their input (see `cpu::qdot::many`).

use crate::cpu::qdot::{gemv_many, GemvPart};
use crate::storage::CpuStorage;
use crate::{DType, Device, Tensor};

impl Tensor {
    /// `[self @ W₀ᵀ, self @ W₁ᵀ, …]` for weights `Wᵢ` stored `(Nᵢ, K)` as `torch.nn.Linear`
    /// stores them, `self` `(.., K)`: each result as `self.matmul(&w.t())` gives it, bit for
    /// bit.
    ///
    /// One row of activations on the CPU against block-quantized weights of one type (a
    /// decoding step's query, key and value projections, or the gated MLP's gate and up)
    /// quantizes the row once and reads every weight in one parallel pass (`cpu::qdot::gemv_many`);
    /// otherwise each product runs alone.
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
        match self.one_row_quant_parts(weights) {
            Some(ty) => self.gemv_many_cpu(ty, weights),
            None => weights.iter().map(|w| self.matmul(&w.t())).collect(),
        }
    }

    /// The block type when `self` is one contiguous f32 row on the CPU and every weight a
    /// contiguous 2-D `(N, K)` matrix of that type there, with `K` the row's length.
    fn one_row_quant_parts(&self, weights: &[&Tensor]) -> Option<crate::QuantType> {
        let k = *self.dims().last()?;
        let row = self.device() == Device::Cpu
            && self.dtype() == DType::F32
            && self.numel() == k
            && self.is_contiguous()
            && self.rank() >= 2;
        let ty = weights.first()?.dtype().quant_type()?;
        let fits = |w: &&Tensor| {
            w.device() == Device::Cpu
                && w.dtype() == DType::Quant(ty)
                && w.rank() == 2
                && w.dims()[1] == k
                && w.is_contiguous()
                && ty.bytes_for(w.layout().offset()).is_some()
        };
        (row && weights.iter().all(fits)).then_some(ty)
    }

    fn gemv_many_cpu(&self, ty: crate::QuantType, weights: &[&Tensor]) -> Vec<Tensor> {
        let _op = crate::profile::op("matmul", || {
            let bytes: usize = weights.iter().map(|w| w.storage_bytes()).sum();
            let n: usize = weights.iter().map(|w| w.dims()[0]).sum();
            crate::profile::Cost::new(2.0 * (n * self.numel()) as f64, bytes as f64)
        });
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
        let lead = &self.dims()[..self.rank() - 1];
        let shape = |n: usize| lead.iter().copied().chain([n]).collect::<Vec<_>>();
        outs.into_iter().zip(weights).map(|(o, w)| Tensor::from_f32(o, shape(w.dims()[0]))).collect()
    }
}
