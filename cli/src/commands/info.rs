//! `deltaw info`: what a model folder (or a GGUF file: `info_gguf.rs`) holds, read from its `config.json` and the header of its
//! `model.safetensors` (the weights themselves are not loaded, so this is quick on any size).

use super::check_model_dir;
use anyhow::{Context, Result};
use clap::Args;
use deltaw_lora::commas;
use deltaw_tensor::safetensors::HeaderEntry;
use deltaw_transformer::{BertConfig, Gpt2Config, LlamaConfig, ModelType, Tokenizer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Checkpoint entries that are buffers, not parameters (causal masks, BERT's position ids).
const BUFFERS: [&str; 3] = [".attn.bias", ".attn.masked_bias", "embeddings.position_ids"];

#[derive(Args)]
pub struct InfoArgs {
    /// A Hugging Face folder with config.json and model.safetensors (gpt2, bert, the Llama
    /// family), or a GGUF file (.gguf).
    #[arg(long, value_name = "DIR|FILE.gguf")]
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

/// What `info` reports, gathered once for both the text and the JSON form.
struct Info {
    model_type: ModelType,
    /// The whole `config.json` as deltaw reads it, and its main sizes in one line.
    config: Value,
    summary: String,
    tensors: usize,
    /// Elements of every tensor but the buffers ([`BUFFERS`]).
    parameters: u64,
    /// Stored dtype → number of tensors.
    dtypes: BTreeMap<String, usize>,
    file_bytes: u64,
    /// The vocabulary size of a readable `tokenizer.json`.
    tokenizer: Option<usize>,
}

pub fn run(args: &InfoArgs, out: &mut dyn Write) -> Result<()> {
    if super::open_model::is_gguf(&args.model) {
        return super::info_gguf::run(&args.model, args.json, out);
    }
    check_model_dir(&args.model)?;
    let info = Info::read(&args.model)?;
    if args.json {
        write_json(&info, &args.model, out)
    } else {
        write_text(&info, &args.model, out)
    }
}

impl Info {
    /// Reads `config.json`, the header of `model.safetensors` and `tokenizer.json` (if any).
    fn read(dir: &Path) -> Result<Info> {
        let model_type = ModelType::from_dir(dir)?;
        let (config, summary) = config_summary(model_type, dir)?;
        let mut entries = BTreeMap::new();
        let mut file_bytes = 0;
        for weights in weight_files(dir)? {
            entries.extend(read_header(&weights)?);
            file_bytes += std::fs::metadata(&weights).with_context(|| weights.display().to_string())?.len();
        }
        let is_buffer = |name: &str| BUFFERS.iter().any(|b| name.ends_with(b));
        let parameters: u64 = entries.iter().filter(|(n, _)| !is_buffer(n)).map(|(_, e)| e.numel).sum();
        let mut dtypes: BTreeMap<String, usize> = BTreeMap::new();
        for e in entries.values() {
            *dtypes.entry(e.dtype.clone()).or_default() += 1;
        }
        let tokenizer = Tokenizer::from_dir(dir).ok().map(|t| t.vocab_size());
        Ok(Info { model_type, config, summary, tensors: entries.len(), parameters, dtypes, file_bytes, tokenizer })
    }
}

/// `model.safetensors`, or the shards `model.safetensors.index.json` lists, in order.
fn weight_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Ok(vec![dir.join("model.safetensors")]);
    }
    let text = std::fs::read_to_string(&index).with_context(|| index.display().to_string())?;
    let json: Value = serde_json::from_str(&text).with_context(|| index.display().to_string())?;
    let map = json.get("weight_map").and_then(Value::as_object);
    let map = map.with_context(|| format!("{}: no object weight_map", index.display()))?;
    let shards: std::collections::BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
    Ok(shards.into_iter().map(|s| dir.join(s)).collect())
}

/// The folder's config as JSON, and its main sizes in one line.
fn config_summary(model_type: ModelType, dir: &Path) -> Result<(Value, String)> {
    Ok(match model_type {
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
        ModelType::Llama(_) => {
            let c = LlamaConfig::from_dir(dir)?;
            let text = format!(
                "vocab_size {}, hidden_size {}, num_hidden_layers {}, heads {} (kv {}, head_dim {}), \
                 intermediate_size {}, max_position_embeddings {}, {} head{}",
                c.vocab_size,
                c.hidden_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.num_kv_heads(),
                c.head_size(),
                c.intermediate_size,
                c.max_position_embeddings,
                if c.tie_word_embeddings { "tied" } else { "untied" },
                c.sliding_window.map_or(String::new(), |w| format!(", sliding_window {w}"))
            );
            (c.to_json(), text)
        }
    })
}

/// `--json`: one pretty-printed object.
fn write_json(info: &Info, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let value = json!({
        "model_type": info.model_type.as_str(),
        "dir": dir.display().to_string(),
        "config": info.config,
        "parameters": info.parameters,
        "tensors": info.tensors,
        "dtypes": info.dtypes,
        "file_bytes": info.file_bytes,
        "tokenizer_vocab_size": info.tokenizer,
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

/// The report for people: one labelled line per fact.
fn write_text(info: &Info, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let dtype_text: Vec<String> = info.dtypes.iter().map(|(d, n)| format!("{d} ({n} tensors)")).collect();
    writeln!(out, "model type   {} ({})", info.model_type.as_str(), dir.display())?;
    writeln!(out, "config       {}", info.summary)?;
    writeln!(
        out,
        "parameters   {} ({:.2} M) in {} tensors",
        commas(info.parameters),
        info.parameters as f64 / 1e6,
        info.tensors
    )?;
    writeln!(out, "dtypes       {}", dtype_text.join(", "))?;
    writeln!(
        out,
        "file         model.safetensors, {} bytes ({:.1} MiB)",
        commas(info.file_bytes),
        info.file_bytes as f64 / 1048576.0
    )?;
    match info.tokenizer {
        Some(n) => writeln!(out, "tokenizer    tokenizer.json, {} tokens", commas(n as u64))?,
        None => writeln!(out, "tokenizer    none (no readable tokenizer.json)")?,
    }
    Ok(())
}

/// Reads only the header of a safetensors file, through the loader's own validated parser
/// (checked sizes, offsets that tile the file), so `info` accepts exactly what `load` accepts.
fn read_header(path: &Path) -> Result<BTreeMap<String, Entry>> {
    let header = deltaw_tensor::safetensors::read_header(path)?;
    let entry = |e: HeaderEntry| (e.name.clone(), Entry { numel: e.numel() as u64, dtype: e.dtype });
    Ok(header.tensors.into_iter().map(entry).collect())
}
