//! Chat templates: a conversation rendered to the text a chat model was trained on, by the
//! model's own Jinja `chat_template` (run with `minijinja`) or by a built-in one.
//!
//! The environment is transformers' (`apply_chat_template`): `trim_blocks` and
//! `lstrip_blocks` on, loop controls, `raise_exception(message)`, `namespace`, Python's
//! string and dict methods (`strip`, `startswith`, `split`, `items`...), and a `tojson`
//! filter that writes what Python's `json.dumps(x, ensure_ascii=False, indent=...)` writes
//! (minijinja's own escapes `<`, `>`, `&` and `'` for HTML). The template sees `messages`
//! (`role`, `content`), `tools` (`none` without tools), `documents` (`none`),
//! `add_generation_prompt`, and the special tokens `bos_token`, `eos_token`, `pad_token`,
//! `unk_token` (those the folder names). JSON objects given as `tools` are seen with their keys
//! in sorted order.

use crate::error::{Error, Result};
use crate::tokenizer_config::TokenizerConfig;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{context, Environment, ErrorKind};
use serde::Serialize;
use std::path::Path;

/// One turn of a conversation. `role` is `system`, `user`, `assistant` or `tool` (a template
/// may accept others, or raise on them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message { role: role.into(), content: content.into() }
    }
}

/// The names of the built-in templates, for folders without a `chat_template`.
pub const BUILTIN_TEMPLATES: [&str; 4] = ["llama3", "chatml", "mistral", "alpaca"];

/// A compiled chat template and the special tokens it may write.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Where the template came from (a file, or `built-in "chatml"`), for error messages.
    origin: String,
    tokens: TokenizerConfig,
    /// The text a built-in template writes after each turn (`<|im_end|>`), `None` for a folder's.
    end_of_turn: Option<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `origin` names it in errors, `tokens` gives the special tokens.
    ///
    /// # Errors
    /// [`Error::Template`] naming `origin`, the line and the parser's message.
    pub fn new(origin: impl Into<String>, source: &str, tokens: &TokenizerConfig) -> Result<ChatTemplate> {
        let origin = origin.into();
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        env.set_syntax(syntax.expect("the default delimiters are valid"));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat_template", source.to_string())
            .map_err(|e| Error::Template { origin: origin.clone(), message: describe(&e) })?;
        Ok(ChatTemplate { env, origin, tokens: tokens.clone(), end_of_turn: None })
    }

    /// The folder's own template (`chat_template.jinja`, else `tokenizer_config.json`'s
    /// `chat_template`), `None` when it has none.
    ///
    /// # Errors
    /// Unreadable or invalid files, or a template that does not parse (naming the file).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Option<ChatTemplate>> {
        let config = TokenizerConfig::from_dir(dir)?;
        let (Some(source), Some(path)) = (&config.chat_template, &config.chat_template_path) else {
            return Ok(None);
        };
        ChatTemplate::new(path.display().to_string(), source, &config).map(Some)
    }

    /// The built-in template `name` (one of [`BUILTIN_TEMPLATES`]) with the folder's special
    /// tokens (its `tokenizer_config.json`).
    ///
    /// # Errors
    /// [`Error::Input`] for an unknown name, listing the known ones.
    pub fn builtin(name: &str, tokens: &TokenizerConfig) -> Result<ChatTemplate> {
        let eos = tokens.eos_token.clone();
        let (source, end_of_turn) = match name {
            "llama3" => (LLAMA3, Some("<|eot_id|>".to_string())),
            "chatml" => (CHATML, Some("<|im_end|>".to_string())),
            "mistral" => (MISTRAL, eos),
            "alpaca" => (ALPACA, eos),
            _ => {
                return Err(Error::Input(format!(
                    "unknown chat template \"{name}\"; the built-in ones are {}",
                    BUILTIN_TEMPLATES.join(", ")
                )))
            }
        };
        let template = ChatTemplate::new(format!("built-in template \"{name}\""), source, tokens)?;
        Ok(ChatTemplate { end_of_turn, ..template })
    }

    /// The text that ends an assistant turn in a built-in template (`<|eot_id|>`,
    /// `<|im_end|>`, the EOS): a stop string for chat, and a stop id where the tokenizer has
    /// it as one token. `None` for a folder's own template (its EOS ids say when to stop).
    pub fn end_of_turn(&self) -> Option<&str> {
        self.end_of_turn.as_deref()
    }

    /// Where the template came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The special tokens the template is rendered with.
    pub fn tokens(&self) -> &TokenizerConfig {
        &self.tokens
    }

    /// The conversation as text, as transformers' `apply_chat_template(tokenize=False)`.
    /// `add_generation_prompt` appends the header of an assistant turn; `tools` is a JSON list
    /// of tool schemas for templates that take them.
    ///
    /// # Errors
    /// [`Error::Template`] naming the template's origin and the message of a
    /// `raise_exception` or of a failing expression.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<String> {
        let template = self.env.get_template("chat_template").expect("added in new");
        let t = &self.tokens;
        let ctx = context! {
            messages => Value::from(Serde(messages)),
            tools => Value::from(Serde(tools)),
            documents => Value::from(()),
            add_generation_prompt => add_generation_prompt,
            bos_token => t.bos_token.as_deref(),
            eos_token => t.eos_token.as_deref(),
            pad_token => t.pad_token.as_deref(),
            unk_token => t.unk_token.as_deref(),
        };
        template.render(ctx).map_err(|e| Error::Template { origin: self.origin.clone(), message: describe(&e) })
    }
}

/// A minijinja error as one line: its message and where in the template.
fn describe(e: &minijinja::Error) -> String {
    let detail = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    match e.line() {
        Some(line) => format!("{detail} (line {line})"),
        None => detail,
    }
}

/// `raise_exception(message)`: the template refuses the conversation.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("raise_exception: {message}")))
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent)`, so
/// `{"a": 1, "b": [1, 2]}` with a space after `,` and `:`, or one item per line with `indent`.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    write_python_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

/// Python's `json.dumps` layout of `value` at nesting `depth`: strings and numbers as
/// serde_json writes them (the same escapes), separators `", "` and `": "`, or with `indent`
/// a newline and `indent · (depth + 1)` spaces before each item and `","` between items.
fn write_python_json(value: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    let items: Vec<(Option<&String>, &serde_json::Value)> = match value {
        serde_json::Value::Array(list) => list.iter().map(|v| (None, v)).collect(),
        serde_json::Value::Object(map) => map.iter().map(|(k, v)| (Some(k), v)).collect(),
        scalar => return out.push_str(&scalar.to_string()),
    };
    let (open, close) = if value.is_array() { ('[', ']') } else { ('{', '}') };
    out.push(open);
    for (i, (key, item)) in items.iter().enumerate() {
        match indent {
            Some(n) => {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                out.push_str(&" ".repeat(n * (depth + 1)));
            }
            None if i > 0 => out.push_str(", "),
            None => {}
        }
        if let Some(key) = key {
            out.push_str(&serde_json::Value::from(key.as_str()).to_string());
            out.push_str(": ");
        }
        write_python_json(item, indent, depth + 1, out);
    }
    if let (Some(n), false) = (indent, items.is_empty()) {
        out.push('\n');
        out.push_str(&" ".repeat(n * depth));
    }
    out.push(close);
}

/// Llama 3 Instruct's template: a header per turn, the content trimmed, `<|eot_id|>` after
/// each, the BOS before the first.
const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}\
{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}\
{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/// ChatML (Qwen, many fine-tunes): `<|im_start|>role\ncontent<|im_end|>\n` per turn.
const CHATML: &str = "{% for message in messages %}\
{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Mistral Instruct: `[INST] user [/INST] assistant</s>`, roles alternating; a system message
/// goes before the first user message.
const MISTRAL: &str = "{%- if messages[0]['role'] == 'system' %}\
{%- set system_message = messages[0]['content'] | trim %}{%- set loop_messages = messages[1:] %}\
{%- else %}{%- set loop_messages = messages %}{%- endif %}\
{{- bos_token }}{%- for message in loop_messages %}\
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\
{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}\
{%- if message['role'] == 'user' %}\
{%- if loop.first and system_message is defined %}{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\
{%- else %}{{- '[INST] ' + message['content'] + ' [/INST]' }}{%- endif %}\
{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] | trim + eos_token }}\
{%- else %}{{- raise_exception('Only user, assistant and an initial system message are supported') }}{%- endif %}\
{%- endfor %}";

/// Alpaca, as deltaw's default SFT prompt: `### Instruction:` / `### Response:` blocks, the
/// EOS after each answer.
const ALPACA: &str = "{% for message in messages %}\
{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}\
{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n### Response:\\n' }}\
{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}\
{% else %}{{ raise_exception('alpaca: unsupported role ' + message['role']) }}{% endif %}{% endfor %}";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens() -> TokenizerConfig {
        TokenizerConfig { bos_token: Some("<s>".into()), eos_token: Some("</s>".into()), ..Default::default() }
    }

    #[test]
    fn tojson_writes_what_python_json_dumps_writes() {
        let value = json!({"b": [1, 2], "a": {"x": "é<&>'"}, "e": []});
        let mut compact = String::new();
        write_python_json(&value, None, 0, &mut compact);
        assert_eq!(compact, r#"{"a": {"x": "é<&>'"}, "b": [1, 2], "e": []}"#);
        let mut pretty = String::new();
        write_python_json(&json!({"a": [1], "b": {}}), Some(2), 0, &mut pretty);
        assert_eq!(pretty, "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}");
    }

    #[test]
    fn builtins_render_a_conversation() {
        let msgs =
            [Message::new("system", "Be brief."), Message::new("user", "Hi"), Message::new("assistant", "Hello")];
        let chatml = ChatTemplate::builtin("chatml", &tokens()).unwrap().render(&msgs[1..], true, None).unwrap();
        assert_eq!(
            chatml,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>assistant\n"
        );
        let mistral = ChatTemplate::builtin("mistral", &tokens()).unwrap().render(&msgs, false, None).unwrap();
        assert_eq!(mistral, "<s>[INST] Be brief.\n\nHi [/INST] Hello</s>");
        let alpaca = ChatTemplate::builtin("alpaca", &tokens()).unwrap().render(&msgs, false, None).unwrap();
        assert_eq!(alpaca, "Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello</s>");
        let llama3 = ChatTemplate::builtin("llama3", &tokens()).unwrap().render(&msgs[1..2], true, None).unwrap();
        assert_eq!(
            llama3,
            "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn unknown_builtin_names_the_known_ones() {
        let err = ChatTemplate::builtin("vicuna", &tokens()).unwrap_err().to_string();
        assert!(err.contains("vicuna") && err.contains("chatml"), "{err}");
    }
}
