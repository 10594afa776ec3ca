//! `deltaw chat`: an interactive terminal chat. The conversation is kept as messages and
//! rendered through the chat template every turn; the answer streams as it is generated and
//! ends at any EOS id or the template's end of turn. `/reset` clears the conversation (the
//! system message stays), `/system TEXT` sets the system message, Ctrl-D (end of input) quits.

use super::generate::SamplingArgs;
use super::open_model::{open_causal_lm, OpenedLm};
use anyhow::{bail, Context, Result};
use clap::Args;
use deltaw_lora::Lora;
use deltaw_tensor::Device;
use deltaw_transformer::{
    generate_text, CausalLm, ChatTemplate, GenerateOptions, GeneratedText, Message, Tokenizer, BUILTIN_TEMPLATES,
};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// The model of a chat: folder, adapter, template, system message.
#[derive(Args)]
pub struct ChatModelArgs {
    /// A causal LM folder (config.json, model.safetensors, tokenizer.json; tokenizer_config.json,
    /// chat_template.jinja and generation_config.json when present), or a GGUF file (.gguf:
    /// llama, qwen2, qwen3, gpt2), which holds its tokenizer and chat template.
    #[arg(long, value_name = "DIR|FILE.gguf")]
    pub model: PathBuf,
    /// A PEFT LoRA adapter folder to apply to the model.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// A built-in chat template (llama3, chatml, mistral, alpaca) instead of the folder's own.
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// The system message the conversation starts with.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
}

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ChatModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// A model ready to answer conversations: weights (with the adapter), tokenizer, template and
/// decoding options with the folder's EOS ids and the template's end of turn.
pub struct ChatModel {
    model: Box<dyn CausalLm>,
    /// Kept alive with the model it was injected into.
    _adapter: Option<Lora>,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    options: GenerateOptions,
}

impl ChatModel {
    pub fn load(args: &ChatModelArgs, sampling: &SamplingArgs, device: &Device) -> Result<ChatModel> {
        let mut options = sampling.options()?;
        let OpenedLm { mut model, tokenizer, generation, template } = open_causal_lm(&args.model, device)?;
        let adapter = match &args.adapter {
            Some(dir) if !dir.is_dir() => bail!("adapter folder {} does not exist", dir.display()),
            Some(dir) => Some(Lora::load_peft(model.as_mut(), dir, device)?),
            None => None,
        };
        let template = pick_template(&args.model, template, args.template.as_deref(), &tokenizer)?;
        options.eos_token_ids = generation.eos_token_ids;
        let ends = [tokenizer.config().eos_token.as_deref(), template.end_of_turn()];
        for end in ends.into_iter().flatten() {
            match tokenizer.token_id(end) {
                Ok(id) if !options.eos_token_ids.contains(&id) => options.eos_token_ids.push(id),
                Ok(_) => {}
                Err(_) => options.stop_strings.push(end.to_string()), // spelled out, not one token
            }
        }
        Ok(ChatModel { model, _adapter: adapter, tokenizer, template, options })
    }

    /// Renders `messages` with the generation prompt and generates the assistant's answer,
    /// streaming it to `on_text`. Returns the prompt's ids and the answer.
    pub fn reply(&self, messages: &[Message], on_text: &mut dyn FnMut(&str)) -> Result<(Vec<i32>, GeneratedText)> {
        let prompt = self.template.render(messages, true, None)?;
        // As transformers' apply_chat_template(tokenize=True): the template writes the BOS.
        let ids = self.tokenizer.encode_plain(&prompt)?;
        let room = self.model.max_positions().saturating_sub(ids.len());
        if ids.is_empty() || room == 0 {
            bail!(
                "the conversation is {} tokens, the model's context {}: /reset to start over",
                ids.len(),
                self.model.max_positions()
            );
        }
        let options = GenerateOptions { max_new_tokens: self.options.max_new_tokens.min(room), ..self.options.clone() };
        let new = generate_text(self.model.as_ref(), &self.tokenizer, &ids, &options, on_text)?;
        Ok((ids, new))
    }
}

/// `--template NAME`, else the model's own template; a model without one is an error that
/// names the built-ins.
fn pick_template(
    model: &std::path::Path,
    own: Option<ChatTemplate>,
    name: Option<&str>,
    tokenizer: &Tokenizer,
) -> Result<ChatTemplate> {
    if let Some(name) = name {
        return Ok(ChatTemplate::builtin(name, tokenizer.config())?);
    }
    own.with_context(|| {
        format!(
            "{} has no chat template (tokenizer_config.json's chat_template, chat_template.jinja or a GGUF's \
             tokenizer.chat_template); pass --template with one of {}",
            model.display(),
            BUILTIN_TEMPLATES.join(", ")
        )
    })
}

pub fn run(args: &ChatArgs, device: &Device, out: &mut dyn Write) -> Result<()> {
    let chat = ChatModel::load(&args.model, &args.sampling, device)?;
    let stdin = std::io::stdin();
    session(&chat, args.model.system.as_deref(), &mut stdin.lock(), out)
}

/// The read-answer loop over `input` until its end. A turn that fails (a template that
/// refuses the conversation, a full context) prints `error: ...` and is dropped.
fn session(chat: &ChatModel, system: Option<&str>, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<()> {
    let mut system = system.map(str::to_string);
    let mut history: Vec<Message> = Vec::new();
    writeln!(
        out,
        "deltaw chat ({}): /reset clears the conversation, /system TEXT sets the system message, Ctrl-D quits.",
        chat.template.origin()
    )?;
    loop {
        write!(out, "> ")?;
        out.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            writeln!(out)?;
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line == "/reset" {
            history.clear();
            writeln!(out, "(conversation cleared)")?;
            continue;
        }
        if let Some(text) = line.strip_prefix("/system") {
            system = Some(text.trim().to_string()).filter(|s| !s.is_empty());
            writeln!(out, "(system message {})", if system.is_some() { "set" } else { "removed" })?;
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        history.push(Message::new("user", line));
        let messages: Vec<Message> =
            system.iter().map(|s| Message::new("system", s.as_str())).chain(history.iter().cloned()).collect();
        let mut write_error = None;
        let result = chat.reply(&messages, &mut |piece| {
            if let Err(e) = write!(out, "{piece}").and_then(|()| out.flush()) {
                write_error.get_or_insert(e);
            }
        });
        if let Some(e) = write_error {
            return Err(e.into());
        }
        match result {
            Ok((_, new)) => {
                writeln!(out)?;
                history.push(Message::new("assistant", new.text));
            }
            Err(e) => {
                history.pop();
                writeln!(out, "error: {e:#}")?;
            }
        }
    }
}
