//! Composite stand-ins for the fused Llama ops (rms_norm, rope, swiglu) until they land in
//! deltaw-autograd; inherent methods of the same names take precedence once they exist.

use deltaw_autograd::Var;
use deltaw_tensor::Tensor;

pub(crate) trait LlamaOps {
    fn rms_norm(&self, weight: &Var, eps: f32) -> Var;
    fn rope(&self, cos: &Tensor, sin: &Tensor) -> Var;
    fn swiglu(&self, up: &Var) -> Var;
}

impl LlamaOps for Var {
    fn rms_norm(&self, weight: &Var, eps: f32) -> Var {
        let ms = self.mul(self).mean_keepdim(-1).add_scalar(eps);
        self.mul(&ms.rsqrt()).mul(weight)
    }
    fn rope(&self, cos: &Tensor, sin: &Tensor) -> Var {
        let d = self.dims();
        let half = d[3] / 2;
        let cd = cos.dims();
        let (c, s) =
            (Var::constant(cos.reshape((cd[0], cd[1], 1, half))), Var::constant(sin.reshape((cd[0], cd[1], 1, half))));
        let (x1, x2) = (self.narrow(-1, 0, half), self.narrow(-1, half, half));
        Var::cat(&[&x1.mul(&c).sub(&x2.mul(&s)), &x2.mul(&c).add(&x1.mul(&s))], -1)
    }
    fn swiglu(&self, up: &Var) -> Var {
        self.silu().mul(up)
    }
}
