//! `Op`: how a recorded `Var` was made. One variant per op family; each family (in `ops/`)
//! keeps its forward methods and its backward rules side by side and implements [`Family`].
//! An enum rather than closures, so the `match` is exhaustive and the graph can be printed.

use crate::checkpoint::Checkpoint;
use crate::grads::Grads;
use crate::ops::{binary::Binary, index::Indexing, matmul::Matmul, nn::Nn, reduce::Reduce, unary::Unary, views::View};
use crate::var::Var;
use deltaw_tensor::Tensor;

/// What every op family provides to the engine and to the graph dump.
pub(crate) trait Family {
    /// A short label with the op's parameters, e.g. `"sum(dim=1)"`.
    fn name(&self) -> String;
    /// The vars this op read, in order.
    fn inputs(&self) -> Vec<&Var>;
    /// The tensors the backward rule reads (`out` is this op's own output value).
    fn saved(&self, out: &Tensor) -> Vec<Tensor>;
    /// Adds this op's input gradients to `grads`, given the output `out` and its gradient.
    fn backward(&self, out: &Tensor, dout: &Tensor, grads: &mut Grads);
}

/// How a recorded var was made.
pub(crate) enum Op {
    View(View),
    Unary(Unary),
    Binary(Binary),
    Reduce(Reduce),
    Matmul(Matmul),
    Nn(Nn),
    Index(Indexing),
    Checkpoint(Checkpoint),
}

impl Op {
    fn family(&self) -> &dyn Family {
        match self {
            Op::View(op) => op,
            Op::Unary(op) => op,
            Op::Binary(op) => op,
            Op::Reduce(op) => op,
            Op::Matmul(op) => op,
            Op::Nn(op) => op,
            Op::Index(op) => op,
            Op::Checkpoint(op) => op,
        }
    }

    pub(crate) fn name(&self) -> String {
        self.family().name()
    }

    pub(crate) fn inputs(&self) -> Vec<&Var> {
        self.family().inputs()
    }

    pub(crate) fn saved(&self, out: &Tensor) -> Vec<Tensor> {
        self.family().saved(out)
    }

    pub(crate) fn backward(&self, out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        self.family().backward(out, dout, grads)
    }

    /// The inputs, by value, to unlink a graph without recursion when it is dropped: clones
    /// (`Arc` bumps), so dropping `self` afterwards only decrements their counts.
    pub(crate) fn into_inputs(self) -> Vec<Var> {
        self.inputs().into_iter().cloned().collect()
    }
}
