//! LoRA settings, named and serialised as PEFT's `LoraConfig` so `adapter_config.json` files
//! move between deltaw and Python PEFT.

use crate::error::{Error, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which linear layers get an adapter, with PEFT's matching rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// A module matches when its path equals a name or ends with `"." + name`: `["c_attn"]`
    /// matches `transformer.h.0.attn.c_attn`; `["c_proj"]` matches both GPT-2 `c_proj`s.
    Names(Vec<String>),
    /// A regular expression that must match the whole module path, or the special value
    /// `"all-linear"`: every linear layer except the output head (`lm_head`).
    Pattern(String),
}

impl TargetModules {
    /// PEFT's defaults: GPT-2 `c_attn` (the fused q/k/v projection), BERT `query` and `value`,
    /// the Llama family (Llama, Qwen2, Qwen3, Mistral) `q_proj` and `v_proj`.
    pub fn default_for(model_type: &str) -> TargetModules {
        let names: &[&str] = match model_type {
            "gpt2" => &["c_attn"],
            "llama" | "qwen2" | "qwen3" | "mistral" => &["q_proj", "v_proj"],
            _ => &["query", "value"],
        };
        TargetModules::Names(names.iter().map(|s| s.to_string()).collect())
    }

    /// Parses a command-line value: `all-linear`, a comma-separated list of names, or a
    /// pattern written as `re:<regex>`.
    pub fn parse(s: &str) -> TargetModules {
        match s.strip_prefix("re:") {
            Some(re) => TargetModules::Pattern(re.to_string()),
            None if s == "all-linear" => TargetModules::Pattern(s.to_string()),
            None => {
                TargetModules::Names(s.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect())
            }
        }
    }

    /// A predicate over module paths.
    pub(crate) fn matcher(&self) -> Result<impl Fn(&str) -> bool + '_> {
        let re = match self {
            TargetModules::Pattern(p) if p != "all-linear" => Some(
                Regex::new(&format!("^(?:{p})$")).map_err(|e| Error::Invalid(format!("target pattern {p:?}: {e}")))?,
            ),
            _ => None,
        };
        Ok(move |path: &str| match self {
            TargetModules::Names(names) => names.iter().any(|n| path == n || path.ends_with(&format!(".{n}"))),
            TargetModules::Pattern(p) if p == "all-linear" => path != "lm_head" && !path.ends_with(".lm_head"),
            TargetModules::Pattern(_) => re.as_ref().is_some_and(|re| re.is_match(path)),
        })
    }
}

impl std::fmt::Display for TargetModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetModules::Names(n) => write!(f, "[{}]", n.join(", ")),
            TargetModules::Pattern(p) => write!(f, "{p:?}"),
        }
    }
}

/// A LoRA adapter's hyperparameters: `ΔW = scaling · B A` with `A` `(r, in)`, `B` `(out, r)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    /// The rank r of ΔW.
    pub r: usize,
    /// α: `scaling = α / r`, or `α / √r` with rsLoRA.
    pub lora_alpha: f32,
    /// Dropout on the adapter's input during training (PEFT's `lora_dropout`).
    pub lora_dropout: f32,
    pub target_modules: TargetModules,
    /// Rank-stabilised LoRA (Kalajdzievski 2023): `scaling = α / √r`, which keeps the update's
    /// size independent of r.
    pub use_rslora: bool,
}

impl LoraConfig {
    /// r = 8, α = 16, dropout 0.05 on PEFT's default targets for `model_type`.
    pub fn new(model_type: &str) -> LoraConfig {
        LoraConfig {
            r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: TargetModules::default_for(model_type),
            use_rslora: false,
        }
    }

    /// The factor applied to `B A x`.
    pub fn scaling(&self) -> f32 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f32).sqrt()
        } else {
            self.lora_alpha / self.r as f32
        }
    }

    /// Rejects settings that cannot train: rank 0, dropout outside `[0, 1)`, a bad pattern.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(Error::Invalid("r must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(Error::Invalid(format!("lora_dropout {} is not in [0, 1)", self.lora_dropout)));
        }
        if !self.lora_alpha.is_finite() {
            return Err(Error::Invalid(format!("lora_alpha {} is not finite", self.lora_alpha)));
        }
        self.target_modules.matcher().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_by_suffix_and_patterns_match_whole_paths() {
        let t = TargetModules::parse("c_attn, c_proj");
        let m = t.matcher().unwrap();
        assert!(m("transformer.h.0.attn.c_attn"));
        assert!(m("transformer.h.1.mlp.c_proj"));
        assert!(!m("transformer.h.1.mlp.c_fc"));
        assert!(!m("transformer.h.0.attn.xc_attn"));
        let t = TargetModules::parse(r"re:.*\.0\.attn\..*");
        let m = t.matcher().unwrap();
        assert!(m("transformer.h.0.attn.c_proj") && !m("transformer.h.1.attn.c_proj"));
        assert!(TargetModules::parse("re:(").matcher().is_err());
    }

    #[test]
    fn scaling_follows_rslora() {
        let mut c = LoraConfig { r: 4, lora_alpha: 8.0, ..LoraConfig::new("gpt2") };
        assert_eq!(c.scaling(), 2.0);
        c.use_rslora = true;
        assert_eq!(c.scaling(), 4.0);
    }
}
