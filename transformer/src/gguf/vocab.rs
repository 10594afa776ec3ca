//! The tokenizer a GGUF file carries in its metadata (`tokenizer.ggml.*`), rebuilt as a
//! `tokenizers` tokenizer that encodes as the Hugging Face tokenizer of the same vocabulary.
//!
//! Two models exist in llama.cpp's files:
//! - `"gpt2"`: byte-level BPE. `tokens` is the vocabulary in id order and `merges` the merge
//!   list (`"Ġ t"`, highest priority first), so the BPE is given outright; the pre-tokenizer
//!   (how text is split before BPE) is named by `tokenizer.ggml.pre` (`"gpt-2"`,
//!   `"llama-bpe"`, `"qwen2"`...).
//! - `"llama"`: SentencePiece BPE. There are no merges: every piece has a `score` (its log
//!   probability, higher merges first) and SentencePiece merges the adjacent pair whose
//!   concatenation is the best-scoring piece. That is BPE whose merge list is every way of
//!   cutting a piece into two pieces of the vocabulary, ordered by the piece's score: the
//!   list is rebuilt here. Spaces are `▁`, a `▁` is prepended to the text, and characters
//!   outside the vocabulary fall back to the `<0xNN>` byte tokens.
//!
//! `token_type` says which ids are control tokens (`<s>`, `<|im_end|>`: added tokens, special),
//! user-defined (added, not special), bytes, unknown or unused.

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use crate::tokenizer_config::TokenizerConfig;
use deltaw_tensor::gguf::GgufMetadata;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// Llama 3's split of text into words before byte-level BPE (`pre` = `llama-bpe`).
pub(super) const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split: Llama 3's with single digits.
pub(super) const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.*` metadata of a GGUF file, as plain data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: `"gpt2"` or `"llama"`.
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer of a `"gpt2"` vocabulary.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, in id order.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (SentencePiece's piece scores).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`, one per token.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges` (`"a b"`), highest priority first.
    pub merges: Option<Vec<String>>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub unknown_token_id: Option<u32>,
    pub padding_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (llama.cpp's default: true for `"llama"`, false for `"gpt2"`).
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`: prepend `▁` to the text (SentencePiece; default true).
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

impl GgufVocab {
    /// Reads the `tokenizer.*` keys of `metadata`.
    ///
    /// # Errors
    /// A missing `tokenizer.ggml.model` or `tokenizer.ggml.tokens`, or a key of the wrong type
    /// (the message names the file and the key).
    pub fn from_metadata(metadata: &GgufMetadata) -> Result<GgufVocab> {
        if metadata.get("tokenizer.ggml.model").is_some() && metadata.get_str("tokenizer.ggml.model")? == "none" {
            return Err(Error::Input(
                "tokenizer.ggml.model is \"none\": the file has no vocabulary (gguf::load_causal_lm reads its \
                 model alone)"
                    .into(),
            ));
        }
        let opt = |key: &str| metadata.get(key).is_some();
        let id = |key: &str| -> Result<Option<u32>> {
            if !opt(key) {
                return Ok(None);
            }
            let v = metadata.get_uint(key)?;
            Ok(Some(u32::try_from(v).map_err(|_| Error::Input(format!("{key} = {v} is not a token id")))?))
        };
        let flag = |key: &str| -> Result<Option<bool>> {
            opt(key).then(|| metadata.get_bool(key)).transpose().map_err(Into::into)
        };
        let strings = |key: &str| -> Result<Option<Vec<String>>> {
            Ok(if opt(key) { Some(metadata.get_str_array(key)?.into_iter().map(String::from).collect()) } else { None })
        };
        Ok(GgufVocab {
            model: metadata.get_str("tokenizer.ggml.model")?.to_string(),
            pre: opt("tokenizer.ggml.pre")
                .then(|| metadata.get_str("tokenizer.ggml.pre"))
                .transpose()?
                .map(String::from),
            tokens: strings("tokenizer.ggml.tokens")?
                .ok_or_else(|| Error::Input("no metadata key 'tokenizer.ggml.tokens'".into()))?,
            scores: opt("tokenizer.ggml.scores")
                .then(|| metadata.get_f32_array("tokenizer.ggml.scores"))
                .transpose()?,
            token_types: opt("tokenizer.ggml.token_type")
                .then(|| metadata.get_i32_array("tokenizer.ggml.token_type"))
                .transpose()?,
            merges: strings("tokenizer.ggml.merges")?,
            bos_token_id: id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: id("tokenizer.ggml.eos_token_id")?,
            unknown_token_id: id("tokenizer.ggml.unknown_token_id")?,
            padding_token_id: id("tokenizer.ggml.padding_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token")?,
            add_eos: flag("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?,
            chat_template: opt("tokenizer.chat_template")
                .then(|| metadata.get_str("tokenizer.chat_template"))
                .transpose()?
                .map(String::from),
        })
    }

    /// The tokenizer, with the special tokens, BOS/EOS flags and chat template as its
    /// [`Tokenizer::config`]; `path` names the GGUF file in errors.
    ///
    /// # Errors
    /// A model other than `gpt2` / `llama`, an unknown pre-tokenizer, lists of different
    /// lengths, an id outside the vocabulary or a malformed merge (each named).
    ///
    /// ```
    /// use deltaw_transformer::gguf::GgufVocab;
    /// let tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "ab", "▁ab"].map(String::from).to_vec();
    /// let vocab = GgufVocab {
    ///     model: "llama".into(),
    ///     scores: Some(vec![0.0, 0.0, 0.0, -5.0, -6.0, -7.0, -1.0, -2.0]),
    ///     token_types: Some(vec![2, 3, 3, 1, 1, 1, 1, 1]),
    ///     tokens, bos_token_id: Some(1), eos_token_id: Some(2), unknown_token_id: Some(0),
    ///     ..Default::default()
    /// };
    /// let tokenizer = vocab.tokenizer("tiny.gguf")?;
    /// assert_eq!(tokenizer.encode("ab")?, vec![1, 7]); // BOS, then "▁ab"
    /// assert_eq!(tokenizer.decode(&[1, 7, 4])?, "aba");
    /// # Ok::<(), deltaw_transformer::Error>(())
    /// ```
    pub fn tokenizer(&self, path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let json = self.tokenizer_json().map_err(|message| Error::Config { path: path.to_path_buf(), message })?;
        let inner: tokenizers::Tokenizer = serde_json::from_value(json)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("tokenizer metadata: {e}") })?;
        Ok(Tokenizer::from_parts(inner, PathBuf::from(path), self.config()))
    }

    /// The special tokens (as text), BOS/EOS flags and chat template, as a folder's
    /// `tokenizer_config.json` would give them.
    pub fn config(&self) -> TokenizerConfig {
        let text = |id: Option<u32>| id.and_then(|i| self.tokens.get(i as usize)).cloned();
        let default_bos = self.model == "llama";
        TokenizerConfig {
            bos_token: text(self.bos_token_id),
            eos_token: text(self.eos_token_id),
            pad_token: text(self.padding_token_id),
            unk_token: text(self.unknown_token_id),
            add_bos_token: Some(self.add_bos.unwrap_or(default_bos) && self.bos_token_id.is_some()),
            add_eos_token: Some(self.add_eos.unwrap_or(false) && self.eos_token_id.is_some()),
            chat_template: self.chat_template.clone(),
            chat_template_path: self.chat_template.as_ref().map(|_| PathBuf::from("tokenizer.chat_template")),
        }
    }

    /// The `tokenizer.json` equivalent of the metadata.
    fn tokenizer_json(&self) -> std::result::Result<Value, String> {
        let n = self.tokens.len();
        let types = match &self.token_types {
            Some(t) if t.len() != n => {
                return Err(format!("tokenizer.ggml.token_type has {} entries for {n} tokens", t.len()))
            }
            Some(t) => t.clone(),
            None => vec![NORMAL; n],
        };
        for (key, id) in [
            ("bos", self.bos_token_id),
            ("eos", self.eos_token_id),
            ("unknown", self.unknown_token_id),
            ("padding", self.padding_token_id),
        ] {
            if let Some(id) = id.filter(|&i| i as usize >= n) {
                return Err(format!("tokenizer.ggml.{key}_token_id {id} is outside the {n} tokens"));
            }
        }
        let vocab: Map<String, Value> = self.tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
        // Control tokens are special added tokens (skipped when decoding, never split);
        // user-defined ones are added tokens that decode as text.
        let added: Vec<Value> = types
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == CONTROL || t == USER_DEFINED || t == UNKNOWN)
            .map(|(i, &t)| {
                json!({"id": i, "content": self.tokens[i], "single_word": false, "lstrip": false, "rstrip": false,
                       "normalized": false, "special": t != USER_DEFINED})
            })
            .collect();
        let (model, pre_tokenizer, decoder) = match self.model.as_str() {
            "gpt2" => self.byte_level_parts(vocab)?,
            "llama" => self.sentencepiece_parts(vocab, &types)?,
            other => return Err(format!("tokenizer.ggml.model \"{other}\" is not supported (supported: gpt2, llama)")),
        };
        Ok(json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
                  "pre_tokenizer": pre_tokenizer, "post_processor": null, "decoder": decoder, "model": model}))
    }

    /// The model, pre-tokenizer and decoder of a byte-level BPE (`"gpt2"`): its merges as given.
    fn byte_level_parts(&self, vocab: Map<String, Value>) -> std::result::Result<(Value, Value, Value), String> {
        let merges = self.merges.as_ref().ok_or("tokenizer.ggml.model \"gpt2\" needs tokenizer.ggml.merges")?;
        let pairs = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| json!([a, b]))
                    .ok_or_else(|| format!("tokenizer.ggml.merges[{i}] = {m:?} is not two tokens"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let model = json!({"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": pairs});
        let decoder = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
        Ok((model, self.byte_level_pre()?, decoder))
    }

    /// The model, pre-tokenizer and decoder of a SentencePiece vocabulary (`"llama"`): a BPE
    /// with byte fallback whose merges come from the scores when the file has none.
    fn sentencepiece_parts(
        &self,
        vocab: Map<String, Value>,
        types: &[i32],
    ) -> std::result::Result<(Value, Value, Value), String> {
        let n = self.tokens.len();
        let scores = self.scores.as_ref().ok_or("tokenizer.ggml.model \"llama\" needs tokenizer.ggml.scores")?;
        if scores.len() != n {
            return Err(format!("tokenizer.ggml.scores has {} entries for {n} tokens", scores.len()));
        }
        let merges: Vec<Value> = match &self.merges {
            Some(m) => m.iter().filter_map(|m| m.split_once(' ')).map(|(a, b)| json!([a, b])).collect(),
            None => sentencepiece_merges(&self.tokens, scores, types),
        };
        let unk = self.unknown_token_id.map(|i| self.tokens[i as usize].clone());
        let model = json!({"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges});
        let prefix = self.add_space_prefix.unwrap_or(true);
        let scheme = if prefix { "first" } else { "never" };
        let pre = json!({"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": false});
        let mut decoders = vec![
            json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}),
            json!({"type": "ByteFallback"}),
            json!({"type": "Fuse"}),
        ];
        if prefix {
            decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
        }
        Ok((model, pre, json!({"type": "Sequence", "decoders": decoders})))
    }

    /// The pre-tokenizer of a byte-level vocabulary, by `tokenizer.ggml.pre`.
    fn byte_level_pre(&self) -> std::result::Result<Value, String> {
        let split = |pattern: &str| {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})
        };
        match self.pre.as_deref().unwrap_or("default") {
            "default" | "gpt-2" | "gpt2" => {
                Ok(json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}))
            }
            "llama-bpe" | "llama3" | "smaug-bpe" => Ok(split(LLAMA3_SPLIT)),
            "qwen2" => Ok(split(QWEN2_SPLIT)),
            other => Err(format!(
                "tokenizer.ggml.pre \"{other}\" is not supported (supported: default, gpt-2, llama-bpe, qwen2)"
            )),
        }
    }
}

/// SentencePiece's merges as a BPE merge list: every cut of a normal piece into two normal
/// pieces, the pairs ordered by the whole piece's score (best first), ties by the order of the
/// pieces and then of the halves' ids. Control, byte and unknown tokens are never the result
/// of a merge (they come from the text as added tokens or from byte fallback).
fn sentencepiece_merges(tokens: &[String], scores: &[f32], types: &[i32]) -> Vec<Value> {
    let normal: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| types[*i] == NORMAL || types[*i] == USER_DEFINED)
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if types[id] != NORMAL {
            continue;
        }
        let mut local = Vec::new();
        for (cut, _) in piece.char_indices().skip(1) {
            if let (Some(&l), Some(&r)) = (normal.get(&piece[..cut]), normal.get(&piece[cut..])) {
                local.push((scores[id], id, l, r));
            }
        }
        local.sort_by_key(|&(_, _, l, r)| (l, r));
        merges.extend(local);
    }
    // Stable: equal scores keep piece order, then the halves' order.
    merges.sort_by(|a, b| b.0.total_cmp(&a.0));
    merges.into_iter().map(|(_, _, l, r)| json!([tokens[l], tokens[r]])).collect()
}
