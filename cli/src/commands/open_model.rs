//! Opening a causal LM for `generate` and `chat` from either kind of `--model` path: a
//! Hugging Face folder or one GGUF file (llama.cpp's format), which carries its tokenizer,
//! special ids and chat template in its metadata.

use super::check_model_dir;
use anyhow::{bail, Result};
use deltaw_tensor::Device;
use deltaw_transformer::gguf::GgufModel;
use deltaw_transformer::{load_causal_lm_with, CausalLm, ChatTemplate, GenerationConfig, Tokenizer, WeightDtype};
use std::path::Path;

/// A causal LM with what generation needs beside the weights.
pub struct OpenedLm {
    pub model: Box<dyn CausalLm>,
    pub tokenizer: Tokenizer,
    /// EOS / BOS / pad ids (`generation_config.json`, or the GGUF's `tokenizer.ggml.*_id`).
    pub generation: GenerationConfig,
    /// The model's own chat template, `None` when it has none.
    pub template: Option<ChatTemplate>,
}

/// True when `path` is a GGUF file: a file named `*.gguf` or starting with the magic `GGUF`.
pub fn is_gguf(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && &magic == b"GGUF"
}

/// Opens `path`, a model folder or a `.gguf` file, with weights held as stored (f16/bf16 kept,
/// frozen), checking that the tokenizer fits the model's vocabulary.
///
/// # Errors
/// A path that is neither, and whatever the loaders refuse (the message names the file).
pub fn open_causal_lm(path: &Path, device: &Device) -> Result<OpenedLm> {
    if is_gguf(path) {
        let lm = GgufModel::load(path, device, WeightDtype::Stored)?;
        let config = lm.tokenizer.config();
        let template = match &config.chat_template {
            Some(source) => {
                Some(ChatTemplate::new(format!("{} (tokenizer.chat_template)", path.display()), source, config)?)
            }
            None => None,
        };
        return Ok(OpenedLm { model: lm.model, tokenizer: lm.tokenizer, generation: lm.generation, template });
    }
    if path.is_file() {
        bail!("{} is a file but not a GGUF model (--model takes a model folder or a .gguf file)", path.display());
    }
    check_model_dir(path)?;
    let model = load_causal_lm_with(path, device, WeightDtype::Stored)?;
    let tokenizer = Tokenizer::from_dir(path)?;
    tokenizer.check_vocab(model.vocab_size())?;
    let generation = GenerationConfig::from_dir(path)?;
    let template = ChatTemplate::from_dir(path)?;
    Ok(OpenedLm { model, tokenizer, generation, template })
}
