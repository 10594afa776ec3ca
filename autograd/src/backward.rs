//! The reverse pass: an iterative topological sort of the recorded graph, then one sweep in
//! reverse order that hands each node's gradient to its op's backward rule and frees it.

use crate::error::{Error, Result};
use crate::grads::Grads;
use crate::var::{Var, VarId};
use deltaw_tensor::profile::{self, Phase};
use deltaw_tensor::Tensor;
use std::collections::HashSet;

impl Var {
    /// Gradients of this scalar (one-element) loss with respect to every leaf that requires
    /// grad and that the loss depends on.
    ///
    /// # Errors
    /// [`Error::NotScalar`] when the loss has more than one element (use
    /// [`Var::backward_with`]), [`Error::NoGradRequired`] when nothing in its graph requires
    /// grad (it was computed from constants only, or under `no_grad`).
    pub fn backward(&self) -> Result<Grads> {
        let mut grads = Grads::new();
        self.backward_accumulate(&mut grads)?;
        Ok(grads)
    }

    /// Like [`Var::backward`], adding into `grads` instead of a fresh store: gradients of
    /// several losses (micro-batches) sum until `grads.zero_grad()`.
    ///
    /// # Errors
    /// As [`Var::backward`].
    pub fn backward_accumulate(&self, grads: &mut Grads) -> Result<()> {
        let value = self.value();
        if value.numel() != 1 {
            return Err(Error::NotScalar { shape: format!("{:?}", value.shape()) });
        }
        let seed = Tensor::ones(value.shape(), &value.device());
        self.backward_with_into(&seed, grads)
    }

    /// Backward from an output of any shape, given the upstream gradient `dout` (same shape):
    /// the vector-Jacobian product `doutᵀ · ∂self/∂leaf` for every leaf.
    ///
    /// # Errors
    /// [`Error::GradShape`] when `dout`'s shape differs, [`Error::GradDevice`] when it is on
    /// another device than the output, [`Error::NoGradRequired`] as above.
    pub fn backward_with(&self, dout: &Tensor) -> Result<Grads> {
        let mut grads = Grads::new();
        self.backward_with_into(dout, &mut grads)?;
        Ok(grads)
    }

    /// [`Var::backward_with`], accumulating into `grads`.
    ///
    /// # Errors
    /// As [`Var::backward_with`].
    pub fn backward_with_into(&self, dout: &Tensor, grads: &mut Grads) -> Result<()> {
        if !self.requires_grad() {
            return Err(Error::NoGradRequired);
        }
        let value = self.value();
        if dout.shape() != value.shape() {
            let (expected, got) = (format!("{:?}", value.shape()), format!("{:?}", dout.shape()));
            return Err(Error::GradShape { expected, got });
        }
        if dout.device() != value.device() {
            return Err(Error::GradDevice { expected: value.device().to_string(), got: dout.device().to_string() });
        }
        // Gradients of nodes not yet processed; each is removed (freed) once consumed, so at
        // any time only the frontier of the sweep holds intermediate gradients.
        let mut pending = Grads::new();
        pending.add_by_id(self.id(), dout.clone());
        // The ops the rules run count as backward in a profile (`deltaw_tensor::profile`).
        profile::in_phase(Phase::Backward, || {
            for var in topological_order(self).iter().rev() {
                let Some(dvar) = pending.take_by_id(var.id()) else { continue };
                match var.op() {
                    Some(op) => op.backward(&var.value(), &dvar, &mut pending),
                    None => grads.add_by_id(var.id(), dvar),
                }
            }
        });
        // Left over: the parameters inside checkpointed blocks, which no outer op reads.
        pending.move_into(grads);
        Ok(())
    }
}

/// Every var that `root` depends on through recorded ops and that requires grad, inputs
/// before the ops that read them (so the reverse is a valid order for backward). Depth-first
/// with an explicit stack, so a deep graph cannot overflow the call stack.
pub(crate) fn topological_order(root: &Var) -> Vec<Var> {
    let mut order = Vec::new();
    let mut seen: HashSet<VarId> = HashSet::new();
    // (var, children already pushed): a var is emitted when it is popped the second time.
    let mut stack = vec![(root.clone(), false)];
    while let Some((var, expanded)) = stack.pop() {
        if expanded {
            order.push(var);
            continue;
        }
        if !var.requires_grad() || !seen.insert(var.id()) {
            continue;
        }
        stack.push((var.clone(), true));
        if let Some(op) = var.op() {
            for input in op.inputs() {
                if input.requires_grad() && !seen.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}
