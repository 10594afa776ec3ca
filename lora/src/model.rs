//! Injection by target-module names into any [`Model`], and what an injection holds.

use crate::config::LoraConfig;
use crate::error::{Error, Result};
use crate::layer::LoraAdapter;
use deltaw_autograd::Var;
use deltaw_tensor::{Seed, Tensor};
use deltaw_transformer::{LinearModule, Model};
use std::fmt;
use std::sync::Arc;

/// One adapted layer: its module path and its adapter.
#[derive(Clone)]
pub struct LoraModule {
    /// `transformer.h.0.attn.c_attn`
    pub path: String,
    pub adapter: Arc<LoraAdapter>,
    /// The layer stores its weight `(in, out)` (GPT-2's `Conv1D`).
    pub fan_in_fan_out: bool,
}

/// The adapters injected into one model, and whether they are merged into its weights.
pub struct Lora {
    pub config: LoraConfig,
    pub modules: Vec<LoraModule>,
    pub(crate) merged: bool,
}

/// PEFT's `print_trainable_parameters`, as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamCount {
    pub trainable: usize,
    pub all: usize,
}

impl fmt::Display for ParamCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = 100.0 * self.trainable as f64 / self.all.max(1) as f64;
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {pct:.4}",
            commas(self.trainable as u64),
            commas(self.all as u64)
        )
    }
}

/// `n` in decimal with its digits grouped by thousands, as PEFT prints parameter counts (and
/// `deltaw info` prints sizes).
///
/// ```
/// assert_eq!(deltaw_lora::commas(1234567), "1,234,567");
/// assert_eq!(deltaw_lora::commas(999), "999");
/// ```
pub fn commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Lora {
    /// Adds a freshly initialised adapter (A Kaiming-uniform, B zero) to every linear layer
    /// `config.target_modules` matches, and freezes every base parameter: afterwards only the
    /// adapters' A and B require gradients, so backward skips the base weights' `dW` GEMMs and
    /// an optimizer over [`Lora::parameters`] keeps state for nothing else.
    ///
    /// # Errors
    /// An invalid config, or targets that match no layer (the message lists the layers).
    pub fn inject<M: Model + ?Sized>(model: &mut M, config: LoraConfig, seed: Seed) -> Result<Lora> {
        let scaling = config.scaling();
        let (r, p) = (config.r, config.lora_dropout);
        let matcher = config.target_modules.matcher()?;
        let mut index = 0u64;
        Lora::attach(
            model,
            config.clone(),
            |path| matcher(path),
            |_, layer| {
                let dev = layer.weight().value().device();
                index += 1;
                Ok(LoraAdapter::init(r, layer.in_out(), scaling, p, seed.derive(index - 1), &dev))
            },
        )
    }

    /// Installs adapters made by `make(path, layer)` on the layers whose path `matches` and
    /// freezes the base model. Shared by [`Lora::inject`] (which matches by target modules)
    /// and adapter loading (which matches the layers its file names).
    pub(crate) fn attach<M: Model + ?Sized>(
        model: &mut M,
        config: LoraConfig,
        matches: impl Fn(&str) -> bool,
        mut make: impl FnMut(&str, &dyn LinearModule) -> Result<LoraAdapter>,
    ) -> Result<Lora> {
        config.validate()?;
        let mut modules = Vec::new();
        {
            let mut layers = model.linear_modules_mut();
            // Every adapter is made before any is installed: an error on a later layer (a
            // mis-shaped tensor in an adapter file) leaves the model as it was.
            let mut made = Vec::new();
            for (i, (path, layer)) in layers.iter().enumerate().filter(|(_, (p, _))| matches(p)) {
                made.push((i, Arc::new(make(path, &**layer)?)));
            }
            if made.is_empty() {
                let available: Vec<&str> = layers.iter().map(|(p, _)| p.as_str()).collect();
                let targets = config.target_modules.to_string();
                return Err(Error::NoTarget { targets, available: available.join(", ") });
            }
            for (i, adapter) in made {
                let (path, layer) = &mut layers[i];
                layer.set_adapter(Some(adapter.clone()));
                modules.push(LoraModule { path: path.clone(), adapter, fan_in_fan_out: layer.fan_in_fan_out() });
            }
        }
        model.parameters().iter().for_each(|p| p.set_requires_grad(false));
        Ok(Lora { config, modules, merged: false })
    }

    /// Every A and B, named by their PEFT keys: what an optimizer should train.
    pub fn parameters(&self) -> Vec<Var> {
        self.modules
            .iter()
            .flat_map(|m| {
                let key = |w: &str| format!("base_model.model.{}.{w}.weight", m.path);
                [m.adapter.lora_a.clone().named(key("lora_A")), m.adapter.lora_b.clone().named(key("lora_B"))]
            })
            .collect()
    }

    /// Trainable (adapter) and total (base + adapter) parameter counts.
    pub fn param_count<M: Model + ?Sized>(&self, model: &M) -> ParamCount {
        let numel = |vs: &[Var]| vs.iter().map(|v| v.dims().iter().product::<usize>()).sum::<usize>();
        let trainable = numel(&self.parameters());
        ParamCount { trainable, all: trainable + numel(&model.parameters()) }
    }

    /// Whether the adapters are currently folded into the base weights.
    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// Removes the adapters from the model (unmerging first if needed) and unfreezes the base
    /// parameters: the model is the pretrained one again.
    pub fn remove<M: Model + ?Sized>(mut self, model: &mut M) {
        if self.merged {
            self.unmerge(model);
        }
        for (_, layer) in model.linear_modules_mut() {
            layer.set_adapter(None);
        }
        // A half-precision base (kept bf16/f16 when loaded frozen) stays frozen: only f32 trains.
        model
            .parameters()
            .iter()
            .filter(|p| p.value().dtype() == deltaw_tensor::DType::F32)
            .for_each(|p| p.set_requires_grad(true));
    }

    /// The adapters' tensors keyed by PEFT name (what `adapter_model.safetensors` holds).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.parameters().into_iter().map(|v| (v.name().unwrap_or_default().to_string(), v.value())).collect()
    }
}
