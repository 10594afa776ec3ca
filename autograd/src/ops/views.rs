//! Views: reshape, transpose, permute, narrow, unsqueeze, squeeze, and `expand`, the explicit
//! broadcast that every broadcasting op inserts, whose backward is a sum. Forward methods and
//! backward rules side by side; no view saves a tensor for backward, only shapes.

use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::var::Var;
use deltaw_tensor::{Dim, Shape, Tensor};

/// A view op and its input.
pub(crate) enum View {
    Reshape { input: Var },
    Transpose { input: Var, dim0: usize, dim1: usize },
    Permute { input: Var, dims: Vec<usize> },
    Narrow { input: Var, dim: usize, start: usize, length: usize },
    Unsqueeze { input: Var, dim: usize },
    Squeeze { input: Var, dim: usize },
    Expand { input: Var },
}

impl Var {
    /// The same elements with another shape, as [`Tensor::reshape`].
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Var {
        let value = self.value().reshape(shape);
        Var::from_op(value, Op::View(View::Reshape { input: self.clone() }))
    }

    /// All elements in one dim.
    pub fn flatten_all(&self) -> Var {
        self.reshape(self.value().numel())
    }

    #[track_caller]
    pub fn transpose(&self, dim0: impl Dim, dim1: impl Dim) -> Var {
        let x = self.value();
        let (d0, d1) = (dim0.resolve(x.rank(), "transpose", x.shape()), dim1.resolve(x.rank(), "transpose", x.shape()));
        Var::from_op(x.transpose(d0, d1), Op::View(View::Transpose { input: self.clone(), dim0: d0, dim1: d1 }))
    }

    /// Swaps the last two dims.
    #[track_caller]
    pub fn t(&self) -> Var {
        self.transpose(-2, -1)
    }

    /// Output dim `i` is input dim `dims[i]`, as [`Tensor::permute`].
    #[track_caller]
    pub fn permute<D: Dim>(&self, dims: &[D]) -> Var {
        let x = self.value();
        let value = x.permute(dims);
        let dims = dims.iter().map(|d| d.resolve(x.rank(), "permute", x.shape())).collect();
        Var::from_op(value, Op::View(View::Permute { input: self.clone(), dims }))
    }

    /// Indices `start..start + length` of `dim`, as [`Tensor::narrow`].
    #[track_caller]
    pub fn narrow(&self, dim: impl Dim, start: usize, length: usize) -> Var {
        let x = self.value();
        let d = dim.resolve(x.rank(), "narrow", x.shape());
        Var::from_op(x.narrow(d, start, length), Op::View(View::Narrow { input: self.clone(), dim: d, start, length }))
    }

    #[track_caller]
    pub fn unsqueeze(&self, dim: impl Dim) -> Var {
        let x = self.value();
        let d = dim.resolve(x.rank() + 1, "unsqueeze", x.shape());
        Var::from_op(x.unsqueeze(d), Op::View(View::Unsqueeze { input: self.clone(), dim: d }))
    }

    #[track_caller]
    pub fn squeeze(&self, dim: impl Dim) -> Var {
        let x = self.value();
        let d = dim.resolve(x.rank(), "squeeze", x.shape());
        Var::from_op(x.squeeze(d), Op::View(View::Squeeze { input: self.clone(), dim: d }))
    }

    /// Broadcasts to `shape` without copying, as [`Tensor::expand`]; returns `self` when the
    /// shape is already `shape` (no node).
    #[track_caller]
    pub fn expand(&self, shape: impl Into<Shape>) -> Var {
        let shape = shape.into();
        let x = self.value();
        if x.shape() == &shape {
            return self.clone();
        }
        Var::from_op(x.expand(shape), Op::View(View::Expand { input: self.clone() }))
    }
}

/// `dx = dout` put back in the input's geometry: the inverse view, or for `narrow` zeros
/// around it, or for `expand` a sum over the broadcast dims.
fn view_backward(op: &View, dout: &Tensor, grads: &mut Grads) {
    let input = op.input();
    let dx = match op {
        View::Reshape { .. } => dout.reshape(input.shape()),
        View::Transpose { dim0, dim1, .. } => dout.transpose(*dim0, *dim1),
        View::Permute { dims, .. } => dout.permute(&inverse_permutation(dims)),
        View::Narrow { dim, start, length, .. } => pad_along(dout, *dim, *start, input.dims()[*dim] - start - length),
        View::Unsqueeze { dim, .. } => dout.squeeze(*dim),
        View::Squeeze { dim, .. } => dout.unsqueeze(*dim),
        View::Expand { .. } => dout.sum_to_shape(input.shape()),
    };
    grads.accumulate(input, dx);
}

/// `inv[dims[i]] = i`: permuting by `dims` then by `inv` is the identity.
fn inverse_permutation(dims: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; dims.len()];
    for (i, &d) in dims.iter().enumerate() {
        inv[d] = i;
    }
    inv
}

/// `g` with `before` zeros in front and `after` zeros behind along `dim`.
fn pad_along(g: &Tensor, dim: usize, before: usize, after: usize) -> Tensor {
    let zeros = |n: usize| {
        let mut shape = g.dims().to_vec();
        shape[dim] = n;
        Tensor::zeros(shape, &g.device())
    };
    let (z0, z1) = (zeros(before), zeros(after));
    Tensor::cat(&[&z0, g, &z1], dim)
}

impl View {
    fn input(&self) -> &Var {
        match self {
            View::Reshape { input }
            | View::Transpose { input, .. }
            | View::Permute { input, .. }
            | View::Narrow { input, .. }
            | View::Unsqueeze { input, .. }
            | View::Squeeze { input, .. }
            | View::Expand { input } => input,
        }
    }
}

impl Family for View {
    fn name(&self) -> String {
        match self {
            View::Reshape { .. } => "reshape".into(),
            View::Transpose { dim0, dim1, .. } => format!("transpose({dim0}, {dim1})"),
            View::Permute { dims, .. } => format!("permute({dims:?})"),
            View::Narrow { dim, start, length, .. } => format!("narrow(dim={dim}, {start}..{})", start + length),
            View::Unsqueeze { dim, .. } => format!("unsqueeze({dim})"),
            View::Squeeze { dim, .. } => format!("squeeze({dim})"),
            View::Expand { .. } => "expand".into(),
        }
    }

    fn inputs(&self) -> Vec<&Var> {
        vec![self.input()]
    }

    fn saved(&self, _out: &Tensor) -> Vec<Tensor> {
        Vec::new()
    }

    fn backward(&self, _out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        view_backward(self, dout, grads)
    }
}
