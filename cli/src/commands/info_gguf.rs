//! `deltaw info` on a GGUF file: the architecture and config from its metadata, tensor counts
//! and types from its tensor infos, the tokenizer's size and whether it has a chat template.
//! Only the header is read, as for a folder.

use anyhow::Result;
use deltaw_lora::commas;
use deltaw_tensor::gguf::GgufFile;
use deltaw_transformer::gguf::{gpt2_config, llama_config, rope_freqs, GgufArch};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// What the report says, gathered from the header before anything is printed.
struct Report<'a> {
    file: &'a GgufFile,
    arch: GgufArch,
    config: Value,
    summary: String,
    parameters: u64,
    types: BTreeMap<String, usize>,
    file_bytes: u64,
    tokens: Option<usize>,
    tokenizer_model: Option<&'a str>,
    template: bool,
}

/// Prints the report for the GGUF file at `path` (`json`: one object).
pub fn run(path: &Path, json_out: bool, out: &mut dyn Write) -> Result<()> {
    let file = GgufFile::open(path)?;
    let metadata = file.metadata();
    let arch = GgufArch::from_metadata(metadata, path)?;
    let tokens = metadata.get_str_array("tokenizer.ggml.tokens").map(|t| t.len()).ok();
    let vocab = match file.tensor_info("token_embd.weight") {
        Some(info) if info.shape.len() == 2 => info.shape[0],
        _ => tokens.unwrap_or(0),
    };
    let (config, summary) = config_summary(&file, arch, vocab, path)?;
    let infos = file.tensor_infos();
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for t in infos {
        *types.entry(t.ty.to_string()).or_default() += 1;
    }
    let report = Report {
        file: &file,
        arch,
        config,
        summary,
        parameters: infos.iter().map(|t| t.numel() as u64).sum(),
        types,
        file_bytes: std::fs::metadata(path)?.len(),
        tokens,
        tokenizer_model: metadata.get_str("tokenizer.ggml.model").ok(),
        template: metadata.get("tokenizer.chat_template").is_some(),
    };
    if json_out {
        print_json(&report, path, out)
    } else {
        print_text(&report, path, out)
    }
}

/// The config as JSON (the shape `config.json` would have) and a one-line summary of it.
fn config_summary(file: &GgufFile, arch: GgufArch, vocab: usize, path: &Path) -> Result<(Value, String)> {
    let metadata = file.metadata();
    Ok(match arch {
        GgufArch::Llama(family) => {
            let tied = file.tensor_info("output.weight").is_none();
            let bias = file.tensor_info("blk.0.attn_q.bias").is_some();
            let factors = rope_freqs(file)?;
            let c = llama_config(metadata, family, vocab, tied, bias, factors.as_deref(), path)?;
            let text = format!(
                "vocab_size {}, hidden_size {}, num_hidden_layers {}, heads {} (kv {}, head_dim {}), \
                 intermediate_size {}, context {}, {} head",
                c.vocab_size,
                c.hidden_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.num_kv_heads(),
                c.head_size(),
                c.intermediate_size,
                c.max_position_embeddings,
                if c.tie_word_embeddings { "tied" } else { "untied" },
            );
            (c.to_json(), text)
        }
        GgufArch::Gpt2 => {
            let c = gpt2_config(metadata, vocab, path)?;
            let text = format!(
                "vocab_size {}, n_positions {}, n_embd {}, n_layer {}, n_head {}, MLP {}",
                c.vocab_size,
                c.n_positions,
                c.n_embd,
                c.n_layer,
                c.n_head,
                c.inner()
            );
            (c.to_json(), text)
        }
    })
}

fn print_json(r: &Report, path: &Path, out: &mut dyn Write) -> Result<()> {
    let value = json!({
        "model_type": r.config.get("model_type").cloned().unwrap_or(Value::Null),
        "file": path.display().to_string(),
        "format": "gguf",
        "gguf_version": r.file.version(),
        "architecture": r.arch.as_str(),
        "config": r.config,
        "parameters": r.parameters,
        "tensors": r.file.tensor_infos().len(),
        "dtypes": r.types,
        "file_bytes": r.file_bytes,
        "metadata_keys": r.file.metadata().len(),
        "tokenizer_vocab_size": r.tokens,
        "tokenizer_model": r.tokenizer_model,
        "chat_template": r.template,
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

fn print_text(r: &Report, path: &Path, out: &mut dyn Write) -> Result<()> {
    let n_tensors = r.file.tensor_infos().len();
    let type_text: Vec<String> = r.types.iter().map(|(d, n)| format!("{d} ({n} tensors)")).collect();
    writeln!(out, "model type   {} (GGUF v{}, {})", r.arch.as_str(), r.file.version(), path.display())?;
    writeln!(out, "config       {}", r.summary)?;
    writeln!(out, "parameters   {} ({:.2} M) in {n_tensors} tensors", commas(r.parameters), r.parameters as f64 / 1e6)?;
    writeln!(out, "dtypes       {}", type_text.join(", "))?;
    writeln!(
        out,
        "file         {} bytes ({:.1} MiB), {} metadata keys",
        commas(r.file_bytes),
        r.file_bytes as f64 / 1048576.0,
        r.file.metadata().len()
    )?;
    match (r.tokens, r.tokenizer_model) {
        (Some(n), Some(m)) => writeln!(
            out,
            "tokenizer    {m} (tokenizer.ggml.*), {} tokens, {}",
            commas(n as u64),
            if r.template { "chat template" } else { "no chat template" }
        )?,
        _ => writeln!(out, "tokenizer    none (no tokenizer.ggml.* metadata)")?,
    }
    Ok(())
}
