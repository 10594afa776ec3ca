//! Ops that move elements by position: `cat` / `stack`, `index_select`, `gather`, and the
//! selections `masked_fill` / `where_`. Backward sends each output element's gradient back to
//! where it came from: narrow slices for cat, scatter-adds for the gathers, masked copies for
//! the selections.

use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::ops::binary::broadcast_pair;
use crate::var::Var;
use deltaw_tensor::{Dim, Tensor};

/// An indexing op, its var inputs, and the index or mask tensors it saved.
pub(crate) enum Indexing {
    Cat { inputs: Vec<Var>, dim: usize },
    IndexSelect { input: Var, dim: usize, index: Tensor },
    Gather { input: Var, dim: usize, index: Tensor },
    MaskedFill { input: Var, mask: Tensor },
    Where { cond: Tensor, on_true: Var, on_false: Var },
}

impl Var {
    /// Concatenates along `dim`, as [`Tensor::cat`].
    #[track_caller]
    pub fn cat(vars: &[&Var], dim: impl Dim) -> Var {
        let values: Vec<Tensor> = vars.iter().map(|v| v.value()).collect();
        let first = values.first().expect("cat: needs at least one var");
        let d = dim.resolve(first.rank(), "cat", first.shape());
        let value = Tensor::cat(&values.iter().collect::<Vec<_>>(), d);
        Var::from_op(value, Op::Index(Indexing::Cat { inputs: vars.iter().map(|&v| v.clone()).collect(), dim: d }))
    }

    /// Stacks equal-shaped vars along a new dim (an `unsqueeze` of each, then `cat`).
    #[track_caller]
    pub fn stack(vars: &[&Var], dim: impl Dim) -> Var {
        let first = vars.first().expect("stack: needs at least one var");
        let d = dim.resolve(first.rank() + 1, "stack", &first.shape());
        let expanded: Vec<Var> = vars.iter().map(|v| v.unsqueeze(d)).collect();
        Var::cat(&expanded.iter().collect::<Vec<_>>(), d)
    }

    /// Entries `index` (1-D i32) along `dim`, as [`Tensor::index_select`].
    #[track_caller]
    pub fn index_select(&self, dim: impl Dim, index: &Tensor) -> Var {
        let x = self.value();
        let d = dim.resolve(x.rank(), "index_select", x.shape());
        Var::from_op(
            x.index_select(d, index),
            Op::Index(Indexing::IndexSelect { input: self.clone(), dim: d, index: index.clone() }),
        )
    }

    /// `out[i][j] = self[i][index[i][j]]` for `dim = 1`, as [`Tensor::gather`].
    #[track_caller]
    pub fn gather(&self, dim: impl Dim, index: &Tensor) -> Var {
        let x = self.value();
        let d = dim.resolve(x.rank(), "gather", x.shape());
        Var::from_op(
            x.gather(d, index),
            Op::Index(Indexing::Gather { input: self.clone(), dim: d, index: index.clone() }),
        )
    }

    /// `value` where `mask != 0`, else `self`; the mask broadcasts to `self`'s shape.
    #[track_caller]
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Var {
        let out = self.value().masked_fill(mask, value);
        Var::from_op(out, Op::Index(Indexing::MaskedFill { input: self.clone(), mask: mask.clone() }))
    }

    /// `on_true` where `cond != 0`, else `on_false` (`cond` is `self`'s role in
    /// [`Tensor::where_`]); the three broadcast together.
    #[track_caller]
    pub fn where_(cond: &Tensor, on_true: &Var, on_false: &Var) -> Var {
        let (on_true, on_false) = broadcast_pair("where", on_true, on_false);
        let shape = on_true.shape().broadcast(cond.shape()).unwrap_or_else(|| {
            panic!("where: cond of shape {:?} does not broadcast with {:?}", cond.shape(), on_true.shape())
        });
        let (on_true, on_false) = (on_true.expand(&shape), on_false.expand(&shape));
        let value = cond.where_(&on_true.value(), &on_false.value());
        Var::from_op(value, Op::Index(Indexing::Where { cond: cond.clone(), on_true, on_false }))
    }
}

/// Gradients back to where each output element came from.
fn index_backward(op: &Indexing, dout: &Tensor, grads: &mut Grads) {
    let zero = || Tensor::scalar(0.0, &dout.device());
    match op {
        // Each input gets its slice of dout (a view).
        Indexing::Cat { inputs, dim } => {
            let mut start = 0;
            for input in inputs {
                let len = input.dims()[*dim];
                grads.accumulate(input, dout.narrow(*dim, start, len));
                start += len;
            }
        }
        // dx[.., index[j], ..] += dout[.., j, ..]
        Indexing::IndexSelect { input, dim, index } => {
            grads.accumulate(input, input.value().zeros_like().index_add(*dim, index, dout));
        }
        // dx[.., index[.., j, ..], ..] += dout[.., j, ..]
        Indexing::Gather { input, dim, index } => {
            grads.accumulate(input, input.value().zeros_like().scatter_add(*dim, index, dout));
        }
        // Filled positions no longer depend on x.
        Indexing::MaskedFill { input, mask } => grads.accumulate(input, mask.where_(&zero(), dout)),
        Indexing::Where { cond, on_true, on_false } => {
            if on_true.requires_grad() {
                grads.accumulate(on_true, cond.where_(dout, &zero()));
            }
            if on_false.requires_grad() {
                grads.accumulate(on_false, cond.where_(&zero(), dout));
            }
        }
    }
}

impl Family for Indexing {
    fn name(&self) -> String {
        match self {
            Indexing::Cat { dim, .. } => format!("cat(dim={dim})"),
            Indexing::IndexSelect { dim, .. } => format!("index_select(dim={dim})"),
            Indexing::Gather { dim, .. } => format!("gather(dim={dim})"),
            Indexing::MaskedFill { .. } => "masked_fill".into(),
            Indexing::Where { .. } => "where".into(),
        }
    }

    fn inputs(&self) -> Vec<&Var> {
        match self {
            Indexing::Cat { inputs, .. } => inputs.iter().collect(),
            Indexing::IndexSelect { input, .. }
            | Indexing::Gather { input, .. }
            | Indexing::MaskedFill { input, .. } => vec![input],
            Indexing::Where { on_true, on_false, .. } => vec![on_true, on_false],
        }
    }

    fn saved(&self, _out: &Tensor) -> Vec<Tensor> {
        match self {
            Indexing::Cat { .. } => Vec::new(),
            Indexing::IndexSelect { index, .. } | Indexing::Gather { index, .. } => vec![index.clone()],
            Indexing::MaskedFill { mask, .. } => vec![mask.clone()],
            Indexing::Where { cond, .. } => vec![cond.clone()],
        }
    }

    fn backward(&self, _out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        index_backward(self, dout, grads)
    }
}
