//! `deltaw export`: writes a model folder as one GGUF file (llama.cpp's format) with its
//! metadata, tokenizer and chat template, the matrices stored f16 or block-quantized.

use super::check_model_dir;
use anyhow::{bail, Result};
use clap::Args;
use deltaw_transformer::gguf::{export_gguf, GgufQuant};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// The causal LM folder to export (llama, qwen2, qwen3, mistral, gpt2).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The output format (gguf is the only one).
    #[arg(long, default_value = "gguf", value_name = "FORMAT")]
    pub format: String,
    /// How matrices are stored: f16, q8_0, q4_0 or q4_k_m (llama.cpp's mix of Q4_K and Q6_K).
    #[arg(long, default_value = "q8_0", value_name = "TYPE")]
    pub quant: String,
    /// The file to write (atomically).
    #[arg(long, value_name = "FILE.gguf")]
    pub out: PathBuf,
}

pub fn run(args: &ExportArgs, out: &mut dyn Write) -> Result<()> {
    if args.format != "gguf" {
        bail!("--format {}: the only format is gguf", args.format);
    }
    let Some(quant) = GgufQuant::from_name(&args.quant) else {
        bail!("--quant {}: expected one of {}", args.quant, GgufQuant::NAMES.join(", "));
    };
    check_model_dir(&args.model)?;
    let report = export_gguf(&args.model, &args.out, quant)?;
    let types: Vec<String> = report.types.iter().map(|(t, n)| format!("{t} ({n})")).collect();
    writeln!(out, "tensors      {}", types.join(", "))?;
    if !report.fallbacks.is_empty() {
        writeln!(out, "as f16       {} (rows not a whole number of blocks)", report.fallbacks.join(", "))?;
    }
    for note in &report.notes {
        writeln!(out, "note         {note}")?;
    }
    writeln!(out, "wrote {}", args.out.display())?;
    Ok(())
}
