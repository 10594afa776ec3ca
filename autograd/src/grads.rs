//! `Grads`: gradients keyed by var id, with accumulation, the global norm, clipping, and the
//! cheap finiteness check a trainer runs before stepping.

use crate::var::{Var, VarId};
use deltaw_tensor::Tensor;
use std::collections::HashMap;

/// Gradients of the leaves that require grad, keyed by [`VarId`].
///
/// `loss.backward()` returns a fresh store; [`Var::backward_accumulate`] adds into an existing
/// one, so gradients of several micro-batches sum as in PyTorch until [`Grads::zero_grad`].
#[derive(Clone, Default)]
pub struct Grads {
    map: HashMap<VarId, Tensor>,
}

impl Grads {
    pub fn new() -> Grads {
        Grads::default()
    }

    /// The gradient of `var`, if backward reached it.
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        self.map.get(&var.id())
    }

    pub fn get_by_id(&self, id: VarId) -> Option<&Tensor> {
        self.map.get(&id)
    }

    /// Adds `grad` to `var`'s gradient (or stores it). Vars that do not require grad are
    /// skipped, so backward rules can call this for every input.
    ///
    /// # Panics
    /// If `grad`'s shape is not `var`'s.
    #[track_caller]
    pub fn accumulate(&mut self, var: &Var, grad: Tensor) {
        if !var.requires_grad() {
            return;
        }
        let shape = var.shape();
        assert_eq!(grad.shape(), &shape, "gradient of shape {:?} for {var:?} of shape {shape:?}", grad.shape());
        self.add_by_id(var.id(), grad);
    }

    pub(crate) fn add_by_id(&mut self, id: VarId, grad: Tensor) {
        match self.map.remove(&id) {
            Some(old) => self.map.insert(id, old.add(&grad)),
            None => self.map.insert(id, grad),
        };
    }

    /// Sets (replaces) `var`'s gradient, whatever its flags; for tests and custom steps.
    pub fn insert(&mut self, var: &Var, grad: Tensor) {
        self.map.insert(var.id(), grad);
    }

    /// Takes `var`'s gradient out of the store.
    pub fn remove(&mut self, var: &Var) -> Option<Tensor> {
        self.map.remove(&var.id())
    }

    pub(crate) fn take_by_id(&mut self, id: VarId) -> Option<Tensor> {
        self.map.remove(&id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (VarId, &Tensor)> {
        self.map.iter().map(|(&id, g)| (id, g))
    }

    /// Forgets every gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&mut self) {
        self.map.clear();
    }

    /// Bytes held by the gradient tensors.
    pub fn bytes(&self) -> usize {
        self.map.values().map(|g| g.numel() * g.dtype().size_in_bytes()).sum()
    }

    /// True when no gradient holds a NaN or an infinity. One reduction per tensor: a sum is
    /// finite only if every term is (NaN and ±inf propagate; +inf - inf is NaN). A sum of
    /// finite values that overflows reads as non-finite too, which a trainer wants to skip
    /// just the same.
    pub fn all_finite(&self) -> bool {
        self.map.values().all(|g| g.sum_all().to_scalar().is_finite())
    }

    /// `sqrt(Σ_tensors Σ g²)`, the L2 norm of all gradients seen as one vector (f64 sum).
    pub fn global_norm(&self) -> f32 {
        let sq: f64 = self.map.values().map(|g| g.mul(g).sum_all().to_scalar() as f64).sum();
        sq.sqrt() as f32
    }

    /// Scales every gradient so the global norm is at most `max_norm`, as PyTorch's
    /// `clip_grad_norm_`: `g *= min(1, max_norm / (norm + 1e-6))`. Returns the norm before
    /// clipping (NaN or inf when a gradient is not finite; nothing is scaled then).
    pub fn clip_global_norm(&mut self, max_norm: f32) -> f32 {
        let norm = self.global_norm();
        let coef = max_norm as f64 / (norm as f64 + 1e-6);
        if norm.is_finite() && coef < 1.0 {
            for g in self.map.values_mut() {
                *g = g.mul_scalar(coef as f32);
            }
        }
        norm
    }
}
