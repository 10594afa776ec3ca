//! AdamW (Loshchilov & Hutter) with the exact semantics of `torch.optim.AdamW`: decoupled
//! weight decay applied to the parameter first, bias-corrected moments, and `eps` added after
//! the square root of the corrected second moment.

use super::{on_device, updates, Optimizer, ParamGroup};
use crate::grads::Grads;
use crate::var::{no_grad, Var, VarId};
use deltaw_tensor::{AdamWScalars, Tensor};
use std::collections::HashMap;

/// AdamW settings; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f32,
    pub betas: (f32, f32),
    pub eps: f32,
    /// Decoupled: `p ← p · (1 - lr · weight_decay)`, not added to the gradient.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 1e-2 }
    }
}

/// One parameter's state: its step count and the two moment estimates.
struct Moments {
    step: u64,
    m: Tensor,
    v: Tensor,
}

/// `torch.optim.AdamW` (single-tensor path).
pub struct AdamW {
    groups: Vec<ParamGroup>,
    config: AdamWConfig,
    state: HashMap<VarId, Moments>,
}

impl AdamW {
    pub fn new(params: Vec<Var>, config: AdamWConfig) -> AdamW {
        AdamW::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// Groups may override the weight decay (e.g. none on biases and norms; see
    /// [`ParamGroup::decay_by_rank`]).
    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamWConfig) -> AdamW {
        AdamW { groups, config, state: HashMap::new() }
    }

    /// Updates every parameter that has a gradient in `grads` (the [`Optimizer`] trait's
    /// `step`, callable without importing it).
    pub fn step(&mut self, grads: &Grads) {
        let updates = updates(&self.groups, grads, self.config.weight_decay);
        let update = || no_grad(|| updates.into_iter().for_each(|(param, grad, wd)| self.update(&param, &grad, wd)));
        deltaw_tensor::profile::in_phase(deltaw_tensor::profile::Phase::Update, update)
    }

    /// One parameter's state for a checkpoint: `(steps taken, m, v)`, or `None` before its
    /// first step.
    pub fn state_of(&self, param: &Var) -> Option<(u64, Tensor, Tensor)> {
        self.state.get(&param.id()).map(|s| (s.step, s.m.clone(), s.v.clone()))
    }

    /// Restores a parameter's state from a checkpoint, so the next step continues exactly as
    /// the saved run would have. The moments are moved to the parameter's device (a
    /// checkpoint loads on the host).
    ///
    /// # Panics
    /// If `m` or `v` does not have the parameter's shape, or cannot be copied to its device.
    #[track_caller]
    pub fn set_state(&mut self, param: &Var, step: u64, m: Tensor, v: Tensor) {
        assert!(
            m.shape() == &param.shape() && v.shape() == &param.shape(),
            "AdamW::set_state: moments {:?} / {:?} do not match parameter {:?}",
            m.shape(),
            v.shape(),
            param.shape()
        );
        let device = param.value().device();
        let (m, v) = (on_device(&m, &device, "AdamW::set_state"), on_device(&v, &device, "AdamW::set_state"));
        self.state.insert(param.id(), Moments { step, m, v });
    }

    /// Bytes of optimizer state (two moments per parameter seen so far).
    pub fn state_bytes(&self) -> usize {
        self.state.values().map(|s| (s.m.numel() + s.v.numel()) * s.m.dtype().size_in_bytes()).sum()
    }

    /// One parameter, in PyTorch's order (`t` counts this parameter's steps from 1):
    /// `p ← p·(1 - lr·wd)`; `m ← m + (1 - β1)(g - m)` (a lerp); `v ← β2·v + (1 - β2)·g²`;
    /// `p ← p - lr/(1 - β1ᵗ) · m / (√v / √(1 - β2ᵗ) + eps)`. The scalar factors are computed
    /// in f64, as Python does, and rounded once.
    fn update(&mut self, param: &Var, grad: &Tensor, weight_decay: f32) {
        let c = self.config;
        let (b1, b2) = (c.betas.0 as f64, c.betas.1 as f64);
        let lr = c.lr as f64;
        let p = param.value();
        // State is made on, and follows, the parameter's device (it may have been moved).
        let s = match self.state.remove(&param.id()) {
            Some(Moments { step, m, v }) => {
                let device = p.device();
                Moments { step, m: on_device(&m, &device, "AdamW"), v: on_device(&v, &device, "AdamW") }
            }
            None => Moments { step: 0, m: p.zeros_like(), v: p.zeros_like() },
        };
        let step = s.step + 1;
        let scalars = AdamWScalars {
            decay: (weight_decay != 0.0).then_some((1.0 - lr * weight_decay as f64) as f32),
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            bias2_sqrt: (1.0 - b2.powi(step as i32)).sqrt() as f32,
            eps: c.eps,
            step_size: (-lr / (1.0 - b1.powi(step as i32))) as f32,
        };
        // One fused pass (memory-bound: a dozen separate ops would each stream the whole
        // parameter through memory again).
        drop(p); // so the parameter's buffer can be updated in place
        let Moments { mut m, mut v, .. } = s;
        param.update_value(|p| p.adamw_update_in_place(grad, &mut m, &mut v, scalars));
        self.state.insert(param.id(), Moments { step, m, v });
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &Grads) {
        AdamW::step(self, grads)
    }

    fn lr(&self) -> f32 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }
}
