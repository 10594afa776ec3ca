//! `deltaw generate`: continues a prompt with a GPT-2 folder, greedy or sampled, stopping at
//! the model's end-of-text token.

use super::check_model_dir;
use anyhow::{bail, Context, Result};
use clap::Args;
use deltaw_tensor::Device;
use deltaw_transformer::{load_causal_lm, GenerateOptions, Tokenizer};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct GenerateArgs {
    /// A GPT-2 folder (config.json, model.safetensors, tokenizer.json; generation_config.json
    /// when present).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The text to continue.
    #[arg(long)]
    pub prompt: String,
    /// How many tokens to add at most (fewer when the end-of-text token comes first).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_new_tokens: usize,
    /// Always pick the most likely token (the default when no sampling option is given).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p"])]
    pub greedy: bool,
    /// Sample, dividing the logits by T (default 1 when --top-k or --top-p is given).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Sample among the K most likely tokens only.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens whose probabilities add up to P.
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Divide the positive logits of tokens already present by R (multiply negative ones); 1 = off.
    #[arg(long, default_value_t = 1.0, value_name = "R")]
    pub repetition_penalty: f32,
    /// Seed of the sampler: the same seed and options give the same text.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Print {"prompt_ids", "new_ids", "text", "new_text"} as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &GenerateArgs, device: &Device, out: &mut dyn Write) -> Result<()> {
    check_model_dir(&args.model)?;
    let mut options = sampling_options(args)?;
    let model = load_causal_lm(&args.model, device)?;
    let tokenizer = Tokenizer::from_dir(&args.model)?;
    tokenizer.check_vocab(model.vocab_size())?;
    options.eos_token_id = eos_token_id(&args.model)?;
    let prompt_ids = tokenizer.encode(&args.prompt)?;
    let new_ids = model.try_generate(&prompt_ids, &options)?;
    let text = tokenizer.decode(&[prompt_ids.as_slice(), &new_ids].concat())?;
    if args.json {
        let new_text = tokenizer.decode(&new_ids)?;
        let value = json!({ "prompt_ids": prompt_ids, "new_ids": new_ids, "text": text, "new_text": new_text });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// The decoding options from the flags, checked: greedy unless a sampling flag is given.
fn sampling_options(args: &GenerateArgs) -> Result<GenerateOptions> {
    let mut options = GenerateOptions::greedy(args.max_new_tokens);
    if !(args.repetition_penalty.is_finite() && args.repetition_penalty > 0.0) {
        bail!("--repetition-penalty must be a positive number, got {}", args.repetition_penalty);
    }
    options.repetition_penalty = args.repetition_penalty;
    options.seed = args.seed;
    let sampling = args.temperature.is_some() || args.top_k.is_some() || args.top_p.is_some();
    if args.greedy || !sampling {
        return Ok(options);
    }
    let temperature = args.temperature.unwrap_or(1.0);
    if !(temperature.is_finite() && temperature > 0.0) {
        bail!("--temperature must be a positive number, got {temperature} (use --greedy for argmax decoding)");
    }
    if args.top_k == Some(0) {
        bail!("--top-k must be at least 1");
    }
    if let Some(p) = args.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
        bail!("--top-p must be in (0, 1], got {p}");
    }
    Ok(GenerateOptions { temperature, top_k: args.top_k, top_p: args.top_p, ..options })
}

/// `eos_token_id` of `generation_config.json` when the folder has one, else of `config.json`;
/// a list (as some models write) gives its first id.
pub fn eos_token_id(dir: &Path) -> Result<Option<i32>> {
    let read = |name: &str| -> Result<Option<Value>> {
        let path = dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        Ok(Some(serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?))
    };
    let (generation, config) = (read("generation_config.json")?, read("config.json")?);
    let field = generation.as_ref().and_then(|g| g.get("eos_token_id")).filter(|v| !v.is_null());
    let value = field.or_else(|| config.as_ref().and_then(|c| c.get("eos_token_id")));
    let id = match value {
        Some(Value::Array(ids)) => ids.first().and_then(Value::as_i64),
        Some(v) => v.as_i64(),
        None => None,
    };
    Ok(id.and_then(|id| i32::try_from(id).ok()))
}
