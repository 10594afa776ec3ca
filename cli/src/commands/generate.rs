//! `deltaw generate`: continues a prompt with a causal LM (a folder or a GGUF file), greedy or sampled, stopping
//! at the model's end-of-text tokens or a `--stop` string; `--chat` runs the prompt as one user
//! turn through the chat template. The sampling flags are shared with `deltaw chat`.

use super::chat::{ChatModel, ChatModelArgs};
use super::open_model::{open_causal_lm, OpenedLm};
use anyhow::{bail, Result};
use clap::Args;
use deltaw_tensor::Device;
use deltaw_transformer::{generate_text, GenerateOptions, Message, StopReason};
use serde_json::json;
use std::io::Write;

/// How to pick tokens: the flags of `generate` and `chat`.
#[derive(Args)]
pub struct SamplingArgs {
    /// How many tokens to add at most (fewer when an end token or a stop string comes first).
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
    /// Stop when the new text contains S (repeatable); S is cut from the output.
    #[arg(long = "stop", value_name = "S")]
    pub stop: Vec<String>,
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ChatModelArgs,
    /// The text to continue (with --chat: the user's message).
    #[arg(long)]
    pub prompt: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Run the prompt as one user turn through the chat template (the folder's, or --template).
    #[arg(long)]
    pub chat: bool,
    /// Print {"prompt_ids", "new_ids", "text", "new_text"} as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &GenerateArgs, device: &Device, out: &mut dyn Write) -> Result<()> {
    if args.chat {
        return run_chat_turn(args, device, out);
    }
    if args.model.adapter.is_some() || args.model.template.is_some() || args.model.system.is_some() {
        bail!("--adapter, --template and --system go with --chat (or `deltaw chat`)");
    }
    let mut options = args.sampling.options()?;
    let OpenedLm { model, tokenizer, generation, .. } = open_causal_lm(&args.model.model, device)?;
    options.eos_token_ids = generation.eos_token_ids;
    let prompt_ids = tokenizer.encode(&args.prompt)?;
    let new = generate_text(model.as_ref(), &tokenizer, &prompt_ids, &options, &mut |_| {})?;
    let text = match new.stop {
        StopReason::StopString => format!("{}{}", tokenizer.decode(&prompt_ids)?, new.text),
        _ => tokenizer.decode(&[prompt_ids.as_slice(), &new.ids].concat())?,
    };
    if args.json {
        let value = json!({ "prompt_ids": prompt_ids, "new_ids": new.ids, "text": text, "new_text": new.text });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// `--chat`: the system message (if any) and the prompt as a user turn, rendered with the
/// generation prompt; prints the assistant's answer only.
fn run_chat_turn(args: &GenerateArgs, device: &Device, out: &mut dyn Write) -> Result<()> {
    let chat = ChatModel::load(&args.model, &args.sampling, device)?;
    let mut messages: Vec<Message> = args.model.system.iter().map(|s| Message::new("system", s.as_str())).collect();
    messages.push(Message::new("user", args.prompt.as_str()));
    let (prompt_ids, new) = chat.reply(&messages, &mut |_| {})?;
    if args.json {
        let value = json!({ "prompt_ids": prompt_ids, "new_ids": new.ids, "text": new.text, "new_text": new.text });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{}", new.text)?;
    }
    Ok(())
}

impl SamplingArgs {
    /// The decoding options from the flags, checked: greedy unless a sampling flag is given.
    /// EOS ids are the caller's (they come from the model folder).
    pub fn options(&self) -> Result<GenerateOptions> {
        let mut options = GenerateOptions::greedy(self.max_new_tokens);
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            bail!("--repetition-penalty must be a positive number, got {}", self.repetition_penalty);
        }
        if let Some(empty) = self.stop.iter().position(String::is_empty) {
            bail!("--stop must not be empty (stop string {} of {})", empty + 1, self.stop.len());
        }
        options.repetition_penalty = self.repetition_penalty;
        options.seed = self.seed;
        options.stop_strings = self.stop.clone();
        let sampling = self.temperature.is_some() || self.top_k.is_some() || self.top_p.is_some();
        if self.greedy || !sampling {
            return Ok(options);
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(temperature.is_finite() && temperature > 0.0) {
            bail!("--temperature must be a positive number, got {temperature} (use --greedy for argmax decoding)");
        }
        if self.top_k == Some(0) {
            bail!("--top-k must be at least 1");
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            bail!("--top-p must be in (0, 1], got {p}");
        }
        Ok(GenerateOptions { temperature, top_k: self.top_k, top_p: self.top_p, ..options })
    }
}
