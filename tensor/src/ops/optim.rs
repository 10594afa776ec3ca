//! Fused optimizer updates: whole-parameter steps in one pass over memory.

use crate::cpu;
use crate::kinds::AdamWScalars;
use crate::storage::Storage;
use crate::tensor::Tensor;

impl Tensor {
    /// One AdamW update of the parameter `self` with gradient `grad` and moments `m`, `v`,
    /// returning the new `(p, m, v)` (see `cpu::optim::adamw` for the per-element math). Gives
    /// the same bits as the same update written with separate tensor ops, in one pass.
    ///
    /// # Panics
    /// If `grad`, `m` or `v` differ in shape from `self`, or a tensor is not f32.
    #[track_caller]
    pub fn adamw_update(
        &self,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        scalars: AdamWScalars,
    ) -> (Tensor, Tensor, Tensor) {
        let _op = crate::profile::op("adamw", || {
            let n = self.numel() as f64;
            crate::profile::Cost::new(12.0 * n, 7.0 * n)
        });
        for (name, t) in [("grad", grad), ("m", m), ("v", v)] {
            assert_eq!(
                t.shape(),
                self.shape(),
                "adamw_update: {name} {:?} and parameter {:?} differ in shape",
                t.shape(),
                self.shape()
            );
        }
        let op = "adamw_update";
        match self.storage() {
            Storage::Cpu(_) => {
                let (p, g) = (self.f32_values(op), grad.f32_values(op));
                let (p2, m2, v2) = cpu::optim::adamw(&p, &g, &m.f32_values(op), &v.f32_values(op), scalars);
                let shape = self.shape();
                (Tensor::from_f32(p2, shape), Tensor::from_f32(m2, shape), Tensor::from_f32(v2, shape))
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => super::on_gpu::adamw(self, grad, m, v, scalars),
        }
    }
}

/// AdamW scalars of a mid-run step with weight decay, for the kernels' tests.
#[cfg(test)]
pub(crate) fn sample_scalars(step_size: f32) -> AdamWScalars {
    AdamWScalars {
        decay: Some(0.999),
        one_minus_beta1: 0.1,
        beta2: 0.999,
        one_minus_beta2: 0.001,
        bias2_sqrt: 0.03,
        eps: 1e-8,
        step_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Device, Seed};

    #[test]
    fn fused_adamw_gives_the_bits_of_the_composite_update() {
        let dev = Device::Cpu;
        let n = 40_000; // several parallel blocks
        let (p, g) = (Tensor::randn(n, Seed(1), &dev), Tensor::randn(n, Seed(2), &dev));
        let (m, v) = (Tensor::randn(n, Seed(3), &dev).mul_scalar(0.1), Tensor::rand(n, Seed(4), &dev));
        let s = sample_scalars(-0.004);
        let (p2, m2, v2) = p.adamw_update(&g, &m, &v, s);
        let m_ref = m.add(&g.sub(&m).mul_scalar(s.one_minus_beta1));
        let v_ref = v.mul_scalar(s.beta2).add(&g.mul_scalar(s.one_minus_beta2).mul(&g));
        let denom = v_ref.sqrt().div_scalar(s.bias2_sqrt).add_scalar(s.eps);
        let p_ref = p.mul_scalar(0.999).add(&m_ref.mul_scalar(s.step_size).div(&denom));
        let bits = |t: &Tensor| t.to_vec().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&m2), bits(&m_ref));
        assert_eq!(bits(&v2), bits(&v_ref));
        assert_eq!(bits(&p2), bits(&p_ref));
    }
}
