//! `config.json` of the Llama family: Llama 2/3, Qwen2/2.5, Qwen3 and Mistral share one
//! architecture and differ by switches (q/k/v bias, q/k norm, tied head, sliding window). The
//! fields are named as in transformers' configs; the whole file is kept beside them so saving
//! writes back what deltaw does not read.

use crate::config::{check_model_type_in, config_json};
use crate::config_check::{self as check, MAX_COUNT, MAX_INNER, MAX_POSITIONS, MAX_VOCAB, MAX_WIDTH};
use crate::error::{Error, Result};
use crate::rope::Rope;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// Which member of the family, from `model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlamaFamily {
    /// `"llama"`: Llama 2 and 3.x (`attention_bias`, `mlp_bias` switches).
    Llama,
    /// `"qwen2"`: Qwen2 and Qwen2.5: a bias on q, k and v.
    Qwen2,
    /// `"qwen3"`: an RMSNorm on each head's q and k.
    Qwen3,
    /// `"mistral"`: an optional sliding window on every layer.
    Mistral,
}

impl LlamaFamily {
    /// The `model_type` strings of the family.
    pub const MODEL_TYPES: [&'static str; 4] = ["llama", "qwen2", "qwen3", "mistral"];

    pub fn from_model_type(name: &str) -> Option<LlamaFamily> {
        match name {
            "llama" => Some(LlamaFamily::Llama),
            "qwen2" => Some(LlamaFamily::Qwen2),
            "qwen3" => Some(LlamaFamily::Qwen3),
            "mistral" => Some(LlamaFamily::Mistral),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LlamaFamily::Llama => "llama",
            LlamaFamily::Qwen2 => "qwen2",
            LlamaFamily::Qwen3 => "qwen3",
            LlamaFamily::Mistral => "mistral",
        }
    }

    /// transformers' class for the causal LM (`config.json`'s `architectures`).
    pub fn architecture(self) -> &'static str {
        match self {
            LlamaFamily::Llama => "LlamaForCausalLM",
            LlamaFamily::Qwen2 => "Qwen2ForCausalLM",
            LlamaFamily::Qwen3 => "Qwen3ForCausalLM",
            LlamaFamily::Mistral => "MistralForCausalLM",
        }
    }
}

/// The hyperparameters of a Llama-family model, named as in transformers.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct LlamaConfig {
    pub model_type: String,
    /// V
    pub vocab_size: usize,
    /// C
    pub hidden_size: usize,
    /// The SwiGLU MLP's width.
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    /// NH, the query heads.
    pub num_attention_heads: usize,
    /// NKV, the key/value heads (grouped-query attention when fewer than NH); NH when absent.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// HS, which may differ from C / NH (Qwen3); C / NH when absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f32,
    /// The LM head shares the token embedding's weight.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// A bias on q, k, v and o (Llama, Qwen3); Qwen2 always has one on q, k and v.
    #[serde(default)]
    pub attention_bias: bool,
    /// A bias on the MLP's three projections (Llama).
    #[serde(default)]
    pub mlp_bias: bool,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Qwen2/3: the window applies only when this is set.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Qwen2/3: layers below this index keep full attention.
    #[serde(default)]
    pub max_window_layers: Option<usize>,
    /// Qwen2/3: `"full_attention"` or `"sliding_attention"` per layer.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Dropout on the attention probabilities (train mode only).
    #[serde(default)]
    pub attention_dropout: f32,
    /// The whole `config.json` as read (`Null` for a config built in code).
    #[serde(skip)]
    pub raw: Value,
    /// The rotary embedding (`rope_parameters` or `rope_theta` + `rope_scaling`).
    #[serde(skip)]
    pub rope: Option<Rope>,
}

fn default_rms_eps() -> f32 {
    1e-6
}

fn default_act() -> String {
    "silu".into()
}

impl LlamaConfig {
    /// Reads and checks `dir/config.json`.
    ///
    /// # Errors
    /// A missing or malformed file, a model type outside the family, sizes that do not fit
    /// (NH not a multiple of NKV, C not divisible by NH without `head_dim`, an odd head size),
    /// an activation other than SiLU, or an unknown rope type; the message names the field.
    pub fn from_dir(dir: &Path) -> Result<LlamaConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let raw: Value =
            serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        LlamaConfig::from_json(raw, &path)
    }

    /// [`LlamaConfig::from_dir`] for a parsed file; `path` names it in errors.
    ///
    /// # Errors
    /// As [`LlamaConfig::from_dir`].
    pub fn from_json(raw: Value, path: &Path) -> Result<LlamaConfig> {
        check_model_type_in(&raw, &LlamaFamily::MODEL_TYPES, path)?;
        let bad = |message: String| Err(Error::Config { path: path.to_path_buf(), message });
        let mut config: LlamaConfig = LlamaConfig::deserialize(&raw)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })?;
        config.check_ranges().map_err(|message| Error::Config { path: path.to_path_buf(), message })?;
        let (nh, nkv) = (config.num_attention_heads, config.num_kv_heads());
        if !nh.is_multiple_of(nkv) {
            return bad(format!("num_attention_heads {nh} is not a multiple of num_key_value_heads {nkv}"));
        }
        if config.head_dim.is_none() && !config.hidden_size.is_multiple_of(nh) {
            return bad(format!("hidden_size {} is not divisible by num_attention_heads {nh}", config.hidden_size));
        }
        if !config.head_size().is_multiple_of(2) || config.head_size() == 0 {
            return bad(format!("head_dim {} must be even for the rotary embedding", config.head_size()));
        }
        if config.hidden_act != "silu" {
            return bad(format!("hidden_act \"{}\" is not supported (the family uses \"silu\")", config.hidden_act));
        }
        if let Some(types) = &config.layer_types {
            if types.len() != config.num_hidden_layers {
                return bad(format!("layer_types has {} entries for {} layers", types.len(), config.num_hidden_layers));
            }
        }
        config.rope = Some(Rope::from_config(&raw, config.head_size(), config.max_position_embeddings, path)?);
        config.raw = raw;
        Ok(config)
    }

    /// Every size in `1..=` its bound, the dropout in `[0, 1)`, a finite epsilon.
    fn check_ranges(&self) -> std::result::Result<(), String> {
        check::size("vocab_size", self.vocab_size, MAX_VOCAB)?;
        check::size("hidden_size", self.hidden_size, MAX_WIDTH)?;
        check::size("intermediate_size", self.intermediate_size, MAX_INNER)?;
        check::size("num_hidden_layers", self.num_hidden_layers, MAX_COUNT)?;
        check::size("num_attention_heads", self.num_attention_heads, MAX_COUNT)?;
        check::size("num_key_value_heads", self.num_kv_heads(), MAX_COUNT)?;
        if let Some(hs) = self.head_dim {
            check::size("head_dim", hs, MAX_WIDTH)?;
        }
        check::size("max_position_embeddings", self.max_position_embeddings, MAX_POSITIONS)?;
        if let Some(window) = self.sliding_window {
            check::size("sliding_window", window, MAX_POSITIONS)?;
        }
        check::epsilon("rms_norm_eps", self.rms_norm_eps)?;
        check::probability("attention_dropout", self.attention_dropout)
    }

    /// The family member.
    pub fn family(&self) -> LlamaFamily {
        LlamaFamily::from_model_type(&self.model_type).expect("checked when read")
    }

    /// NKV.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// HS.
    pub fn head_size(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary embedding.
    pub fn rope(&self) -> Result<Rope> {
        self.rope.clone().ok_or_else(|| Error::Input("the config has no rope (not read from a file)".into()))
    }

    /// Whether q, k and v have a bias (Qwen2 always; the others by `attention_bias`), and o.
    pub fn qkv_o_bias(&self) -> (bool, bool) {
        match self.family() {
            LlamaFamily::Qwen2 => (true, false),
            _ => (self.attention_bias, self.attention_bias),
        }
    }

    /// Layer `i`'s sliding window: a query sees the keys less than `window` positions back
    /// (`q − k < window`), as transformers' sliding-window mask; `None` is full attention.
    pub fn layer_window(&self, i: usize) -> Option<usize> {
        match self.family() {
            LlamaFamily::Mistral => self.sliding_window,
            LlamaFamily::Llama => None,
            LlamaFamily::Qwen2 | LlamaFamily::Qwen3 => {
                let window = self.sliding_window.filter(|_| self.use_sliding_window)?;
                let sliding = match &self.layer_types {
                    Some(types) => types[i] == "sliding_attention",
                    None => i >= self.max_window_layers.unwrap_or(0),
                };
                sliding.then_some(window)
            }
        }
    }

    /// The config as `config.json` should hold it: the file it was read from with the typed
    /// fields' current values.
    pub fn to_json(&self) -> Value {
        config_json(self, &self.raw)
    }
}
