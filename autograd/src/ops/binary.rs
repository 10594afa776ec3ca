//! Binary arithmetic with broadcasting (`add sub mul div maximum minimum`) and the `std::ops`
//! operators on `&Var`. Broadcasting is explicit: operands of different shapes are first
//! `expand`ed (a view node whose backward sums), so every binary backward sees equal shapes.

use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::var::Var;
use deltaw_tensor::{BinaryOp, Tensor};

/// A binary op on two vars of the same shape (expanded beforehand when they were not).
pub(crate) struct Binary {
    f: BinaryOp,
    lhs: Var,
    rhs: Var,
}

/// Both operands expanded to their common broadcast shape (no node when a shape already fits).
#[track_caller]
pub(crate) fn broadcast_pair(op: &str, a: &Var, b: &Var) -> (Var, Var) {
    let (sa, sb) = (a.shape(), b.shape());
    let shape =
        sa.broadcast(&sb).unwrap_or_else(|| panic!("{op}: shapes {sa:?} and {sb:?} cannot be broadcast together"));
    (a.expand(&shape), b.expand(&shape))
}

impl Var {
    #[track_caller]
    fn binary(&self, rhs: &Var, f: BinaryOp) -> Var {
        let (lhs, rhs) = broadcast_pair(&format!("{f:?}").to_lowercase(), self, rhs);
        let (a, b) = (lhs.value(), rhs.value());
        Var::from_op(a.binary(&b, f), Op::Binary(Binary { f, lhs, rhs }))
    }

    /// `self + rhs` with NumPy broadcasting.
    #[track_caller]
    pub fn add(&self, rhs: &Var) -> Var {
        self.binary(rhs, BinaryOp::Add)
    }

    #[track_caller]
    pub fn sub(&self, rhs: &Var) -> Var {
        self.binary(rhs, BinaryOp::Sub)
    }

    #[track_caller]
    pub fn mul(&self, rhs: &Var) -> Var {
        self.binary(rhs, BinaryOp::Mul)
    }

    #[track_caller]
    pub fn div(&self, rhs: &Var) -> Var {
        self.binary(rhs, BinaryOp::Div)
    }

    /// Elementwise max; at ties each side gets half the gradient, as PyTorch.
    #[track_caller]
    pub fn maximum(&self, rhs: &Var) -> Var {
        self.binary(rhs, BinaryOp::Maximum)
    }

    #[track_caller]
    pub fn minimum(&self, rhs: &Var) -> Var {
        self.binary(rhs, BinaryOp::Minimum)
    }
}

/// `(da, db)` for `y = f(a, b)`, all of one shape; a side is `None` when not `need`ed.
fn binary_backward(
    f: BinaryOp,
    (a, b): (&Tensor, &Tensor),
    y: &Tensor,
    dout: &Tensor,
    need: (bool, bool),
) -> (Option<Tensor>, Option<Tensor>) {
    let (need_a, need_b) = need;
    match f {
        BinaryOp::Add => (need_a.then(|| dout.clone()), need_b.then(|| dout.clone())),
        BinaryOp::Sub => (need_a.then(|| dout.clone()), need_b.then(|| dout.neg())),
        // d(ab)/da = b, d(ab)/db = a
        BinaryOp::Mul => (need_a.then(|| dout.mul(b)), need_b.then(|| dout.mul(a))),
        BinaryOp::Div => {
            // d(a/b)/da = 1/b, d(a/b)/db = -a/b² = -(1/b)·y
            let da = dout.div(b);
            let db = need_b.then(|| da.mul(y).neg());
            (need_a.then_some(da), db)
        }
        BinaryOp::Maximum | BinaryOp::Minimum => {
            // The winner takes the gradient; ties split it: w = [a wins] + ½[a = b].
            let wins = if f == BinaryOp::Maximum { a.gt(b) } else { a.lt(b) };
            let w = wins.add(&a.eq(b).mul_scalar(0.5));
            (need_a.then(|| dout.mul(&w)), need_b.then(|| dout.mul(&(1.0 - &w))))
        }
        // Comparisons make masks, which have no gradient: `Var` never records them.
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            unreachable!("{f:?} is not recorded")
        }
    }
}

impl Family for Binary {
    fn name(&self) -> String {
        format!("{:?}", self.f).to_lowercase()
    }

    fn inputs(&self) -> Vec<&Var> {
        vec![&self.lhs, &self.rhs]
    }

    fn saved(&self, out: &Tensor) -> Vec<Tensor> {
        match self.f {
            BinaryOp::Add | BinaryOp::Sub => Vec::new(),
            BinaryOp::Div => vec![self.rhs.value(), out.clone()],
            _ => vec![self.lhs.value(), self.rhs.value()], // Mul, Maximum, Minimum
        }
    }

    fn backward(&self, out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        let need = (self.lhs.requires_grad(), self.rhs.requires_grad());
        let (da, db) = binary_backward(self.f, (&self.lhs.value(), &self.rhs.value()), out, dout, need);
        da.into_iter().for_each(|g| grads.accumulate(&self.lhs, g));
        db.into_iter().for_each(|g| grads.accumulate(&self.rhs, g));
    }
}

// Operators: `&a + &b`, `&a * 2.0`, `-&a`... forward to the named methods above.

impl std::ops::Add<&Var> for &Var {
    type Output = Var;
    #[track_caller]
    fn add(self, rhs: &Var) -> Var {
        Var::add(self, rhs)
    }
}

impl std::ops::Sub<&Var> for &Var {
    type Output = Var;
    #[track_caller]
    fn sub(self, rhs: &Var) -> Var {
        Var::sub(self, rhs)
    }
}

impl std::ops::Mul<&Var> for &Var {
    type Output = Var;
    #[track_caller]
    fn mul(self, rhs: &Var) -> Var {
        Var::mul(self, rhs)
    }
}

impl std::ops::Div<&Var> for &Var {
    type Output = Var;
    #[track_caller]
    fn div(self, rhs: &Var) -> Var {
        Var::div(self, rhs)
    }
}

impl std::ops::Add<f32> for &Var {
    type Output = Var;
    fn add(self, s: f32) -> Var {
        self.add_scalar(s)
    }
}

impl std::ops::Sub<f32> for &Var {
    type Output = Var;
    fn sub(self, s: f32) -> Var {
        self.sub_scalar(s)
    }
}

impl std::ops::Mul<f32> for &Var {
    type Output = Var;
    fn mul(self, s: f32) -> Var {
        self.mul_scalar(s)
    }
}

impl std::ops::Div<f32> for &Var {
    type Output = Var;
    fn div(self, s: f32) -> Var {
        self.div_scalar(s)
    }
}

impl std::ops::Neg for &Var {
    type Output = Var;
    fn neg(self) -> Var {
        Var::neg(self)
    }
}
