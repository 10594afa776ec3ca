//! Tokenization from a Hugging Face `tokenizer.json`, via the `tokenizers` crate, into the
//! i32 tensors the models take: ids, attention masks and token types, padded for a batch.
//! Both kinds of LLM tokenizer load here: byte-level BPE (GPT-2, Llama 3, Qwen) and
//! SentencePiece-style BPE with metaspace and byte fallback (Llama 2, Mistral).
//! [`StreamDecoder`] turns ids into text as they are generated.

use crate::error::{Error, Result};
use crate::tokenizer_config::TokenizerConfig;
use deltaw_tensor::{Device, Tensor};
use std::path::{Path, PathBuf};

/// A batch ready for a model: `(B, T)` i32 tensors, right-padded with the pad id.
#[derive(Clone, Debug)]
pub struct Encoding {
    pub input_ids: Tensor,
    /// 1 for tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// 0 for the first segment, 1 for a second one (BERT pairs).
    pub token_type_ids: Tensor,
}

/// A `tokenizer.json` tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    /// The folder's `tokenizer_config.json` (default without one).
    config: TokenizerConfig,
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` with the special tokens of `dir/tokenizer_config.json`
    /// (and `chat_template.jinja`) when present.
    ///
    /// # Errors
    /// When `tokenizer.json` is missing or not a valid tokenizer, or the config is invalid;
    /// the message names the file.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Tokenizer> {
        let mut tokenizer = Tokenizer::from_file(dir.as_ref().join("tokenizer.json"))?;
        tokenizer.config = TokenizerConfig::from_dir(dir)?;
        Ok(tokenizer)
    }

    /// A tokenizer built in code (from a GGUF file's metadata); `path` names its file in errors.
    pub(crate) fn from_parts(inner: tokenizers::Tokenizer, path: PathBuf, config: TokenizerConfig) -> Tokenizer {
        Tokenizer { inner, path, config }
    }

    /// Loads a `tokenizer.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
            return Err(Error::Io { path, source });
        }
        // The tokenizers crate panics on some malformed files (an `expect` in its decoder
        // deserialiser, found by `tests/fuzz_loaders.rs`): a bad file is an error here, not a
        // crash, so its parser runs behind `catch_unwind` (it holds no state of ours).
        let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_file(&path)).map_err(|panic| {
            let what =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            let message =
                format!("not a valid tokenizer (the tokenizers library panicked: {})", what.unwrap_or_default());
            Error::Config { path: path.clone(), message }
        })?;
        let inner = parsed.map_err(|e| Error::Config { path: path.clone(), message: e.to_string() })?;
        Ok(Tokenizer { inner, path, config: TokenizerConfig::default() })
    }

    /// The ids of `text` with the special tokens the tokenizer adds (BERT's `[CLS]` … `[SEP]`,
    /// Llama's BOS), as transformers' `tokenizer.encode(text)`: `tokenizer.json`'s
    /// post-processor decides. A `tokenizer.json` without a post-processor gets the BOS / EOS
    /// that `tokenizer_config.json`'s `add_bos_token` / `add_eos_token` ask for.
    pub fn encode(&self, text: &str) -> Result<Vec<i32>> {
        if self.inner.get_post_processor().is_some() {
            let enc = self.inner.encode(text, true).map_err(|e| self.error(e))?;
            return Ok(enc.get_ids().iter().map(|&id| id as i32).collect());
        }
        let flag = |f: Option<bool>, token: &Option<String>| -> Result<Option<i32>> {
            match (f, token) {
                (Some(true), Some(t)) => self.token_id(t).map(Some),
                _ => Ok(None),
            }
        };
        let bos = flag(self.config.add_bos_token, &self.config.bos_token)?;
        let eos = flag(self.config.add_eos_token, &self.config.eos_token)?;
        Ok(bos.into_iter().chain(self.encode_plain(text)?).chain(eos).collect())
    }

    /// The id of a token written as text (`"<|eot_id|>"`).
    ///
    /// # Errors
    /// [`Error::Config`] naming the tokenizer file when it has no such token.
    pub fn token_id(&self, token: &str) -> Result<i32> {
        self.inner.token_to_id(token).map(|id| id as i32).ok_or_else(|| Error::Config {
            path: self.path.clone(),
            message: format!("no token {token:?} in the vocabulary (named by tokenizer_config.json)"),
        })
    }

    /// The folder's special tokens, `add_bos_token` and chat template.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// Encodes `texts`, truncates each to `max_len` tokens (keeping the final special token
    /// logic of the tokenizer's own truncation), and right-pads to the longest with `pad_id`,
    /// as sentence-transformers does for embedding.
    pub fn encode_batch(&self, texts: &[&str], max_len: usize, pad_id: i32, device: &Device) -> Result<Encoding> {
        let mut inner = self.inner.clone();
        let truncation = tokenizers::TruncationParams { max_length: max_len, ..Default::default() };
        inner.with_truncation(Some(truncation)).map_err(|e| self.error(e))?;
        inner.with_padding(None);
        let encs = inner.encode_batch(texts.to_vec(), true).map_err(|e| self.error(e))?;
        let t = encs.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let (mut ids, mut mask, mut types) = (Vec::new(), Vec::new(), Vec::new());
        for e in &encs {
            let n = e.get_ids().len();
            ids.extend(e.get_ids().iter().map(|&x| x as i32).chain(std::iter::repeat_n(pad_id, t - n)));
            mask.extend(std::iter::repeat_n(1i32, n).chain(std::iter::repeat_n(0, t - n)));
            types.extend(e.get_type_ids().iter().map(|&x| x as i32).chain(std::iter::repeat_n(0, t - n)));
        }
        let shape = (encs.len(), t);
        Ok(Encoding {
            input_ids: Tensor::from_vec(ids, shape, device)?,
            attention_mask: Tensor::from_vec(mask, shape, device)?,
            token_type_ids: Tensor::from_vec(types, shape, device)?,
        })
    }

    /// The text of `ids`, skipping special tokens.
    pub fn decode(&self, ids: &[i32]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.inner.decode(&ids, true).map_err(|e| self.error(e))
    }

    /// The text of `ids` with the special tokens written out (`<|im_start|>`), as
    /// `decode(ids, skip_special_tokens=False)`: a chat template's render, back from its ids.
    pub fn decode_with_special(&self, ids: &[i32]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.inner.decode(&ids, false).map_err(|e| self.error(e))
    }

    /// Size of the vocabulary, added tokens included (check it against the model's).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn error(&self, e: tokenizers::Error) -> Error {
        Error::Config { path: self.path.clone(), message: e.to_string() }
    }

    /// [`encode_plain`](Self::encode_plain) with the byte offset in `text` where each token
    /// starts, for finding which tokens a span of the text covers.
    pub fn encode_plain_with_offsets(&self, text: &str) -> Result<Vec<(i32, usize)>> {
        let enc = self.inner.encode(text, false).map_err(|e| self.error(e))?;
        Ok(enc.get_ids().iter().zip(enc.get_offsets()).map(|(&id, &(start, _))| (id as i32, start)).collect())
    }

    /// The ids of `text` without the special tokens the tokenizer would add (no `[CLS]`/`[SEP]`,
    /// no BOS), as `tokenizer.encode(text, add_special_tokens=False)`: for building sequences
    /// piece by piece, as SFT templates do. Added tokens written in the text (`<|endoftext|>`)
    /// are still recognised.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<i32>> {
        let enc = self.inner.encode(text, false).map_err(|e| self.error(e))?;
        Ok(enc.get_ids().iter().map(|&id| id as i32).collect())
    }
}

impl Tokenizer {
    /// Checks that every id this tokenizer can produce indexes the model's embedding table:
    /// a tokenizer from another model (GPT-2's 50,257 tokens with a 120-token model) would
    /// otherwise index outside it.
    ///
    /// # Errors
    /// [`Error::Input`] naming the tokenizer file and both sizes, when the tokenizer's
    /// vocabulary (added tokens included) is larger than `model_vocab_size`.
    pub fn check_vocab(&self, model_vocab_size: usize) -> Result<()> {
        let n = self.vocab_size();
        if n > model_vocab_size {
            return Err(Error::Input(format!(
                "{}: the tokenizer has {n} tokens, more than the model's vocab_size of {model_vocab_size} \
                 (config.json): is it the tokenizer of another model?",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// The file this tokenizer was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Text of generated ids as they arrive, for streaming: each [`push`](StreamDecoder::push)
/// decodes the whole generated suffix and returns what is new since the last call.
///
/// Decoding the suffix rather than each id alone keeps what a token means in context (the
/// metaspace decoder drops only the first word's space; byte tokens join into characters).
/// While the text ends in U+FFFD, a character whose bytes have not all arrived (half of a
/// UTF-8 sequence of byte-level BPE, or of `<0xE6><0x97>` byte fallback), nothing is returned;
/// the bytes come out whole with the id that completes them.
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<i32>,
    /// Bytes of the decoded text already returned.
    emitted: usize,
}

impl<'a> StreamDecoder<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> StreamDecoder<'a> {
        StreamDecoder { tokenizer, ids: Vec::new(), emitted: 0 }
    }

    /// Adds one generated id; returns the new text (empty while a character is incomplete).
    pub fn push(&mut self, id: i32) -> Result<String> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        Ok(self.take_new(&text))
    }

    /// Whatever is left, incomplete characters included (as U+FFFD): call once at the end.
    pub fn finish(&mut self) -> Result<String> {
        let text = self.tokenizer.decode(&self.ids)?;
        Ok(self.take_new(&text))
    }

    /// The text of every id pushed so far.
    pub fn text(&self) -> Result<String> {
        self.tokenizer.decode(&self.ids)
    }

    fn take_new(&mut self, text: &str) -> String {
        // The returned prefix does not change as ids arrive; if a decoder ever rewrote it,
        // return from the first character boundary past what was already returned.
        let mut start = self.emitted.min(text.len());
        while !text.is_char_boundary(start) {
            start += 1;
        }
        self.emitted = text.len().max(self.emitted);
        text[start..].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_vocab_names_the_file_and_both_sizes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny_gpt2");
        let tokenizer = Tokenizer::from_dir(&dir).unwrap();
        assert!(tokenizer.check_vocab(120).is_ok());
        let err = tokenizer.check_vocab(50).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json") && err.contains("120 tokens") && err.contains("of 50"), "{err}");
    }
}
