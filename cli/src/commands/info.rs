//! `deltaw info`: what a model folder holds, read from its `config.json` and the header of its
//! `model.safetensors` (the weights themselves are not loaded, so this is quick on any size).

use super::check_model_dir;
use anyhow::{bail, Context, Result};
use clap::Args;
use deltaw_transformer::{BertConfig, Gpt2Config, ModelType, Tokenizer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Checkpoint entries that are buffers, not parameters (causal masks, BERT's position ids).
const BUFFERS: [&str; 3] = [".attn.bias", ".attn.masked_bias", "embeddings.position_ids"];

/// A header larger than this is refused rather than read (real ones are a few hundred KiB).
const MAX_HEADER_BYTES: u64 = 100 << 20;

#[derive(Args)]
pub struct InfoArgs {
    /// A Hugging Face folder with config.json and model.safetensors (gpt2 or bert).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One tensor's entry in a safetensors header.
struct Entry {
    dtype: String,
    numel: u64,
}

pub fn run(args: &InfoArgs, out: &mut dyn Write) -> Result<()> {
    let dir = &args.model;
    check_model_dir(dir)?;
    let model_type = ModelType::from_dir(dir)?;
    let (config, summary) = match model_type {
        ModelType::Gpt2 => {
            let c = Gpt2Config::from_dir(dir)?;
            let text = format!(
                "vocab_size {}, n_positions {}, n_embd {}, n_layer {}, n_head {}, MLP {}, {}",
                c.vocab_size,
                c.n_positions,
                c.n_embd,
                c.n_layer,
                c.n_head,
                c.inner(),
                c.activation_function
            );
            (c.to_json(), text)
        }
        ModelType::Bert => {
            let c = BertConfig::from_dir(dir)?;
            let text = format!(
                "vocab_size {}, hidden_size {}, num_hidden_layers {}, num_attention_heads {}, intermediate_size {}, \
                 max_position_embeddings {}, {}",
                c.vocab_size,
                c.hidden_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.intermediate_size,
                c.max_position_embeddings,
                c.hidden_act
            );
            (c.to_json(), text)
        }
    };
    let weights = dir.join("model.safetensors");
    let entries = read_header(&weights)?;
    let file_bytes = std::fs::metadata(&weights).with_context(|| weights.display().to_string())?.len();
    let is_buffer = |name: &str| BUFFERS.iter().any(|b| name.ends_with(b));
    let parameters: u64 = entries.iter().filter(|(n, _)| !is_buffer(n)).map(|(_, e)| e.numel).sum();
    let mut dtypes: BTreeMap<&str, usize> = BTreeMap::new();
    for e in entries.values() {
        *dtypes.entry(e.dtype.as_str()).or_default() += 1;
    }
    let tokenizer = Tokenizer::from_dir(dir).ok().map(|t| t.vocab_size());
    if args.json {
        let value = json!({
            "model_type": model_type.as_str(),
            "dir": dir.display().to_string(),
            "config": config,
            "parameters": parameters,
            "tensors": entries.len(),
            "dtypes": dtypes,
            "file_bytes": file_bytes,
            "tokenizer_vocab_size": tokenizer,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let dtype_text: Vec<String> = dtypes.iter().map(|(d, n)| format!("{d} ({n} tensors)")).collect();
    writeln!(out, "model type   {} ({})", model_type.as_str(), dir.display())?;
    writeln!(out, "config       {summary}")?;
    writeln!(
        out,
        "parameters   {} ({:.2} M) in {} tensors",
        grouped(parameters),
        parameters as f64 / 1e6,
        entries.len()
    )?;
    writeln!(out, "dtypes       {}", dtype_text.join(", "))?;
    writeln!(
        out,
        "file         model.safetensors, {} bytes ({:.1} MiB)",
        grouped(file_bytes),
        file_bytes as f64 / 1048576.0
    )?;
    match tokenizer {
        Some(n) => writeln!(out, "tokenizer    tokenizer.json, {} tokens", grouped(n as u64))?,
        None => writeln!(out, "tokenizer    none (no readable tokenizer.json)")?,
    }
    Ok(())
}

/// Reads only the header of a safetensors file: an 8-byte little-endian length, then that
/// many bytes of JSON mapping each tensor name to `{dtype, shape, data_offsets}`.
fn read_header(path: &Path) -> Result<BTreeMap<String, Entry>> {
    let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let file_len = file.metadata().with_context(|| format!("{}", path.display()))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).with_context(|| format!("{}: shorter than a safetensors header", path.display()))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > file_len.saturating_sub(8) {
        bail!("{}: header length {n} is larger than the file ({file_len} bytes) or {MAX_HEADER_BYTES}", path.display());
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).with_context(|| format!("{}: reading the header", path.display()))?;
    let json: BTreeMap<String, Value> = serde_json::from_slice(&header)
        .with_context(|| format!("{}: the header is not a JSON object", path.display()))?;
    let mut entries = BTreeMap::new();
    for (name, value) in json.into_iter().filter(|(k, _)| k != "__metadata__") {
        let dtype = value.get("dtype").and_then(Value::as_str);
        let shape = value.get("shape").and_then(Value::as_array);
        let (Some(dtype), Some(shape)) = (dtype, shape) else {
            bail!("{}: tensor '{name}' has no dtype or shape in the header", path.display());
        };
        let numel = shape.iter().map(|d| d.as_u64().unwrap_or(0)).product();
        entries.insert(name, Entry { dtype: dtype.to_string(), numel });
    }
    Ok(entries)
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
