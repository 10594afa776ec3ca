//! `std::ops` operators: `&a + &b`, `a * 2.0`, `-x`... with NumPy broadcasting between tensors.
//! Each forwards to the named method (`add`, `mul_scalar`...), which documents the semantics.

use crate::Tensor;
use std::ops::{Add, Div, Mul, Neg, Sub};

impl Add<&Tensor> for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn add(self, rhs: &Tensor) -> Tensor {
        Tensor::add(self, rhs)
    }
}

impl Sub<&Tensor> for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn sub(self, rhs: &Tensor) -> Tensor {
        Tensor::sub(self, rhs)
    }
}

impl Mul<&Tensor> for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn mul(self, rhs: &Tensor) -> Tensor {
        Tensor::mul(self, rhs)
    }
}

impl Div<&Tensor> for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn div(self, rhs: &Tensor) -> Tensor {
        Tensor::div(self, rhs)
    }
}

impl Add<Tensor> for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn add(self, rhs: Tensor) -> Tensor {
        Tensor::add(&self, &rhs)
    }
}

impl Sub<Tensor> for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn sub(self, rhs: Tensor) -> Tensor {
        Tensor::sub(&self, &rhs)
    }
}

impl Mul<Tensor> for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn mul(self, rhs: Tensor) -> Tensor {
        Tensor::mul(&self, &rhs)
    }
}

impl Div<Tensor> for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn div(self, rhs: Tensor) -> Tensor {
        Tensor::div(&self, &rhs)
    }
}

impl Add<f32> for &Tensor {
    type Output = Tensor;
    fn add(self, s: f32) -> Tensor {
        self.add_scalar(s)
    }
}

impl Sub<f32> for &Tensor {
    type Output = Tensor;
    fn sub(self, s: f32) -> Tensor {
        self.sub_scalar(s)
    }
}

impl Mul<f32> for &Tensor {
    type Output = Tensor;
    fn mul(self, s: f32) -> Tensor {
        self.mul_scalar(s)
    }
}

impl Div<f32> for &Tensor {
    type Output = Tensor;
    fn div(self, s: f32) -> Tensor {
        self.div_scalar(s)
    }
}

impl Add<f32> for Tensor {
    type Output = Tensor;
    fn add(self, s: f32) -> Tensor {
        self.add_scalar(s)
    }
}

impl Sub<f32> for Tensor {
    type Output = Tensor;
    fn sub(self, s: f32) -> Tensor {
        self.sub_scalar(s)
    }
}

impl Mul<f32> for Tensor {
    type Output = Tensor;
    fn mul(self, s: f32) -> Tensor {
        self.mul_scalar(s)
    }
}

impl Div<f32> for Tensor {
    type Output = Tensor;
    fn div(self, s: f32) -> Tensor {
        self.div_scalar(s)
    }
}

/// `s + x`.
impl Add<&Tensor> for f32 {
    type Output = Tensor;
    fn add(self, x: &Tensor) -> Tensor {
        x.add_scalar(self)
    }
}

/// `s - x = -x + s`.
impl Sub<&Tensor> for f32 {
    type Output = Tensor;
    fn sub(self, x: &Tensor) -> Tensor {
        x.unary(crate::UnaryOp::Neg).add_scalar(self)
    }
}

/// `s * x`.
impl Mul<&Tensor> for f32 {
    type Output = Tensor;
    fn mul(self, x: &Tensor) -> Tensor {
        x.mul_scalar(self)
    }
}

/// `s / x`.
impl Div<&Tensor> for f32 {
    type Output = Tensor;
    fn div(self, x: &Tensor) -> Tensor {
        x.unary(crate::UnaryOp::ScalarDiv(self))
    }
}

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
