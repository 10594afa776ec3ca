//! Elementwise functions of one var (exp, tanh, both GELUs...) and scalar arithmetic
//! (`x + 2.5`, `x * s`...). Each forward calls the tensor op of the same name; each backward
//! multiplies `dout` by the local derivative, written next to it, from the saved input `x`
//! or output `y`, whichever the derivative is cheaper in.

use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::var::Var;
use deltaw_tensor::Tensor;

/// Which elementwise function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum UnaryFn {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Tanh,
    Sigmoid,
    Relu,
    Silu,
    Gelu,
    GeluTanh,
    Powf(f32),
    AddScalar(f32),
    MulScalar(f32),
    DivScalar(f32),
}

/// An elementwise function and its input.
pub(crate) struct Unary {
    f: UnaryFn,
    input: Var,
}

impl Var {
    fn unary(&self, f: UnaryFn, value: Tensor) -> Var {
        Var::from_op(value, Op::Unary(Unary { f, input: self.clone() }))
    }

    pub fn neg(&self) -> Var {
        self.unary(UnaryFn::Neg, self.value().neg())
    }

    pub fn abs(&self) -> Var {
        self.unary(UnaryFn::Abs, self.value().abs())
    }

    pub fn exp(&self) -> Var {
        self.unary(UnaryFn::Exp, self.value().exp())
    }

    pub fn log(&self) -> Var {
        self.unary(UnaryFn::Log, self.value().log())
    }

    pub fn sqrt(&self) -> Var {
        self.unary(UnaryFn::Sqrt, self.value().sqrt())
    }

    pub fn rsqrt(&self) -> Var {
        self.unary(UnaryFn::Rsqrt, self.value().rsqrt())
    }

    pub fn tanh(&self) -> Var {
        self.unary(UnaryFn::Tanh, self.value().tanh())
    }

    pub fn sigmoid(&self) -> Var {
        self.unary(UnaryFn::Sigmoid, self.value().sigmoid())
    }

    pub fn relu(&self) -> Var {
        self.unary(UnaryFn::Relu, self.value().relu())
    }

    pub fn silu(&self) -> Var {
        self.unary(UnaryFn::Silu, self.value().silu())
    }

    /// Exact GELU, `x · Φ(x)` (BERT).
    pub fn gelu(&self) -> Var {
        self.unary(UnaryFn::Gelu, self.value().gelu())
    }

    /// Tanh-approximated GELU (GPT-2).
    pub fn gelu_tanh(&self) -> Var {
        self.unary(UnaryFn::GeluTanh, self.value().gelu_tanh())
    }

    pub fn powf(&self, exponent: f32) -> Var {
        self.unary(UnaryFn::Powf(exponent), self.value().powf(exponent))
    }

    pub fn add_scalar(&self, s: f32) -> Var {
        self.unary(UnaryFn::AddScalar(s), self.value().add_scalar(s))
    }

    pub fn sub_scalar(&self, s: f32) -> Var {
        self.unary(UnaryFn::AddScalar(-s), self.value().sub_scalar(s))
    }

    pub fn mul_scalar(&self, s: f32) -> Var {
        self.unary(UnaryFn::MulScalar(s), self.value().mul_scalar(s))
    }

    pub fn div_scalar(&self, s: f32) -> Var {
        self.unary(UnaryFn::DivScalar(s), self.value().div_scalar(s))
    }
}

/// `dx = dout · f'(x)`, with `x` the input and `y = f(x)` the output.
fn unary_backward(f: UnaryFn, x: &Tensor, y: &Tensor, dout: &Tensor) -> Tensor {
    let zero = || Tensor::scalar(0.0, &x.device());
    match f {
        UnaryFn::Neg => dout.neg(),                                   // d(-x) = -1
        UnaryFn::Abs => dout.mul(&x.gt(&zero()).sub(&x.lt(&zero()))), // sign(x), 0 at 0
        UnaryFn::Exp => dout.mul(y),                                  // e^x = y
        UnaryFn::Log => dout.div(x),                                  // 1/x
        UnaryFn::Sqrt => dout.div(y).mul_scalar(0.5),                 // 1/(2√x)
        UnaryFn::Rsqrt => dout.mul(&y.powf(3.0)).mul_scalar(-0.5),    // -x^(-3/2)/2 = -y³/2
        UnaryFn::Tanh => dout.mul(&(1.0 - &y.mul(y))),                // 1 - tanh²
        UnaryFn::Sigmoid => dout.mul(&y.mul(&(1.0 - y))),             // σ(1 - σ)
        UnaryFn::Relu => dout.mul(&x.gt(&zero())),                    // 1 where x > 0
        UnaryFn::Silu => {
            // d(x·σ(x)) = σ + x·σ·(1 - σ) = σ · (1 + x · (1 - σ))
            let s = x.sigmoid();
            dout.mul(&s.mul(&x.mul(&(1.0 - &s)).add_scalar(1.0)))
        }
        UnaryFn::Gelu => x.gelu_backward(dout),
        UnaryFn::GeluTanh => x.gelu_tanh_backward(dout),
        UnaryFn::Powf(e) => dout.mul(&x.powf(e - 1.0)).mul_scalar(e), // e · x^(e-1)
        UnaryFn::AddScalar(_) => dout.clone(),
        UnaryFn::MulScalar(s) => dout.mul_scalar(s),
        UnaryFn::DivScalar(s) => dout.div_scalar(s),
    }
}

/// Whether the derivative reads the input `x` and the output `y`.
fn reads(f: UnaryFn) -> (bool, bool) {
    match f {
        UnaryFn::Neg | UnaryFn::AddScalar(_) | UnaryFn::MulScalar(_) | UnaryFn::DivScalar(_) => (false, false),
        UnaryFn::Exp | UnaryFn::Sqrt | UnaryFn::Rsqrt | UnaryFn::Tanh | UnaryFn::Sigmoid => (false, true),
        UnaryFn::Abs
        | UnaryFn::Log
        | UnaryFn::Relu
        | UnaryFn::Silu
        | UnaryFn::Gelu
        | UnaryFn::GeluTanh
        | UnaryFn::Powf(_) => (true, false),
    }
}

impl Family for Unary {
    fn name(&self) -> String {
        match self.f {
            UnaryFn::Powf(e) => format!("powf({e})"),
            UnaryFn::AddScalar(s) => format!("add_scalar({s})"),
            UnaryFn::MulScalar(s) => format!("mul_scalar({s})"),
            UnaryFn::DivScalar(s) => format!("div_scalar({s})"),
            UnaryFn::GeluTanh => "gelu_tanh".into(),
            f => format!("{f:?}").to_lowercase(),
        }
    }

    fn inputs(&self) -> Vec<&Var> {
        vec![&self.input]
    }

    fn into_inputs(self) -> Vec<Var> {
        vec![self.input]
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
