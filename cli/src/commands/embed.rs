//! `deltaw embed`: sentence embeddings of texts from the arguments, a file or stdin, with a
//! sentence-transformers folder's own pooling and normalisation.

use super::check_model_dir;
use anyhow::{bail, Context, Result};
use clap::Args;
use deltaw_tensor::Device;
use deltaw_transformer::SentenceEmbedder;
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// How many leading values a plain-text line shows.
const SHOWN: usize = 6;

#[derive(Args)]
pub struct EmbedArgs {
    /// A sentence-transformers or BERT folder (config.json, model.safetensors, tokenizer.json;
    /// modules.json and 1_Pooling/ when present).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Read the texts from this file, one per line (empty lines skipped).
    #[arg(long, value_name = "FILE", conflicts_with = "texts")]
    pub file: Option<PathBuf>,
    /// Print one JSON array holding every vector, in input order.
    #[arg(long)]
    pub json: bool,
    /// The texts; without them and without --file, lines are read from stdin.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,
}

pub fn run(args: &EmbedArgs, device: &Device, out: &mut dyn Write) -> Result<()> {
    check_model_dir(&args.model)?;
    let texts = read_texts(args)?;
    if texts.is_empty() {
        bail!("no text to embed: pass TEXT arguments, --file FILE, or lines on stdin");
    }
    let embedder = SentenceEmbedder::from_dir(&args.model, device)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embeddings = embedder.embed(&refs)?; // (N, D)
    let d = embeddings.dims()[1];
    let values = embeddings.to_vec();
    if args.json {
        let rows: Vec<&[f32]> = values.chunks(d).collect();
        serde_json::to_writer(&mut *out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    for (text, row) in texts.iter().zip(values.chunks(d)) {
        let shown: Vec<String> = row.iter().take(SHOWN).map(|v| format!("{v:+.6}")).collect();
        let more = if d > SHOWN { " …" } else { "" };
        writeln!(out, "[{d}] {}{more}\t{text}", shown.join(" "))?;
    }
    Ok(())
}

/// The texts, from the arguments, else `--file`, else stdin (lines, empty ones skipped).
fn read_texts(args: &EmbedArgs) -> Result<Vec<String>> {
    if !args.texts.is_empty() {
        return Ok(args.texts.clone());
    }
    let lines: Vec<String> = match &args.file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading texts from {}", path.display()))?;
            text.lines().map(str::to_string).collect()
        }
        None => std::io::stdin().lock().lines().collect::<std::io::Result<_>>().context("reading texts from stdin")?,
    };
    Ok(lines.into_iter().map(|l| l.trim_end_matches('\r').to_string()).filter(|l| !l.trim().is_empty()).collect())
}
