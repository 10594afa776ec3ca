//! Sentence embeddings from a sentence-transformers (or plain BERT) folder, end to end: text →
//! `tokenizer.json` → BERT → pooling → optional L2, in batches.
//!
//! A sentence-transformers folder lists its modules in `modules.json`: the `Transformer`
//! module's files sit in the folder itself (`"path": ""`) or a subfolder (`0_BERT` in older
//! models), beside `sentence_bert_config.json` and its `max_seq_length`; `Pooling` and
//! `Normalize` follow (see [`PoolingConfig::from_dir`]).

use crate::bert::Bert;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::pooling::{find_module, pool, read_modules, PoolingConfig};
use crate::tokenizer::Tokenizer;
use deltaw_autograd::no_grad;
use deltaw_tensor::{Device, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// sentence-transformers' default `max_seq_length` when a folder does not set one.
pub const DEFAULT_MAX_SEQ_LENGTH: usize = 256;

/// A BERT encoder with its tokenizer and pooling, ready to embed texts.
pub struct SentenceEmbedder {
    pub model: Bert,
    pub tokenizer: Tokenizer,
    pub pooling: PoolingConfig,
    /// Texts are truncated to this many tokens, special tokens included: the smaller of
    /// `max_position_embeddings` and `max_seq_length` (else [`DEFAULT_MAX_SEQ_LENGTH`]).
    pub max_length: usize,
    /// Texts per forward pass (sentence-transformers' default, 32).
    pub batch_size: usize,
    /// The id written into padded slots (config's `pad_token_id`, else 0); masked anyway.
    pub pad_id: i32,
}

impl SentenceEmbedder {
    /// Loads the model, `tokenizer.json`, pooling and `max_seq_length` from `dir`.
    ///
    /// # Errors
    /// A missing or malformed file, a model that is not BERT, a checkpoint that does not fit,
    /// a pooling mode deltaw does not implement, or a tokenizer larger than the model's
    /// vocabulary; the message names the file.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<SentenceEmbedder> {
        let dir = dir.as_ref();
        let model_dir = transformer_dir(dir)?;
        let model = Bert::from_dir(&model_dir, device)?;
        let tokenizer = Tokenizer::from_dir(&model_dir)?;
        tokenizer.check_vocab(model.config.vocab_size)?;
        let pooling = PoolingConfig::from_dir(dir)?;
        let max_seq = max_seq_length(&model_dir)?.unwrap_or(DEFAULT_MAX_SEQ_LENGTH);
        let max_length = max_seq.min(model.config.max_position_embeddings);
        let pad_id = model.config.raw.get("pad_token_id").and_then(Value::as_i64).unwrap_or(0) as i32;
        Ok(SentenceEmbedder { model, tokenizer, pooling, max_length, batch_size: 32, pad_id })
    }

    /// The width of one embedding: the hidden size times the number of pooling modes.
    pub fn dim(&self) -> usize {
        self.model.config.hidden_size * self.pooling.modes.len()
    }

    /// Embeds `texts` in batches of `batch_size`; returns `(N, dim)` (`(0, dim)` for none).
    ///
    /// # Errors
    /// When the tokenizer fails on a text.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor> {
        let dev = self.model.device();
        let mut parts = Vec::new();
        for chunk in texts.chunks(self.batch_size.max(1)) {
            let batch = self.tokenizer.encode_batch(chunk, self.max_length, self.pad_id, &dev)?;
            let mask = &batch.attention_mask;
            let hidden = no_grad(|| {
                self.model.forward(&batch.input_ids, Some(&batch.token_type_ids), Some(mask)).last_hidden_state.value()
            }); // (B, T, C)
            parts.push(pool(&hidden, mask, &self.pooling));
        }
        if parts.is_empty() {
            return Ok(Tensor::zeros((0, self.dim()), &dev));
        }
        Ok(Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0))
    }
}

/// Where the `Transformer` module's files are: `modules.json`'s path for it, else `dir`.
fn transformer_dir(dir: &Path) -> Result<PathBuf> {
    let modules = read_modules(dir)?;
    let sub = modules.as_deref().and_then(|m| find_module(m, "Transformer")).map_or("", |m| m.path.as_str());
    Ok(if sub.is_empty() { dir.to_path_buf() } else { dir.join(sub) })
}

/// `max_seq_length` of `dir/sentence_bert_config.json`, when the file exists.
fn max_seq_length(dir: &Path) -> Result<Option<usize>> {
    let path = dir.join("sentence_bert_config.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
    match value.get("max_seq_length") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n as usize)),
            _ => Err(Error::Config { path, message: format!("max_seq_length {v} is not a positive integer") }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mean_pool_normalize;

    fn tiny_bert() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny_bert")
    }

    #[test]
    fn embedder_batches_like_one_pass_with_the_default_pooling() {
        let mut embedder = SentenceEmbedder::from_dir(tiny_bert(), &Device::Cpu).unwrap();
        assert_eq!((embedder.max_length, embedder.pooling.clone()), (64, PoolingConfig::default()));
        let texts = ["the cat sat", "a dog", "the dog sat on the mat", "cat"];
        embedder.batch_size = 3; // two batches of different padded lengths
        let batched = embedder.embed(&texts).unwrap();
        assert_eq!(batched.dims(), &[4, 32]);
        let batch = embedder.tokenizer.encode_batch(&texts, 64, 0, &Device::Cpu).unwrap();
        let m = &batch.attention_mask;
        let hidden = embedder.model.forward(&batch.input_ids, Some(&batch.token_type_ids), Some(m)).last_hidden_state;
        let one_pass = mean_pool_normalize(&hidden.value(), m).to_vec();
        let worst = batched.to_vec().iter().zip(&one_pass).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "batched vs one pass: max abs diff {worst}");
        assert_eq!(embedder.embed(&[]).unwrap().dims(), &[0, 32]);
    }
}
