//! Model hyperparameters from GGUF metadata (`general.architecture` and the `{arch}.*` keys
//! llama.cpp's converter writes), turned into the `config.json` transformers would have for
//! the same model and checked by the same code as a folder's config.

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::llama_config::{LlamaConfig, LlamaFamily};
use crate::rope::RopeScaling;
use crate::rope_factors::llama3_from_factors;
use deltaw_tensor::gguf::GgufMetadata;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The model families a GGUF file may hold, by `general.architecture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufArch {
    /// `llama` (Llama 2/3 and Mistral, which llama.cpp converts as `llama`), `qwen2`, `qwen3`.
    Llama(LlamaFamily),
    /// `gpt2`.
    Gpt2,
}

impl GgufArch {
    /// The architectures deltaw loads.
    pub const NAMES: [&'static str; 4] = ["llama", "qwen2", "qwen3", "gpt2"];

    /// `general.architecture` of `metadata`.
    ///
    /// # Errors
    /// The key is missing, not a string, or names an architecture deltaw does not load.
    pub fn from_metadata(metadata: &GgufMetadata, path: &Path) -> Result<GgufArch> {
        match metadata.get_str("general.architecture")? {
            "llama" => Ok(GgufArch::Llama(LlamaFamily::Llama)),
            "qwen2" => Ok(GgufArch::Llama(LlamaFamily::Qwen2)),
            "qwen3" => Ok(GgufArch::Llama(LlamaFamily::Qwen3)),
            "gpt2" => Ok(GgufArch::Gpt2),
            other => Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "general.architecture \"{other}\" is not supported (supported: {})",
                    GgufArch::NAMES.join(", ")
                ),
            }),
        }
    }

    /// The architecture's name, the prefix of its metadata keys.
    pub fn as_str(self) -> &'static str {
        match self {
            GgufArch::Llama(LlamaFamily::Mistral) => "llama",
            GgufArch::Llama(f) => f.as_str(),
            GgufArch::Gpt2 => "gpt2",
        }
    }
}

/// Reads `{arch}.*` keys with errors that name them.
struct Keys<'a> {
    metadata: &'a GgufMetadata,
    arch: &'static str,
}

impl Keys<'_> {
    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.arch)
    }
    fn uint(&self, name: &str) -> Result<u64> {
        Ok(self.metadata.get_uint(&self.key(name))?)
    }
    fn opt_uint(&self, name: &str) -> Result<Option<u64>> {
        self.metadata.get(&self.key(name)).map(|_| self.uint(name)).transpose()
    }
    fn opt_f32(&self, name: &str) -> Result<Option<f32>> {
        let key = self.key(name);
        self.metadata.get(&key).map(|_| self.metadata.get_f32(&key)).transpose().map_err(Into::into)
    }
    fn f32(&self, name: &str) -> Result<f32> {
        Ok(self.metadata.get_f32(&self.key(name))?)
    }
}

/// The Llama-family config of a GGUF file: `vocab_size` is the token embedding's rows,
/// `tied` whether the file has no `output.weight`, `bias` whether the attention
/// projections have biases (Qwen2 always has them).
///
/// # Errors
/// A missing or mistyped key (named), a rotary embedding over part of the head
/// (`rope.dimension_count` below the head size) or an unknown `rope.scaling.type`, and
/// whatever [`LlamaConfig::from_json`] refuses.
pub fn llama_config(
    metadata: &GgufMetadata,
    family: LlamaFamily,
    vocab_size: usize,
    tied: bool,
    bias: bool,
    rope_freqs: Option<&[f32]>,
    path: &Path,
) -> Result<LlamaConfig> {
    let arch = GgufArch::Llama(family).as_str();
    let k = Keys { metadata, arch };
    let bad = |message: String| Error::Config { path: path.to_path_buf(), message };
    let heads = k.uint("attention.head_count")?;
    let hidden = k.uint("embedding_length")?;
    let mut config = Map::new();
    config.insert("model_type".into(), json!(family.as_str()));
    config.insert("architectures".into(), json!([family.architecture()]));
    config.insert("vocab_size".into(), json!(vocab_size));
    config.insert("hidden_size".into(), json!(hidden));
    config.insert("intermediate_size".into(), json!(k.uint("feed_forward_length")?));
    config.insert("num_hidden_layers".into(), json!(k.uint("block_count")?));
    config.insert("num_attention_heads".into(), json!(heads));
    config.insert("num_key_value_heads".into(), json!(k.opt_uint("attention.head_count_kv")?.unwrap_or(heads)));
    let head_dim = match k.opt_uint("attention.key_length")? {
        Some(hs) => hs,
        None => hidden / heads.max(1),
    };
    config.insert("head_dim".into(), json!(head_dim));
    if let Some(rot) = k.opt_uint("rope.dimension_count")? {
        if rot != head_dim {
            return Err(bad(format!(
                "{arch}.rope.dimension_count {rot} differs from the head size {head_dim}: \
                 a rotary embedding over part of each head is not supported"
            )));
        }
    }
    config.insert("rms_norm_eps".into(), json!(k.f32("attention.layer_norm_rms_epsilon")?));
    config.insert("max_position_embeddings".into(), json!(k.uint("context_length")?));
    config.insert("tie_word_embeddings".into(), json!(tied));
    config.insert("attention_bias".into(), json!(bias && family != LlamaFamily::Qwen2));
    config.insert("hidden_act".into(), json!("silu"));
    let theta = k.opt_f32("rope.freq_base")?.unwrap_or(10_000.0);
    config.insert("rope_theta".into(), json!(theta));
    let scaling = rope_config(&k, (theta, head_dim as usize), rope_freqs, path)?;
    if let Some(scaling) = scaling {
        config.insert("rope_scaling".into(), scaling);
    }
    LlamaConfig::from_json(Value::Object(config), path)
}

/// transformers' `rope_scaling` from `rope.scaling.*` metadata or, for Llama 3's bands, the
/// factors of a `rope_freqs.weight` tensor; `None` for the default rope.
fn rope_config(k: &Keys, (theta, dim): (f32, usize), rope_freqs: Option<&[f32]>, path: &Path) -> Result<Option<Value>> {
    let bad = |message: String| Error::Config { path: path.to_path_buf(), message };
    match (rope_scaling(k, path)?, rope_freqs) {
        (scaling, None) => Ok(scaling),
        (None, Some(factors)) => {
            // llama.cpp's converter stores no pretraining length with the bands: Llama 3.1's.
            let original = k.opt_uint("rope.scaling.original_context_length")?.unwrap_or(8192);
            let fitted = llama3_from_factors(theta as f64, dim, factors, original as f64).map_err(bad)?;
            Ok(scaling_json(&fitted))
        }
        (Some(_), Some(_)) => Err(bad(format!(
            "{} and a rope_freqs.weight tensor both scale the rope; expected one",
            k.key("rope.scaling.type")
        ))),
    }
}

/// A fitted scaling as transformers' `rope_scaling`, `None` for none.
fn scaling_json(scaling: &RopeScaling) -> Option<Value> {
    match *scaling {
        RopeScaling::Linear { factor } => Some(json!({"rope_type": "linear", "factor": factor})),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
            Some(json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings as u64}))
        }
        _ => None,
    }
}

/// `rope.scaling.type` and its parameters as transformers' `rope_scaling`, `None` for none.
fn rope_scaling(k: &Keys, path: &Path) -> Result<Option<Value>> {
    let key = k.key("rope.scaling.type");
    let Some(_) = k.metadata.get(&key) else { return Ok(None) };
    let kind = k.metadata.get_str(&key)?;
    let factor = || -> Result<f32> { k.f32("rope.scaling.factor") };
    match kind {
        "none" => Ok(None),
        "linear" => Ok(Some(json!({"rope_type": "linear", "factor": factor()?}))),
        "yarn" => {
            let original = k.uint("rope.scaling.original_context_length")?;
            Ok(Some(json!({"rope_type": "yarn", "factor": factor()?, "original_max_position_embeddings": original})))
        }
        other => Err(Error::Config {
            path: path.to_path_buf(),
            message: format!("{key} \"{other}\" is not supported (supported: none, linear, yarn)"),
        }),
    }
}

/// The GPT-2 config of a GGUF file (`gpt2.*` keys); `vocab_size` is the token embedding's rows.
///
/// # Errors
/// A missing or mistyped key (named), and whatever [`Gpt2Config::from_json`] refuses.
pub fn gpt2_config(metadata: &GgufMetadata, vocab_size: usize, path: &Path) -> Result<Gpt2Config> {
    let k = Keys { metadata, arch: "gpt2" };
    let config = json!({
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": vocab_size,
        "n_positions": k.uint("context_length")?,
        "n_ctx": k.uint("context_length")?,
        "n_embd": k.uint("embedding_length")?,
        "n_layer": k.uint("block_count")?,
        "n_head": k.uint("attention.head_count")?,
        "n_inner": k.uint("feed_forward_length")?,
        "layer_norm_epsilon": k.f32("attention.layer_norm_epsilon")?,
        "activation_function": "gelu_new",
    });
    Gpt2Config::from_json(config, path)
}
