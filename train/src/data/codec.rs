//! Text ↔ token ids for training: a Hugging Face `tokenizer.json`, or raw UTF-8 bytes for
//! models pretrained from scratch without a tokenizer.

use crate::error::{Error, Result};
use deltaw_transformer::Tokenizer;
use std::path::Path;

/// What the SFT pipeline needs from a tokenizer. Object-safe, so datasets and the trainer take
/// `&dyn TextCodec` and never become generic over it.
pub trait TextCodec: Send + Sync {
    /// The ids of `text` with no special tokens added: the template decides what surrounds it.
    fn encode(&self, text: &str) -> Result<Vec<i32>>;
    /// The text of `ids`; special tokens (EOS) are left out.
    fn decode(&self, ids: &[i32]) -> Result<String>;
    /// The end-of-sequence id appended after every assistant turn.
    fn eos_id(&self) -> i32;
    /// The number of ids the model's embedding must hold.
    fn vocab_size(&self) -> usize;
}

/// A Hugging Face tokenizer plus the EOS id of its model.
pub struct HfCodec {
    pub tokenizer: Tokenizer,
    pub eos_id: i32,
}

impl HfCodec {
    /// Loads `model_dir/tokenizer.json`. The EOS id is `eos_token_id` from `config.json`
    /// (the first one when it is a list, as Llama 3 writes it), else the id of the token
    /// `<|endoftext|>` (GPT-2's), else an error: training without an EOS would teach the
    /// model never to stop.
    pub fn from_dir(model_dir: impl AsRef<Path>) -> Result<HfCodec> {
        let dir = model_dir.as_ref();
        let tokenizer = Tokenizer::from_dir(dir)?;
        if let Some(eos_id) = eos_from_config(&dir.join("config.json"))? {
            return Ok(HfCodec { tokenizer, eos_id });
        }
        match tokenizer.encode_plain("<|endoftext|>")?.as_slice() {
            &[eos_id] => Ok(HfCodec { tokenizer, eos_id }),
            _ => Err(Error::Config {
                path: dir.to_path_buf(),
                message: "no end-of-sequence token: config.json has no eos_token_id and the tokenizer has no \
                          <|endoftext|> token"
                    .into(),
            }),
        }
    }
}

/// `eos_token_id` from a `config.json`, if the file exists and has one.
fn eos_from_config(path: &Path) -> Result<Option<i32>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Json { path: path.to_path_buf(), message: e.to_string() })?;
    let value = match &config["eos_token_id"] {
        serde_json::Value::Array(ids) => ids.first().cloned().unwrap_or_default(),
        other => other.clone(),
    };
    let Some(id) = value.as_i64() else { return Ok(None) };
    let id = i32::try_from(id).ok().filter(|&id| id >= 0);
    let message = format!("eos_token_id {value} is not a token id (0 to {})", i32::MAX);
    id.map(Some).ok_or(Error::Config { path: path.to_path_buf(), message })
}

impl HfCodec {
    /// Checks that every id this codec produces, EOS included, indexes a model embedding of
    /// `model_vocab_size` rows (an id past it would fail inside the embedding lookup).
    ///
    /// # Errors
    /// A tokenizer with more tokens than the model, or an EOS id outside the model's
    /// vocabulary; the message names the file and both numbers.
    pub fn check_vocab(&self, model_vocab_size: usize) -> Result<()> {
        self.tokenizer.check_vocab(model_vocab_size)?;
        if usize::try_from(self.eos_id).map_or(true, |id| id >= model_vocab_size) {
            let message = format!(
                "eos_token_id {} is outside the model's vocab_size of {model_vocab_size} (config.json)",
                self.eos_id
            );
            return Err(Error::Config { path: self.tokenizer.path().to_path_buf(), message });
        }
        Ok(())
    }
}

impl TextCodec for HfCodec {
    fn encode(&self, text: &str) -> Result<Vec<i32>> {
        Ok(self.tokenizer.encode_plain(text)?)
    }

    fn decode(&self, ids: &[i32]) -> Result<String> {
        Ok(self.tokenizer.decode(ids)?)
    }

    fn eos_id(&self) -> i32 {
        self.eos_id
    }

    fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }
}

/// UTF-8 bytes as tokens: ids 0..=255 are the bytes, 256 is EOS, 257 ids in all. Needs no
/// files, encodes any text, and keeps a from-scratch model's embedding tiny.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByteCodec;

impl ByteCodec {
    pub const EOS_ID: i32 = 256;
}

impl TextCodec for ByteCodec {
    fn encode(&self, text: &str) -> Result<Vec<i32>> {
        Ok(text.bytes().map(i32::from).collect())
    }

    /// Lossy: a byte sequence cut inside a character (one token of a multi-byte character)
    /// decodes to U+FFFD rather than failing, so any slice of ids can be shown.
    fn decode(&self, ids: &[i32]) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len());
        for &id in ids {
            match u8::try_from(id) {
                Ok(byte) => bytes.push(byte),
                Err(_) if id == Self::EOS_ID => {}
                Err(_) => return Err(Error::TokenId { id, vocab_size: self.vocab_size() }),
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn eos_id(&self) -> i32 {
        Self::EOS_ID
    }

    fn vocab_size(&self) -> usize {
        257
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_codec_round_trips_utf8_and_skips_eos() {
        let ids = ByteCodec.encode("é\n").unwrap();
        assert_eq!(ids, vec![0xc3, 0xa9, 10]);
        let mut with_eos = ids.clone();
        with_eos.push(ByteCodec::EOS_ID);
        assert_eq!(ByteCodec.decode(&with_eos).unwrap(), "é\n");
        assert_eq!(ByteCodec.decode(&ids[..1]).unwrap(), "\u{fffd}");
    }

    #[test]
    fn byte_codec_refuses_ids_outside_its_vocabulary() {
        let err = ByteCodec.decode(&[65, 300]).unwrap_err().to_string();
        assert!(err.contains("300") && err.contains("257"), "{err}");
    }
}
