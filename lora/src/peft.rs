//! PEFT's adapter folder, both ways: `adapter_config.json` + `adapter_model.safetensors` with
//! keys `base_model.model.<module path>.lora_A.weight` (`(r, in)`) and `.lora_B.weight`
//! (`(out, r)`). The shapes do not depend on `fan_in_fan_out`: that flag only says the base
//! weight is stored `(in, out)` (GPT-2's `Conv1D`), which matters when merging.

use crate::config::LoraConfig;
use crate::error::{Error, Result};
use crate::layer::LoraAdapter;
use crate::model::Lora;
use deltaw_tensor::{atomic, safetensors, DType, Device, Tensor};
use deltaw_transformer::Model;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

const PREFIX: &str = "base_model.model.";
pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

impl Lora {
    /// Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` as PEFT does.
    /// The folder is written atomically ([`deltaw_tensor::atomic::replace_dir`]): an
    /// interrupted save leaves the old adapter or the new one, never a mix; other files in
    /// `dir` (a README) are kept. `base_model` goes to `base_model_name_or_path`;
    /// `model_type` picks PEFT's task type (`CAUSAL_LM` for the decoders: GPT-2 and the
    /// Llama family).
    pub fn save_peft(&self, dir: impl AsRef<Path>, base_model: &str, model_type: &str) -> Result<()> {
        let state = self.state();
        let config =
            peft_config_json(&self.config, base_model, model_type, self.modules.iter().any(|m| m.fan_in_fan_out));
        let text = serde_json::to_string_pretty(&config).expect("a JSON value serialises");
        atomic::replace_dir(
            dir.as_ref(),
            |_| true,
            |tmp| -> Result<()> {
                safetensors::save(state.iter().map(|(k, t)| (k.as_str(), t)), None, tmp.join(WEIGHTS_FILE))?;
                Ok(atomic::write_file(&tmp.join(CONFIG_FILE), text.as_bytes())?)
            },
        )
    }

    /// Loads a PEFT adapter folder into `model` (freezing the base), ready to run, train on,
    /// or merge.
    ///
    /// # Errors
    /// Missing or malformed files; PEFT features deltaw does not implement (DoRA, trained
    /// biases, per-layer rank patterns, `modules_to_save`); a key naming a layer the model does
    /// not have; A or B shapes that do not fit the layer.
    pub fn load_peft<M: Model + ?Sized>(model: &mut M, dir: impl AsRef<Path>, device: &Device) -> Result<Lora> {
        let dir = dir.as_ref();
        let config = read_config(&dir.join(CONFIG_FILE))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let mut pairs = read_pairs(&weights_path, device)?;
        let scaling = config.scaling();
        let in_file: std::collections::HashSet<String> = pairs.keys().cloned().collect();
        let mismatch = |message: String| Error::Mismatch { path: weights_path.clone(), message };
        let named_in_file = |path: &str| in_file.contains(&canonical(path));
        let lora = Lora::attach(model, config.clone(), named_in_file, |path, layer| {
            let (a, b) = pairs.remove(&canonical(path)).expect("only layers named in the file are matched");
            let (inp, out) = layer.in_out();
            if a.dims() != [config.r, inp] || b.dims() != [out, config.r] {
                return Err(mismatch(format!(
                    "{path}: lora_A {:?} and lora_B {:?} do not fit r = {} on a layer with {inp} inputs and {out} outputs",
                    a.shape(),
                    b.shape(),
                    config.r
                )));
            }
            Ok(LoraAdapter::from_weights(a, b, scaling, config.lora_dropout))
        })
        .map_err(|e| match e {
            Error::NoTarget { .. } => mismatch("no key names a layer of this model".into()),
            e => e,
        })?;
        if let Some(path) = pairs.keys().next() {
            lora.remove(model);
            return Err(mismatch(format!("'{PREFIX}{path}' names no linear layer of this model")));
        }
        Ok(lora)
    }
}

/// A module path without the wrapper prefix transformers adds for head models, so an adapter
/// trained on `GPT2LMHeadModel` (`transformer.h.0…`) and one on `GPT2Model` (`h.0…`) both fit.
fn canonical(path: &str) -> String {
    path.strip_prefix("transformer.").or_else(|| path.strip_prefix("bert.")).unwrap_or(path).to_string()
}

/// `adapter_model.safetensors` grouped by canonical module path into `(A, B)` f32 pairs.
fn read_pairs(path: &Path, device: &Device) -> Result<BTreeMap<String, (Tensor, Tensor)>> {
    let tensors = safetensors::load(path, device)?;
    let bad = |message: String| Error::Mismatch { path: path.into(), message };
    let mut halves: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    for (key, t) in tensors {
        let body = key.strip_prefix(PREFIX).unwrap_or(&key);
        let (module, which) = if let Some(m) = body.strip_suffix(".lora_A.weight") {
            (m, 0)
        } else if let Some(m) = body.strip_suffix(".lora_B.weight") {
            (m, 1)
        } else {
            return Err(bad(format!("'{key}' is not a lora_A/lora_B weight (only LoRA weights are supported)")));
        };
        let t = t.to_dtype(DType::F32)?;
        let slot = halves.entry(canonical(module)).or_default();
        if which == 0 {
            slot.0 = Some(t);
        } else {
            slot.1 = Some(t);
        }
    }
    if halves.is_empty() {
        return Err(bad("the file holds no tensors".into()));
    }
    halves
        .into_iter()
        .map(|(m, pair)| match pair {
            (Some(a), Some(b)) => Ok((m, (a, b))),
            (None, _) => Err(bad(format!("'{PREFIX}{m}.lora_A.weight' is missing"))),
            (_, None) => Err(bad(format!("'{PREFIX}{m}.lora_B.weight' is missing"))),
        })
        .collect()
}

/// Parses `adapter_config.json`, refusing PEFT features this crate does not implement.
fn read_config(path: &Path) -> Result<LoraConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
    let bad = |message: String| Error::Config { path: path.into(), message };
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let field = |name: &str| v.get(name).filter(|x| !x.is_null());
    if let Some(t) = field("peft_type").and_then(Value::as_str).filter(|t| *t != "LORA") {
        return Err(bad(format!("peft_type is \"{t}\"; only LORA adapters are supported")));
    }
    if let Some(b) = field("bias").and_then(Value::as_str).filter(|b| *b != "none") {
        return Err(bad(format!("bias = \"{b}\" (trained biases) is not supported; use \"none\"")));
    }
    if field("use_dora").and_then(Value::as_bool) == Some(true) {
        return Err(bad("use_dora = true (DoRA) is not supported".into()));
    }
    for pattern in ["rank_pattern", "alpha_pattern"] {
        if field(pattern).and_then(Value::as_object).is_some_and(|o| !o.is_empty()) {
            return Err(bad(format!("{pattern} (per-layer ranks or alphas) is not supported")));
        }
    }
    if field("modules_to_save").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
        return Err(bad("modules_to_save is not supported".into()));
    }
    let r = field("r").and_then(Value::as_u64).ok_or_else(|| bad("field 'r' is missing or not an integer".into()))?;
    let alpha =
        field("lora_alpha").and_then(Value::as_f64).ok_or_else(|| bad("field 'lora_alpha' is missing".into()))?;
    let target_modules = match field("target_modules") {
        Some(t) => serde_json::from_value(t.clone()).map_err(|e| bad(format!("target_modules: {e}")))?,
        None => return Err(bad("field 'target_modules' is missing".into())),
    };
    Ok(LoraConfig {
        r: r as usize,
        lora_alpha: alpha as f32,
        lora_dropout: field("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0) as f32,
        target_modules,
        use_rslora: field("use_rslora").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The fields PEFT writes, with PEFT's defaults for the ones deltaw does not use.
fn peft_config_json(c: &LoraConfig, base_model: &str, model_type: &str, fan_in_fan_out: bool) -> Value {
    let alpha = if c.lora_alpha.fract() == 0.0 { json!(c.lora_alpha as i64) } else { json!(c.lora_alpha) };
    let causal = matches!(model_type, "gpt2" | "llama" | "qwen2" | "qwen3" | "mistral");
    let task_type = if causal { json!("CAUSAL_LM") } else { Value::Null };
    json!({
        "alpha_pattern": {},
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": fan_in_fan_out,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": alpha,
        "lora_dropout": c.lora_dropout,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": c.r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": c.target_modules,
        "task_type": task_type,
        "use_dora": false,
        "use_rslora": c.use_rslora,
    })
}
