//! Optimizers over [`Var`] parameters: SGD (momentum, Nesterov, weight decay) and AdamW with
//! PyTorch's exact update order, parameter groups, and learning-rate schedules. Clipping by
//! global norm lives on [`Grads`](crate::Grads::clip_global_norm).
//!
//! Updates compute on the parameters' own device with tensor ops (no graph is recorded) and
//! replace each parameter's value: tensors are immutable, so a graph built before the step
//! still holds the values it used. Optimizer state (moments, momentum buffers) is created on
//! the parameter's device and moves with it if the parameter is moved between steps.

mod adamw;
mod schedule;
mod sgd;

pub use adamw::{AdamW, AdamWConfig};
pub use schedule::LrSchedule;
pub use sgd::{Sgd, SgdConfig};

use crate::grads::Grads;
use crate::var::Var;
use deltaw_tensor::{Device, Tensor};

/// What a trainer needs from any optimizer.
pub trait Optimizer {
    /// Updates every parameter that has a gradient in `grads` (others are left alone, as
    /// PyTorch skips parameters whose `.grad` is `None`).
    fn step(&mut self, grads: &Grads);
    /// The base learning rate (each group may scale it).
    fn lr(&self) -> f32;
    /// Sets the base learning rate, e.g. from an [`LrSchedule`] before each step.
    fn set_lr(&mut self, lr: f32);
}

/// Parameters sharing optimizer settings. `weight_decay: None` takes the optimizer's.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    pub params: Vec<Var>,
    pub weight_decay: Option<f32>,
}

impl ParamGroup {
    /// One group with the optimizer's own settings.
    pub fn new(params: Vec<Var>) -> ParamGroup {
        ParamGroup { params, weight_decay: None }
    }

    /// Two groups by the usual rule (nanoGPT, Hugging Face): matrices and embeddings (rank ≥ 2)
    /// decay with `weight_decay`; biases and norm gains (rank < 2) do not.
    pub fn decay_by_rank(params: &[Var], weight_decay: f32) -> Vec<ParamGroup> {
        let (decay, no_decay): (Vec<Var>, Vec<Var>) = params.iter().cloned().partition(|p| p.rank() >= 2);
        vec![
            ParamGroup { params: decay, weight_decay: Some(weight_decay) },
            ParamGroup { params: no_decay, weight_decay: Some(0.0) },
        ]
    }
}

/// What one step updates: `(parameter, gradient, weight decay)` for every parameter of
/// `groups` that has a gradient, with its group's weight decay or else `default_decay`.
fn updates(groups: &[ParamGroup], grads: &Grads, default_decay: f32) -> Vec<(Var, Tensor, f32)> {
    let mut out = Vec::new();
    for group in groups {
        let wd = group.weight_decay.unwrap_or(default_decay);
        for param in &group.params {
            if let Some(grad) = grads.get(param) {
                out.push((param.clone(), grad.clone(), wd));
            }
        }
    }
    out
}

/// `state` on `device`: itself when it is already there (the usual case), else a copy.
///
/// # Panics
/// When the copy fails (a GPU out of memory or lost), naming `who`.
#[track_caller]
fn on_device(state: &Tensor, device: &Device, who: &str) -> Tensor {
    state.to_device(device).unwrap_or_else(|e| panic!("{who}: cannot move optimizer state to {device}: {e}"))
}
