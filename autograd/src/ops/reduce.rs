//! Reductions along one dim (`sum mean max min var`, each with keepdim) and over all elements
//! (`sum_all`..., a flatten then a reduction over dim 0). Backward broadcasts `dout` back over
//! the reduced dim (a stride-0 view, no copy) and scales or masks it.

use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::var::Var;
use deltaw_tensor::{Dim, ReduceOp, Tensor};

/// A reduction of `input` along `dim`.
pub(crate) struct Reduce {
    op: ReduceOp,
    input: Var,
    dim: usize,
    keepdim: bool,
}

impl Var {
    #[track_caller]
    fn reduce(&self, dim: impl Dim, op: ReduceOp, keepdim: bool) -> Var {
        let x = self.value();
        let d = dim.resolve(x.rank(), &format!("{op:?}").to_lowercase(), x.shape());
        let value = x.reduce(d, op, keepdim);
        Var::from_op(value, Op::Reduce(Reduce { op, input: self.clone(), dim: d, keepdim }))
    }

    /// Sum over `dim`, which disappears from the shape.
    #[track_caller]
    pub fn sum(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Sum, false)
    }

    #[track_caller]
    pub fn sum_keepdim(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Sum, true)
    }

    #[track_caller]
    pub fn mean(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Mean, false)
    }

    #[track_caller]
    pub fn mean_keepdim(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Mean, true)
    }

    /// Largest value along `dim`; ties share the gradient equally (as `torch.amax`).
    #[track_caller]
    pub fn max(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Max, false)
    }

    #[track_caller]
    pub fn max_keepdim(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Max, true)
    }

    #[track_caller]
    pub fn min(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Min, false)
    }

    #[track_caller]
    pub fn min_keepdim(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Min, true)
    }

    /// Unbiased variance along `dim`, as `torch.var`.
    #[track_caller]
    pub fn var(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Var, false)
    }

    #[track_caller]
    pub fn var_keepdim(&self, dim: impl Dim) -> Var {
        self.reduce(dim, ReduceOp::Var, true)
    }

    /// Sum of all elements, 0-d.
    pub fn sum_all(&self) -> Var {
        self.flatten_all().sum(0)
    }

    /// Mean of all elements, 0-d.
    pub fn mean_all(&self) -> Var {
        self.flatten_all().mean(0)
    }

    pub fn max_all(&self) -> Var {
        self.flatten_all().max(0)
    }

    pub fn min_all(&self) -> Var {
        self.flatten_all().min(0)
    }
}

/// `dx` for `y = reduce(x, dim)`. With `g` = `dout` with the reduced dim kept (size 1) and
/// broadcast back to x's shape (a view), `n` = size of the reduced dim:
/// sum `dx = g`; mean `dx = g / n`; max / min `dx = g · [x = y] / #ties`;
/// var `dx = g · 2 (x - mean) / (n - 1)`.
fn reduce_backward(r: &Reduce, x: &Tensor, y: &Tensor, dout: &Tensor) -> Tensor {
    let keep = |t: &Tensor| if r.keepdim { t.clone() } else { t.unsqueeze(r.dim) };
    let g = keep(dout).expand(x.shape());
    let n = x.dims()[r.dim] as f32;
    match r.op {
        ReduceOp::Sum => g,
        ReduceOp::Mean => g.div_scalar(n),
        ReduceOp::Max | ReduceOp::Min => {
            let hits = x.eq(&keep(y));
            let ties = hits.sum_keepdim(r.dim);
            g.mul(&hits).div(&ties)
        }
        ReduceOp::Var => {
            let centred = x.sub(&x.mean_keepdim(r.dim));
            g.mul(&centred).mul_scalar(2.0 / (n - 1.0))
        }
        ReduceOp::ArgMax => unreachable!("argmax is not differentiable and is never recorded"),
    }
}

impl Family for Reduce {
    fn name(&self) -> String {
        let keep = if self.keepdim { ", keepdim" } else { "" };
        format!("{}(dim={}{keep})", format!("{:?}", self.op).to_lowercase(), self.dim)
    }

    fn inputs(&self) -> Vec<&Var> {
        vec![&self.input]
    }

    fn saved(&self, out: &Tensor) -> Vec<Tensor> {
        match self.op {
            ReduceOp::Sum | ReduceOp::Mean | ReduceOp::ArgMax => Vec::new(),
            ReduceOp::Max | ReduceOp::Min => vec![self.input.value(), out.clone()],
            ReduceOp::Var => vec![self.input.value()],
        }
    }

    fn backward(&self, out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        grads.accumulate(&self.input, reduce_backward(self, &self.input.value(), out, dout));
    }
}
