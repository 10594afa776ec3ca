//! Stochastic gradient descent with momentum, Nesterov momentum and (coupled) weight decay,
//! step for step as `torch.optim.SGD`.

use super::{on_device, updates, Optimizer, ParamGroup};
use crate::grads::Grads;
use crate::var::{no_grad, Var, VarId};
use deltaw_tensor::Tensor;
use std::collections::HashMap;

/// SGD settings; the defaults are PyTorch's except `lr`, which PyTorch requires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub nesterov: bool,
    /// L2 penalty added to the gradient (coupled, unlike AdamW's).
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 1e-2, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

/// `torch.optim.SGD`.
pub struct Sgd {
    groups: Vec<ParamGroup>,
    config: SgdConfig,
    /// Momentum buffers, created on a parameter's first step.
    momentum: HashMap<VarId, Tensor>,
}

impl Sgd {
    pub fn new(params: Vec<Var>, config: SgdConfig) -> Sgd {
        Sgd::with_groups(vec![ParamGroup::new(params)], config)
    }

    pub fn with_groups(groups: Vec<ParamGroup>, config: SgdConfig) -> Sgd {
        Sgd { groups, config, momentum: HashMap::new() }
    }

    /// Updates every parameter that has a gradient in `grads` (the [`Optimizer`] trait's
    /// `step`, callable without importing it).
    pub fn step(&mut self, grads: &Grads) {
        let updates = updates(&self.groups, grads, self.config.weight_decay);
        let update = || no_grad(|| updates.into_iter().for_each(|(param, grad, wd)| self.update(&param, &grad, wd)));
        deltaw_tensor::profile::in_phase(deltaw_tensor::profile::Phase::Update, update)
    }

    /// Bytes of optimizer state (the momentum buffers).
    pub fn state_bytes(&self) -> usize {
        self.momentum.values().map(|t| t.numel() * t.dtype().size_in_bytes()).sum()
    }

    /// One parameter: `d = g + wd·p`; with momentum `buf = d` on the first step, then
    /// `buf = μ·buf + (1 - dampening)·d`, and `d = d + μ·buf` (Nesterov) or `d = buf`;
    /// finally `p = p - lr·d`.
    fn update(&mut self, param: &Var, grad: &Tensor, weight_decay: f32) {
        let c = self.config;
        let p = param.value();
        let mut d = if weight_decay != 0.0 { grad.add(&p.mul_scalar(weight_decay)) } else { grad.clone() };
        if c.momentum != 0.0 {
            let buf = match self.momentum.remove(&param.id()) {
                None => d.clone(),
                Some(buf) => {
                    let buf = on_device(&buf, &p.device(), "Sgd"); // follows a moved parameter
                    buf.mul_scalar(c.momentum).add(&d.mul_scalar(1.0 - c.dampening))
                }
            };
            d = if c.nesterov { d.add(&buf.mul_scalar(c.momentum)) } else { buf.clone() };
            self.momentum.insert(param.id(), buf);
        }
        param.set_value(p.add(&d.mul_scalar(-c.lr)));
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &Grads) {
        Sgd::step(self, grads)
    }

    fn lr(&self) -> f32 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }
}
