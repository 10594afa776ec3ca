//! The module tree: layers and models nested as their checkpoint keys are, the walks over it
//! (PyTorch's `named_parameters` and `named_modules`), and where parameters come from when a
//! model is built (a checkpoint or a fresh initialisation).
//!
//! A module lists its own parameters and its children, each under its key segment
//! (`h.0` → `attn` → `c_attn` → `weight`). Everything that needs every parameter or every
//! linear layer — saving, LoRA injection, freezing, optimizer groups, counting — walks this
//! one tree instead of keeping a hand-written list.

use crate::layers::LinearModule;
use deltaw_autograd::Var;
use deltaw_tensor::{Device, Seed, Tensor};

/// A layer or a model whose parameters are reachable by key.
pub trait Module {
    /// This module's own parameters with their key segment (`weight`, `bias`), in checkpoint
    /// order. Children's parameters are not listed here.
    fn own_parameters(&self) -> Vec<(&'static str, &Var)> {
        Vec::new()
    }
    /// The direct sub-modules with their key segments (`h.0`, `attn`, `c_attn`; a segment may
    /// hold dots, as BERT's `attention.output.dense`).
    fn children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }
    /// [`Module::children`], mutably.
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module)> {
        Vec::new()
    }
    /// This module as a linear layer, when it is one: where adapters attach.
    fn as_linear_mut(&mut self) -> Option<&mut dyn LinearModule> {
        None
    }
}

/// `prefix.segment`, or `segment` alone at the root (and `prefix` alone for an empty segment:
/// a child that adds no key of its own, as BERT's MLP, whose layers are keyed from the layer).
fn join(prefix: &str, segment: &str) -> String {
    if segment.is_empty() {
        prefix.to_string()
    } else if prefix.is_empty() {
        segment.to_string()
    } else {
        format!("{prefix}.{segment}")
    }
}

/// Every parameter under `module` with its full key (`h.0.attn.c_attn.weight`), depth first in
/// checkpoint order: PyTorch's `named_parameters`.
pub fn named_parameters<M: Module + ?Sized>(module: &M) -> Vec<(String, Var)> {
    let mut out = Vec::new();
    collect_parameters(module, "", &mut out);
    out
}

fn collect_parameters<M: Module + ?Sized>(module: &M, prefix: &str, out: &mut Vec<(String, Var)>) {
    for (name, param) in module.own_parameters() {
        out.push((join(prefix, name), param.clone()));
    }
    for (name, child) in module.children() {
        collect_parameters(child, &join(prefix, &name), out);
    }
}

/// Every linear layer under `module` with its module path, `prefix` first
/// (`transformer.h.0.attn.c_attn` with the prefix `transformer`): where LoRA injects.
pub fn linear_modules_mut<'m, M: Module + ?Sized>(
    module: &'m mut M,
    prefix: &str,
) -> Vec<(String, &'m mut dyn LinearModule)> {
    let mut out = Vec::new();
    collect_linear(module, prefix, &mut out);
    out
}

fn collect_linear<'m, M: Module + ?Sized>(
    module: &'m mut M,
    path: &str,
    out: &mut Vec<(String, &'m mut dyn LinearModule)>,
) {
    if module.as_linear_mut().is_some() {
        out.push((path.to_string(), module.as_linear_mut().expect("checked just above")));
        return;
    }
    for (name, child) in module.children_mut() {
        collect_linear(child, &join(path, &name), out);
    }
}

/// How a freshly initialised model fills a parameter (a checkpoint ignores it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    /// `N(0, std²)`.
    Normal {
        std: f32,
    },
}

/// Where a module's parameters come from as it is built: [`crate::Checkpoint`] hands out the
/// stored tensors, [`FreshInit`] makes new ones. Layers are built by one constructor for both,
/// so a loaded and an initialised model have the same tree by construction.
pub trait ParamSource {
    /// The parameter stored at `key` with `shape` (named `key`); `init` says how to make it
    /// when there is nothing stored.
    fn param(&mut self, key: &str, shape: &[usize], init: Init) -> Var;
}

/// Parameters drawn fresh, seeded: the k-th normal parameter requested uses the stream
/// `seed.derive(k)` (k from 1), so the same seed and build order give the same model on any
/// thread count.
pub struct FreshInit {
    seed: Seed,
    stream: u64,
    device: Device,
}

impl FreshInit {
    pub fn new(seed: Seed, device: &Device) -> FreshInit {
        FreshInit { seed, stream: 0, device: device.clone() }
    }
}

impl ParamSource for FreshInit {
    fn param(&mut self, key: &str, shape: &[usize], init: Init) -> Var {
        let value = match init {
            Init::Zeros => Tensor::zeros(shape.to_vec(), &self.device),
            Init::Ones => Tensor::ones(shape.to_vec(), &self.device),
            Init::Normal { std } => {
                self.stream += 1;
                Tensor::randn(shape.to_vec(), self.seed.derive(self.stream), &self.device).mul_scalar(std)
            }
        };
        Var::parameter(value).named(key)
    }
}
