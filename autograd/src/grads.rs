//! `Grads`: gradients keyed by var id, with accumulation, the global norm, clipping, and the
//! cheap finiteness check a trainer runs before stepping.

use crate::var::{Var, VarId};
use deltaw_tensor::profile::{self, Phase};
use deltaw_tensor::{Device, Tensor};
use std::collections::HashMap;

/// Gradients of the leaves that require grad, keyed by [`VarId`].
///
/// `loss.backward()` returns a fresh store; [`Var::backward_accumulate`] adds into an existing
/// one, so gradients of several micro-batches sum as in PyTorch until [`Grads::zero_grad`].
#[derive(Clone, Default)]
pub struct Grads {
    map: HashMap<VarId, Tensor>,
    /// Row additions `(ids, rows)` to a table's gradient, held back by the backward engine's
    /// own store of pending gradients until the sweep takes the table's gradient (see
    /// [`Grads::defer_rows`]); the var is kept for the shape of a gradient of zeros.
    deferred: HashMap<VarId, (Var, Vec<(Tensor, Tensor)>)>,
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
    /// If `grad`'s shape or device is not `var`'s (a backward rule that made a tensor on
    /// the wrong device is caught here, where the op is still known).
    #[track_caller]
    pub fn accumulate(&mut self, var: &Var, grad: Tensor) {
        if !var.requires_grad() {
            return;
        }
        let value = var.value();
        assert_eq!(grad.shape(), value.shape(), "gradient of shape {:?} for {var:?}", grad.shape());
        let (got, want) = (grad.device(), value.device());
        assert!(got == want, "gradient on {got} for {var:?} on {want}");
        self.add_by_id(var.id(), grad);
    }

    pub(crate) fn add_by_id(&mut self, id: VarId, grad: Tensor) {
        match self.map.remove(&id) {
            Some(mut old) => {
                // Into whichever buffer can take it (the first gradient may be a view, as a
                // tied embedding's transposed one is): `a + b` and `b + a` have the same bits.
                let mut grad = grad;
                if old.values_mut().is_none() && grad.values_mut().is_some() {
                    std::mem::swap(&mut old, &mut grad);
                }
                old.add_in_place(&grad);
                self.map.insert(id, old)
            }
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

    /// Takes a var's gradient out, with its deferred row additions applied.
    pub(crate) fn take_by_id(&mut self, id: VarId) -> Option<Tensor> {
        let dense = self.map.remove(&id);
        let Some((var, adds)) = self.deferred.remove(&id) else { return dense };
        let mut grad = dense.unwrap_or_else(|| var.value().zeros_like());
        for (ids, rows) in adds {
            grad.index_add_in_place(0, &ids, &rows);
        }
        Some(grad)
    }

    /// Adds `rows[i]` to row `ids[i]` of `var`'s gradient (an embedding's backward), held
    /// back until [`Grads::take_by_id`]: for the engine's store of pending gradients only
    /// (other accessors do not see deferred rows). An embedding's rule
    /// may run before the rule that gives its table a dense gradient (GPT-2's tied output
    /// projection): deferred, the rows land in that gradient, with no table of zeros made and
    /// added.
    pub(crate) fn defer_rows(&mut self, var: &Var, ids: Tensor, rows: Tensor) {
        if var.requires_grad() {
            self.deferred.entry(var.id()).or_insert_with(|| (var.clone(), Vec::new())).1.push((ids, rows));
        }
    }

    /// Adds every gradient of this store, deferred rows applied, into `out`.
    pub(crate) fn move_into(mut self, out: &mut Grads) {
        let ids: Vec<VarId> = self.map.keys().chain(self.deferred.keys()).copied().collect();
        for id in ids {
            if let Some(g) = self.take_by_id(id) {
                out.add_by_id(id, g);
            }
        }
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
    /// just the same. The sums stay on the gradients' device; one read per device.
    pub fn all_finite(&self) -> bool {
        self.per_tensor(Tensor::sum_all).iter().all(|s| s.is_finite())
    }

    /// `sqrt(Σ_tensors Σ g²)`, the L2 norm of all gradients seen as one vector. Each tensor's
    /// `Σ g²` is an f32 reduction on its device; the sum over tensors is in f64, in var-id
    /// order (so the same gradients give the same bits whatever the map's order).
    pub fn global_norm(&self) -> f32 {
        let sums = profile::in_phase(Phase::Update, || self.per_tensor(Tensor::sum_squares));
        let sq: f64 = sums.iter().map(|&s| s as f64).sum();
        sq.sqrt() as f32
    }

    /// Scales every gradient so the global norm is at most `max_norm`, as PyTorch's
    /// `clip_grad_norm_`: `g *= min(1, max_norm / (norm + 1e-6))`. Returns the norm before
    /// clipping (NaN or inf when a gradient is not finite; nothing is scaled then).
    pub fn clip_global_norm(&mut self, max_norm: f32) -> f32 {
        let norm = self.global_norm();
        let coef = max_norm as f64 / (norm as f64 + 1e-6);
        if norm.is_finite() && coef < 1.0 {
            profile::in_phase(Phase::Update, || self.map.values_mut().for_each(|g| g.mul_scalar_in_place(coef as f32)));
        }
        norm
    }

    /// `reduce(g)` (a 0-d tensor) for every gradient, in var-id order. The 0-d results are
    /// stacked on their device and read back together: one wait for the GPU queue per device
    /// instead of one per gradient.
    fn per_tensor(&self, reduce: impl Fn(&Tensor) -> Tensor) -> Vec<f32> {
        let mut ids: Vec<&VarId> = self.map.keys().collect();
        ids.sort();
        // (device, positions in `ids`, 0-d results) per device, in order of first appearance
        let mut by_device: Vec<(Device, Vec<usize>, Vec<Tensor>)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let g = &self.map[*id];
            let device = g.device();
            let slot = match by_device.iter().position(|(d, _, _)| *d == device) {
                Some(slot) => slot,
                None => {
                    by_device.push((device, Vec::new(), Vec::new()));
                    by_device.len() - 1
                }
            };
            by_device[slot].1.push(i);
            by_device[slot].2.push(reduce(g));
        }
        let mut out = vec![0.0; ids.len()];
        for (_, positions, parts) in by_device {
            let values = Tensor::stack(&parts.iter().collect::<Vec<_>>(), 0).to_vec(); // (n,)
            positions.into_iter().zip(values).for_each(|(i, v)| out[i] = v);
        }
        out
    }
}
