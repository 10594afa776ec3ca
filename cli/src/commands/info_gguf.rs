//! `deltaw info` on a GGUF file: the architecture and config from its metadata, tensor counts
//! and types from its tensor infos, the tokenizer's size and whether it has a chat template.
//! Only the header is read, as for a folder.

use anyhow::Result;
use deltaw_lora::commas;
use deltaw_tensor::gguf::GgufFile;
use deltaw_transformer::gguf::{gpt2_config, llama_config, GgufArch};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

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
    let (config, summary) = match arch {
        GgufArch::Llama(family) => {
            let tied = file.tensor_info("output.weight").is_none();
            let bias = file.tensor_info("blk.0.attn_q.bias").is_some();
            let c = llama_config(metadata, family, vocab, tied, bias, path)?;
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
    };
    let infos = file.tensor_infos();
    let parameters: u64 = infos.iter().map(|t| t.numel() as u64).sum();
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for t in infos {
        *types.entry(t.ty.to_string()).or_default() += 1;
    }
    let file_bytes = std::fs::metadata(path)?.len();
    let template = metadata.get("tokenizer.chat_template").is_some();
    let tokenizer_model = metadata.get_str("tokenizer.ggml.model").ok();
    if json_out {
        let value = json!({
            "model_type": config.get("model_type").cloned().unwrap_or(Value::Null),
            "file": path.display().to_string(),
            "format": "gguf",
            "gguf_version": file.version(),
            "architecture": arch.as_str(),
            "config": config,
            "parameters": parameters,
            "tensors": infos.len(),
            "dtypes": types,
            "file_bytes": file_bytes,
            "metadata_keys": metadata.len(),
            "tokenizer_vocab_size": tokens,
            "tokenizer_model": tokenizer_model,
            "chat_template": template,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let type_text: Vec<String> = types.iter().map(|(d, n)| format!("{d} ({n} tensors)")).collect();
    writeln!(out, "model type   {} (GGUF v{}, {})", arch.as_str(), file.version(), path.display())?;
    writeln!(out, "config       {summary}")?;
    writeln!(out, "parameters   {} ({:.2} M) in {} tensors", commas(parameters), parameters as f64 / 1e6, infos.len())?;
    writeln!(out, "dtypes       {}", type_text.join(", "))?;
    writeln!(
        out,
        "file         {} bytes ({:.1} MiB), {} metadata keys",
        commas(file_bytes),
        file_bytes as f64 / 1048576.0,
        metadata.len()
    )?;
    match (tokens, tokenizer_model) {
        (Some(n), Some(m)) => writeln!(
            out,
            "tokenizer    {m} (tokenizer.ggml.*), {} tokens, {}",
            commas(n as u64),
            if template { "chat template" } else { "no chat template" }
        )?,
        _ => writeln!(out, "tokenizer    none (no tokenizer.ggml.* metadata)")?,
    }
    Ok(())
}
