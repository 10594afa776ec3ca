//! Elementwise functions of one var (exp, tanh, both GELUs...) and scalar arithmetic
//! (`x + 2.5`, `x * s`...). Each forward calls the tensor op of the same name; each backward
//! multiplies `dout` by the local derivative, written next to it, from the saved input `x`
//! or output `y`, whichever the derivative is cheaper in.

use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::var::Var;
use deltaw_tensor::{Tensor, UnaryOp};

/// An elementwise function and its input.
pub(crate) struct Unary {
    f: UnaryOp,
    input: Var,
}

impl Var {
    /// The tensor crate's `UnaryOp` names the function, so forward is `Tensor::unary`.
    fn unary(&self, f: UnaryOp) -> Var {
        Var::from_op(self.value().unary(f), Op::Unary(Unary { f, input: self.clone() }))
    }

    pub fn neg(&self) -> Var {
        self.unary(UnaryOp::Neg)
    }

    pub fn abs(&self) -> Var {
        self.unary(UnaryOp::Abs)
    }

    pub fn exp(&self) -> Var {
        self.unary(UnaryOp::Exp)
    }

    pub fn log(&self) -> Var {
        self.unary(UnaryOp::Log)
    }

    pub fn sqrt(&self) -> Var {
        self.unary(UnaryOp::Sqrt)
    }

    pub fn rsqrt(&self) -> Var {
        self.unary(UnaryOp::Rsqrt)
    }

    pub fn tanh(&self) -> Var {
        self.unary(UnaryOp::Tanh)
    }

    pub fn sigmoid(&self) -> Var {
        self.unary(UnaryOp::Sigmoid)
    }

    pub fn relu(&self) -> Var {
        self.unary(UnaryOp::Relu)
    }

    pub fn silu(&self) -> Var {
        self.unary(UnaryOp::Silu)
    }

    /// Exact GELU, `x · Φ(x)` (BERT).
    pub fn gelu(&self) -> Var {
        self.unary(UnaryOp::Gelu)
    }

    /// Tanh-approximated GELU (GPT-2).
    pub fn gelu_tanh(&self) -> Var {
        self.unary(UnaryOp::GeluTanh)
    }

    pub fn powf(&self, exponent: f32) -> Var {
        self.unary(UnaryOp::Powf(exponent))
    }

    pub fn add_scalar(&self, s: f32) -> Var {
        self.unary(UnaryOp::AddScalar(s))
    }

    pub fn sub_scalar(&self, s: f32) -> Var {
        self.unary(UnaryOp::AddScalar(-s))
    }

    pub fn mul_scalar(&self, s: f32) -> Var {
        self.unary(UnaryOp::MulScalar(s))
    }

    pub fn div_scalar(&self, s: f32) -> Var {
        self.unary(UnaryOp::DivScalar(s))
    }
}

/// `dx = dout · f'(x)`, with `x` the input and `y = f(x)` the output.
fn unary_backward(f: UnaryOp, x: &Tensor, y: &Tensor, dout: &Tensor) -> Tensor {
    let zero = || Tensor::scalar(0.0, &x.device());
    match f {
        UnaryOp::Neg => dout.neg(),                                   // d(-x) = -1
        UnaryOp::Abs => dout.mul(&x.gt(&zero()).sub(&x.lt(&zero()))), // sign(x), 0 at 0
        UnaryOp::Exp => dout.mul(y),                                  // e^x = y
        UnaryOp::Log => dout.div(x),                                  // 1/x
        UnaryOp::Sqrt => dout.div(y).mul_scalar(0.5),                 // 1/(2√x)
        UnaryOp::Rsqrt => dout.mul(&y.powf(3.0)).mul_scalar(-0.5),    // -x^(-3/2)/2 = -y³/2
        UnaryOp::Tanh => dout.mul(&(1.0 - &y.mul(y))),                // 1 - tanh²
        UnaryOp::Sigmoid => dout.mul(&y.mul(&(1.0 - y))),             // σ(1 - σ)
        UnaryOp::Relu => dout.mul(&x.gt(&zero())),                    // 1 where x > 0
        UnaryOp::Silu => {
            // d(x·σ(x)) = σ + x·σ·(1 - σ) = σ · (1 + x · (1 - σ))
            let s = x.sigmoid();
            dout.mul(&s.mul(&x.mul(&(1.0 - &s)).add_scalar(1.0)))
        }
        UnaryOp::Gelu => x.gelu_backward(dout),
        UnaryOp::GeluTanh => x.gelu_tanh_backward(dout),
        UnaryOp::Powf(e) => dout.mul(&x.powf(e - 1.0)).mul_scalar(e), // e · x^(e-1)
        UnaryOp::AddScalar(_) => dout.clone(),
        UnaryOp::MulScalar(s) => dout.mul_scalar(s),
        UnaryOp::DivScalar(s) => dout.div_scalar(s),
        UnaryOp::ScalarDiv(_) => dout.mul(y).div(x).neg(), // d(s/x) = -s/x² = -y/x
    }
}

/// Whether the derivative reads the input `x` and the output `y`.
fn reads(f: UnaryOp) -> (bool, bool) {
    match f {
        UnaryOp::Neg | UnaryOp::AddScalar(_) | UnaryOp::MulScalar(_) | UnaryOp::DivScalar(_) => (false, false),
        UnaryOp::Exp | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Tanh | UnaryOp::Sigmoid => (false, true),
        UnaryOp::Abs
        | UnaryOp::Log
        | UnaryOp::Relu
        | UnaryOp::Silu
        | UnaryOp::Gelu
        | UnaryOp::GeluTanh
        | UnaryOp::Powf(_) => (true, false),
        UnaryOp::ScalarDiv(_) => (true, true),
    }
}

impl Family for Unary {
    fn name(&self) -> String {
        match self.f {
            UnaryOp::Powf(e) => format!("powf({e})"),
            UnaryOp::AddScalar(s) => format!("add_scalar({s})"),
            UnaryOp::MulScalar(s) => format!("mul_scalar({s})"),
            UnaryOp::DivScalar(s) => format!("div_scalar({s})"),
            UnaryOp::ScalarDiv(s) => format!("scalar_div({s})"),
            UnaryOp::GeluTanh => "gelu_tanh".into(),
            f => format!("{f:?}").to_lowercase(),
        }
    }

    fn inputs(&self) -> Vec<&Var> {
        vec![&self.input]
    }

    fn saved(&self, out: &Tensor) -> Vec<Tensor> {
        let (x, y) = reads(self.f);
        let mut saved = Vec::new();
        if x {
            saved.push(self.input.value());
        }
        if y {
            saved.push(out.clone());
        }
        saved
    }

    fn backward(&self, out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        if self.input.requires_grad() {
            grads.accumulate(&self.input, unary_backward(self.f, &self.input.value(), out, dout));
        }
    }
}
