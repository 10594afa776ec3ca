//! A model folder's tokenizer (`tokenizer.json`, `tokenizer_config.json`,
//! `generation_config.json`) as GGUF `tokenizer.*` metadata: the inverse of
//! [`GgufVocab::tokenizer`], for `deltaw export --format gguf`.

use super::vocab::GgufVocab;
use crate::error::{Error, Result};
use crate::tokenizer_config::{GenerationConfig, TokenizerConfig};
use deltaw_tensor::gguf::{GgufValue, GgufValueType};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

impl GgufVocab {
    /// The vocabulary of the Hugging Face folder `dir`. A BPE with byte fallback (Llama 2,
    /// Mistral) becomes `"llama"`: each piece made by merge r scores −r, so SentencePiece's
    /// best-score-first merging is the BPE's merge order; a byte-level BPE becomes `"gpt2"` with
    /// its merges and the pre-tokenizer's name.
    ///
    /// # Errors
    /// A missing or malformed `tokenizer.json`, a model other than BPE, or a pre-tokenizer
    /// llama.cpp has no name for.
    pub fn from_tokenizer_dir(dir: &Path) -> Result<GgufVocab> {
        let path = dir.join("tokenizer.json");
        let bad = |message: String| Error::Config { path: path.clone(), message };
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let model = &json["model"];
        if model["type"] != "BPE" {
            return Err(bad(format!("model type {} cannot be written as GGUF (BPE only)", model["type"])));
        }
        let tokens_config = TokenizerConfig::from_dir(dir)?;
        let (tokens, types) = tokens_and_types(&json, &tokens_config).map_err(bad)?;
        let merges = merges_of(model).map_err(bad)?;
        let id_of = |t: &Option<String>| t.as_ref().and_then(|t| tokens.iter().position(|x| x == t)).map(|i| i as u32);
        let generation = GenerationConfig::from_dir(dir)?;
        let bos = generation.bos_token_id.map(|i| i as u32).or_else(|| id_of(&tokens_config.bos_token));
        let eos = id_of(&tokens_config.eos_token).or_else(|| generation.eos_token_ids.first().map(|&i| i as u32));
        // The BOS is added when the post-processor's template starts with it, else by the flag.
        let template_bos = json["post_processor"]["single"][0]["SpecialToken"]["id"].as_str().map(String::from);
        let add_bos =
            tokens_config.add_bos_token.unwrap_or(template_bos.is_some() && template_bos == tokens_config.bos_token);
        let (unk, pad) = (id_of(&tokens_config.unk_token), id_of(&tokens_config.pad_token));
        let mut vocab = GgufVocab {
            tokens,
            token_types: Some(types),
            bos_token_id: bos,
            eos_token_id: eos,
            unknown_token_id: unk,
            padding_token_id: pad,
            add_bos: Some(add_bos),
            add_eos: Some(tokens_config.add_eos_token.unwrap_or(false)),
            chat_template: tokens_config.chat_template.clone(),
            ..Default::default()
        };
        if model["byte_fallback"].as_bool().unwrap_or(false) {
            let rank: HashMap<String, usize> =
                merges.iter().enumerate().map(|(r, m)| (m.replacen(' ', "", 1), r)).collect();
            let scores = vocab
                .tokens
                .iter()
                .enumerate()
                .map(|(i, t)| rank.get(t).map_or(-1e4 - i as f32, |&r| -(r as f32)))
                .collect();
            vocab.model = "llama".into();
            vocab.scores = Some(scores);
            let scheme = json["pre_tokenizer"]["prepend_scheme"].as_str().unwrap_or("first");
            vocab.add_space_prefix = Some(scheme != "never");
        } else {
            vocab.model = "gpt2".into();
            vocab.pre = Some(pre_name(&json["pre_tokenizer"]).map_err(bad)?);
            vocab.merges = Some(merges);
        }
        Ok(vocab)
    }

    /// Pads the vocabulary with unused `[PAD{i}]` tokens up to `vocab_size`, the model's
    /// embedding rows, as llama.cpp's converter does: llama.cpp requires one token per row
    /// (Qwen2.5's 151,936 rows hold 151,665 tokens).
    ///
    /// # Errors
    /// When the tokenizer already has more tokens than the model has rows.
    pub fn pad_to(&mut self, vocab_size: usize) -> Result<()> {
        let n = self.tokens.len();
        if n > vocab_size {
            return Err(Error::Input(format!(
                "the tokenizer has {n} tokens for a model of {vocab_size} embedding rows"
            )));
        }
        for i in n..vocab_size {
            self.tokens.push(format!("[PAD{i}]"));
            if let Some(types) = &mut self.token_types {
                types.push(5);
            }
            if let Some(scores) = &mut self.scores {
                scores.push(-1e4 - i as f32);
            }
        }
        Ok(())
    }

    /// The `tokenizer.*` metadata entries.
    pub fn to_metadata(&self) -> Vec<(String, GgufValue)> {
        let strings = |v: &[String]| {
            GgufValue::Array(GgufValueType::String, v.iter().map(|s| GgufValue::String(s.clone())).collect())
        };
        let mut out = vec![("tokenizer.ggml.model".to_string(), GgufValue::String(self.model.clone()))];
        if let Some(pre) = &self.pre {
            out.push(("tokenizer.ggml.pre".into(), GgufValue::String(pre.clone())));
        }
        out.push(("tokenizer.ggml.tokens".into(), strings(&self.tokens)));
        if let Some(scores) = &self.scores {
            let items = scores.iter().map(|&s| GgufValue::F32(s)).collect();
            out.push(("tokenizer.ggml.scores".into(), GgufValue::Array(GgufValueType::F32, items)));
        }
        if let Some(types) = &self.token_types {
            let items = types.iter().map(|&t| GgufValue::I32(t)).collect();
            out.push(("tokenizer.ggml.token_type".into(), GgufValue::Array(GgufValueType::I32, items)));
        }
        if let Some(merges) = &self.merges {
            out.push(("tokenizer.ggml.merges".into(), strings(merges)));
        }
        for (key, id) in [
            ("bos", self.bos_token_id),
            ("eos", self.eos_token_id),
            ("unknown", self.unknown_token_id),
            ("padding", self.padding_token_id),
        ] {
            if let Some(id) = id {
                out.push((format!("tokenizer.ggml.{key}_token_id"), GgufValue::U32(id)));
            }
        }
        for (key, flag) in [
            ("add_bos_token", self.add_bos),
            ("add_eos_token", self.add_eos),
            ("add_space_prefix", self.add_space_prefix),
        ] {
            if let Some(flag) = flag {
                out.push((format!("tokenizer.ggml.{key}"), GgufValue::Bool(flag)));
            }
        }
        if let Some(template) = &self.chat_template {
            out.push(("tokenizer.chat_template".into(), GgufValue::String(template.clone())));
        }
        out
    }
}

/// llama.cpp's name (`tokenizer.ggml.pre`) for a byte-level pre-tokenizer.
fn pre_name(pre: &Value) -> std::result::Result<String, String> {
    if pre["type"] == "ByteLevel" && pre["use_regex"].as_bool().unwrap_or(true) {
        return Ok("gpt-2".into());
    }
    let regex = pre["pretokenizers"][0]["pattern"]["Regex"].as_str().unwrap_or_default();
    match regex {
        r if r == super::vocab::LLAMA3_SPLIT => Ok("llama-bpe".into()),
        r if r == super::vocab::QWEN2_SPLIT => Ok("qwen2".into()),
        _ => Err(format!(
            "pre_tokenizer {pre} has no llama.cpp name (known: GPT-2's ByteLevel, Llama 3's and Qwen2's splits)"
        )),
    }
}

/// The tokens by id and their llama.cpp token types (1 normal, 2 unknown, 3 control, 4
/// user-defined, 5 unused, 6 byte) from `tokenizer.json`'s vocabulary and added tokens.
fn tokens_and_types(json: &Value, config: &TokenizerConfig) -> std::result::Result<(Vec<String>, Vec<i32>), String> {
    let mut by_id: HashMap<usize, (String, i32)> = HashMap::new();
    let vocab = json["model"]["vocab"].as_object().ok_or("model.vocab is not an object")?;
    for (token, id) in vocab {
        let id = id.as_u64().ok_or_else(|| format!("vocab[{token:?}] is not an id"))? as usize;
        let byte = token.len() == 6 && token.starts_with("<0x") && token.ends_with('>');
        by_id.insert(id, (token.clone(), if byte { 6 } else { 1 }));
    }
    for added in json["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) else {
            return Err("an added token lacks its id or content".into());
        };
        let ty = match added["special"].as_bool().unwrap_or(false) {
            true if config.unk_token.as_deref() == Some(content) => 2,
            true => 3,
            false => 4,
        };
        by_id.insert(id as usize, (content.to_string(), ty));
    }
    let n = by_id.keys().max().map_or(0, |m| m + 1);
    // Ids nothing names (a padded vocabulary) are unused placeholders, as llama.cpp's converter writes them.
    Ok((0..n).map(|i| by_id.remove(&i).unwrap_or_else(|| (format!("[PAD{i}]"), 5))).unzip())
}

/// `model.merges` as `"a b"` strings (tokenizers writes either those or `[a, b]` pairs).
fn merges_of(model: &Value) -> std::result::Result<Vec<String>, String> {
    model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Value::String(s) => Some(s.clone()),
            Value::Array(p) => Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?)),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(|| "model.merges: expected \"a b\" strings or [a, b] pairs".into())
}
