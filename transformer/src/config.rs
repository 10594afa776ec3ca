//! `config.json` of a Hugging Face GPT-2 folder (the fields the model uses).

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// GPT-2 hyperparameters, named as in transformers' `GPT2Config`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
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
}

fn default_eps() -> f32 {
    1e-5
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
        let config: Gpt2Config =
            serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        let bad = |message: String| Err(Error::Config { path: path.clone(), message });
        if config.model_type != "gpt2" {
            return bad(format!("model_type is \"{}\", expected \"gpt2\"", config.model_type));
        }
        if config.n_head == 0 || !config.n_embd.is_multiple_of(config.n_head) {
            return bad(format!("n_embd {} is not divisible by n_head {}", config.n_embd, config.n_head));
        }
        if !matches!(config.activation_function.as_str(), "gelu_new" | "gelu_pytorch_tanh") {
            return bad(format!("activation_function \"{}\" is not supported", config.activation_function));
        }
        Ok(config)
    }

    /// The MLP's hidden width.
    pub fn inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
}

/// BERT hyperparameters, named as in transformers' `BertConfig`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
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
        let config: BertConfig =
            serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        let bad = |message: String| Err(Error::Config { path: path.clone(), message });
        if config.model_type != "bert" {
            return bad(format!("model_type is \"{}\", expected \"bert\"", config.model_type));
        }
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
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
