//! `config.json` of a Hugging Face GPT-2 or BERT folder: the fields the models use, the whole
//! file kept beside them (so [`crate::Gpt2::save_dir`] writes back fields deltaw ignores), and
//! [`ModelType`], which tells the two apart.

use crate::config_check::{self as check, MAX_COUNT, MAX_INNER, MAX_POSITIONS, MAX_VOCAB, MAX_WIDTH};
use crate::error::{Error, Result};
use crate::llama_config::LlamaFamily;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// GPT-2 hyperparameters, named as in transformers' `GPT2Config`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Gpt2Config {
    pub model_type: String,
    /// V
    pub vocab_size: usize,
    /// Longest sequence (rows of the position embedding).
    pub n_positions: usize,
    /// C
    pub n_embd: usize,
    pub n_layer: usize,
    /// NH; the head size is C / NH.
    pub n_head: usize,
    /// MLP width; `None` means 4·C.
    pub n_inner: Option<usize>,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f32,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Dropout on each block's two residual branches (train mode only).
    #[serde(default = "default_pdrop")]
    pub resid_pdrop: f32,
    /// Dropout on the token + position embeddings (train mode only).
    #[serde(default = "default_pdrop")]
    pub embd_pdrop: f32,
    /// Dropout on the attention probabilities (train mode only).
    #[serde(default = "default_pdrop")]
    pub attn_pdrop: f32,
    /// The whole `config.json` as read (`Null` for a config built in code), so that saving
    /// keeps the fields deltaw does not use (`architectures`, `eos_token_id`, dropouts...).
    #[serde(skip)]
    pub raw: Value,
}

fn default_eps() -> f32 {
    1e-5
}

/// transformers' default dropout for GPT-2 and BERT configs that do not say.
fn default_pdrop() -> f32 {
    0.1
}

fn default_activation() -> String {
    "gelu_new".into()
}

impl Gpt2Config {
    /// Reads and checks `dir/config.json`.
    ///
    /// # Errors
    /// When the file is missing or malformed, is not a `gpt2` config, or its sizes do not
    /// fit together (C not divisible by NH); the message names the file and the field.
    pub fn from_dir(dir: &Path) -> Result<Gpt2Config> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let raw: Value =
            serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        Gpt2Config::from_json(raw, &path)
    }

    /// [`Gpt2Config::from_dir`] for a parsed file (or one built from GGUF metadata); `path`
    /// names it in errors.
    ///
    /// # Errors
    /// As [`Gpt2Config::from_dir`].
    pub fn from_json(raw: Value, path: &Path) -> Result<Gpt2Config> {
        let path = path.to_path_buf();
        check_model_type(&raw, "gpt2", &path)?; // before the fields, whose errors would mislead
        let mut config: Gpt2Config =
            Gpt2Config::deserialize(&raw).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        config.raw = raw;
        let bad = |message: String| Err(Error::Config { path: path.clone(), message });
        if config.model_type != "gpt2" {
            return bad(format!("model_type is \"{}\", expected \"gpt2\"", config.model_type));
        }
        config.check_ranges().map_err(|message| Error::Config { path: path.clone(), message })?;
        if !config.n_embd.is_multiple_of(config.n_head) {
            return bad(format!("n_embd {} is not divisible by n_head {}", config.n_embd, config.n_head));
        }
        if !matches!(config.activation_function.as_str(), "gelu_new" | "gelu_pytorch_tanh") {
            return bad(format!("activation_function \"{}\" is not supported", config.activation_function));
        }
        Ok(config)
    }

    /// Every size in `1..=` its bound, every dropout in `[0, 1)`, a finite epsilon.
    fn check_ranges(&self) -> std::result::Result<(), String> {
        check::size("vocab_size", self.vocab_size, MAX_VOCAB)?;
        check::size("n_positions", self.n_positions, MAX_POSITIONS)?;
        check::size("n_embd", self.n_embd, MAX_WIDTH)?;
        check::size("n_layer", self.n_layer, MAX_COUNT)?;
        check::size("n_head", self.n_head, MAX_COUNT)?;
        if let Some(inner) = self.n_inner {
            check::size("n_inner", inner, MAX_INNER)?;
        }
        check::epsilon("layer_norm_epsilon", self.layer_norm_epsilon)?;
        check::probability("resid_pdrop", self.resid_pdrop)?;
        check::probability("embd_pdrop", self.embd_pdrop)?;
        check::probability("attn_pdrop", self.attn_pdrop)
    }

    /// The MLP's hidden width.
    pub fn inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
}

/// BERT hyperparameters, named as in transformers' `BertConfig`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct BertConfig {
    pub model_type: String,
    /// V
    pub vocab_size: usize,
    /// C
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    /// NH
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_bert_eps")]
    pub layer_norm_eps: f32,
    #[serde(default = "default_bert_act")]
    pub hidden_act: String,
    /// Dropout after the embeddings and on each sublayer's output (train mode only).
    #[serde(default = "default_pdrop")]
    pub hidden_dropout_prob: f32,
    /// Dropout on the attention probabilities (train mode only).
    #[serde(default = "default_pdrop")]
    pub attention_probs_dropout_prob: f32,
    /// The whole `config.json` as read (`Null` for a config built in code); see [`Gpt2Config::raw`].
    #[serde(skip)]
    pub raw: Value,
}

fn default_type_vocab() -> usize {
    2
}

fn default_bert_eps() -> f32 {
    1e-12
}

fn default_bert_act() -> String {
    "gelu".into()
}

impl BertConfig {
    /// Reads and checks `dir/config.json` (a `bert` model with the erf GELU).
    ///
    /// # Errors
    /// A missing or malformed file, another model type, another activation, or a width not
    /// divisible by the head count; the message names the file and the field.
    pub fn from_dir(dir: &Path) -> Result<BertConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let raw: Value =
            serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        check_model_type(&raw, "bert", &path)?; // before the fields, whose errors would mislead
        let mut config: BertConfig =
            BertConfig::deserialize(&raw).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        config.raw = raw;
        let bad = |message: String| Err(Error::Config { path: path.clone(), message });
        if config.model_type != "bert" {
            return bad(format!("model_type is \"{}\", expected \"bert\"", config.model_type));
        }
        config.check_ranges().map_err(|message| Error::Config { path: path.clone(), message })?;
        if !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            ));
        }
        if config.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act \"{}\" is not supported (BERT uses \"gelu\", the erf form)",
                config.hidden_act
            ));
        }
        Ok(config)
    }
}

impl BertConfig {
    /// Every size in `1..=` its bound, every dropout in `[0, 1)`, a finite epsilon.
    fn check_ranges(&self) -> std::result::Result<(), String> {
        check::size("vocab_size", self.vocab_size, MAX_VOCAB)?;
        check::size("hidden_size", self.hidden_size, MAX_WIDTH)?;
        check::size("num_hidden_layers", self.num_hidden_layers, MAX_COUNT)?;
        check::size("num_attention_heads", self.num_attention_heads, MAX_COUNT)?;
        check::size("intermediate_size", self.intermediate_size, MAX_INNER)?;
        check::size("max_position_embeddings", self.max_position_embeddings, MAX_POSITIONS)?;
        check::size("type_vocab_size", self.type_vocab_size, MAX_VOCAB)?;
        check::epsilon("layer_norm_eps", self.layer_norm_eps)?;
        check::probability("hidden_dropout_prob", self.hidden_dropout_prob)?;
        check::probability("attention_probs_dropout_prob", self.attention_probs_dropout_prob)
    }
}

/// Refuses a config whose `model_type` is present and is not `expected`.
fn check_model_type(raw: &Value, expected: &str, path: &Path) -> Result<()> {
    check_model_type_in(raw, &[expected], path)
}

/// Refuses a config whose `model_type` is missing or not one of `expected`.
pub(crate) fn check_model_type_in(raw: &Value, expected: &[&str], path: &Path) -> Result<()> {
    match raw.get("model_type").and_then(Value::as_str) {
        Some(found) if expected.contains(&found) => Ok(()),
        None if expected.len() == 1 => Ok(()),
        found => {
            let found = found.map_or("missing".to_string(), |f| format!("\"{f}\""));
            let expected = match expected {
                [one] => format!("\"{one}\""),
                many => format!("one of {}", many.join(", ")),
            };
            Err(Error::Config {
                path: path.to_path_buf(),
                message: format!("model_type is {found}, expected {expected}"),
            })
        }
    }
}

/// The architectures deltaw loads, told apart by `config.json`'s `model_type` as transformers'
/// `AutoConfig` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelType {
    /// `"gpt2"`: [`crate::Gpt2`].
    Gpt2,
    /// `"bert"`: [`crate::Bert`].
    Bert,
    /// `"llama"`, `"qwen2"`, `"qwen3"`, `"mistral"`: [`crate::Llama`].
    Llama(LlamaFamily),
}

impl ModelType {
    /// Reads `model_type` from `dir/config.json`.
    ///
    /// # Errors
    /// A missing or malformed file, a missing `model_type`, or one deltaw does not load; the
    /// message names the file and the value.
    pub fn from_dir(dir: &Path) -> Result<ModelType> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let raw: Value =
            serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        let bad = |message: String| Err(Error::Config { path: path.clone(), message });
        match raw.get("model_type").and_then(Value::as_str) {
            Some("gpt2") => Ok(ModelType::Gpt2),
            Some("bert") => Ok(ModelType::Bert),
            Some(other) => match LlamaFamily::from_model_type(other) {
                Some(family) => Ok(ModelType::Llama(family)),
                None => bad(format!(
                    "model_type \"{other}\" is not supported (deltaw loads gpt2, bert, {})",
                    LlamaFamily::MODEL_TYPES.join(", ")
                )),
            },
            None => bad("no string field model_type".into()),
        }
    }

    /// The `model_type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Gpt2 => "gpt2",
            ModelType::Bert => "bert",
            ModelType::Llama(family) => family.as_str(),
        }
    }
}

/// `config` as `config.json` should hold it: `raw` (the file as read) with the typed fields
/// written over it where they differ from what `raw` says, so unchanged values keep their
/// exact spelling (`1e-12` stays `1e-12`, not the f32's `9.999999960041972e-13`). With no
/// usable `raw` (a config built in code), the typed fields alone.
pub(crate) fn config_json<C: Serialize + DeserializeOwned>(config: &C, raw: &Value) -> Value {
    let known = serde_json::to_value(config).expect("a config serializes to JSON");
    let original = C::deserialize(raw).ok().map(|c| serde_json::to_value(c).expect("a config serializes to JSON"));
    let (Value::Object(mut merged), Some(original)) = (raw.clone(), original) else {
        return known;
    };
    if let Value::Object(known) = known {
        for (key, value) in known {
            if original.get(&key) != Some(&value) {
                merged.insert(key, value);
            }
        }
    }
    Value::Object(merged)
}

impl Gpt2Config {
    /// The config as `config.json` should hold it: every field of the file it was read from,
    /// with the typed fields' current values (see [`Gpt2Config::raw`]).
    pub fn to_json(&self) -> Value {
        config_json(self, &self.raw)
    }
}

impl BertConfig {
    /// The config as `config.json` should hold it (see [`Gpt2Config::to_json`]).
    pub fn to_json(&self) -> Value {
        config_json(self, &self.raw)
    }
}
