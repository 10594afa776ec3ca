//! The text-side settings of a Hugging Face folder besides `tokenizer.json`:
//! `tokenizer_config.json` (special tokens, `add_bos_token`, the chat template),
//! `chat_template.jinja`, and `generation_config.json` (BOS, EOS and pad ids).

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What `tokenizer_config.json` says about special tokens and templates. Every field is
/// optional in real folders; a missing file gives the default (all `None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenizerConfig {
    /// The BOS text (`"<|begin_of_text|>"`, `"<s>"`); written as a string or as an
    /// `AddedToken` object `{"content": ...}`, `null` for none (Qwen).
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub unk_token: Option<String>,
    /// Prepend the BOS when encoding. Used only when `tokenizer.json` has no post-processor:
    /// transformers 5 goes by the post-processor whenever `tokenizer.json` exists.
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    /// The Jinja chat template: `chat_template.jinja` when present, else the config's
    /// `chat_template` (a string, or the one named `"default"` of a list of `{name, template}`).
    pub chat_template: Option<String>,
    /// Where the chat template came from, for error messages.
    pub chat_template_path: Option<PathBuf>,
}

impl TokenizerConfig {
    /// Reads `dir/tokenizer_config.json` and `dir/chat_template.jinja`, each when present.
    ///
    /// # Errors
    /// A file that cannot be read, invalid JSON, or a field of the wrong type; the message
    /// names the file and the field.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<TokenizerConfig> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer_config.json");
        let mut config = match read_json(&path)? {
            Some(json) => TokenizerConfig::from_json(&json, &path)?,
            None => TokenizerConfig::default(),
        };
        let jinja = dir.join("chat_template.jinja");
        if jinja.exists() {
            let text = std::fs::read_to_string(&jinja).map_err(|source| Error::Io { path: jinja.clone(), source })?;
            config.chat_template = Some(text);
            config.chat_template_path = Some(jinja);
        }
        Ok(config)
    }

    /// The fields of a parsed `tokenizer_config.json`; `path` names it in errors.
    pub fn from_json(json: &Value, path: &Path) -> Result<TokenizerConfig> {
        let bad =
            |field: &str, what: &str| Error::Config { path: path.to_path_buf(), message: format!("{field}: {what}") };
        let token = |field: &str| -> Result<Option<String>> {
            match json.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Object(o)) => match o.get("content") {
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    _ => Err(bad(field, "an AddedToken object needs a string \"content\"")),
                },
                Some(_) => Err(bad(field, "expected a string, an AddedToken object or null")),
            }
        };
        let flag = |field: &str| -> Result<Option<bool>> {
            match json.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(bad(field, "expected true or false")),
            }
        };
        let chat_template = match json.get("chat_template") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => Some(default_of_list(list).map_err(|m| bad("chat_template", &m))?),
            Some(_) => return Err(bad("chat_template", "expected a string or a list of {name, template}")),
        };
        Ok(TokenizerConfig {
            bos_token: token("bos_token")?,
            eos_token: token("eos_token")?,
            pad_token: token("pad_token")?,
            unk_token: token("unk_token")?,
            add_bos_token: flag("add_bos_token")?,
            add_eos_token: flag("add_eos_token")?,
            chat_template_path: chat_template.as_ref().map(|_| path.to_path_buf()),
            chat_template,
        })
    }
}

/// The template named `"default"` of a `[{name, template}, ...]` list (the form of folders
/// with several templates, such as tool-use variants), or the only one when there is one.
fn default_of_list(list: &[Value]) -> std::result::Result<String, String> {
    let mut named = Vec::new();
    for entry in list {
        let name = entry.get("name").and_then(Value::as_str);
        let template = entry.get("template").and_then(Value::as_str);
        match (name, template) {
            (Some(n), Some(t)) => named.push((n, t)),
            _ => return Err("every entry of the list needs a string \"name\" and \"template\"".into()),
        }
    }
    match named.iter().find(|(n, _)| *n == "default") {
        Some((_, t)) => Ok(t.to_string()),
        None if named.len() == 1 => Ok(named[0].1.to_string()),
        None => {
            Err(format!("no template named \"default\" among {:?}", named.iter().map(|(n, _)| *n).collect::<Vec<_>>()))
        }
    }
}

/// The token ids of `generation_config.json` (falling back on `config.json`'s fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerationConfig {
    /// Generation stops after any of these: Llama 3 lists `<|end_of_text|>` and `<|eot_id|>`.
    pub eos_token_ids: Vec<i32>,
    pub bos_token_id: Option<i32>,
    pub pad_token_id: Option<i32>,
}

impl GenerationConfig {
    /// Reads `dir/generation_config.json`; a field it lacks (or the whole file) is taken from
    /// `dir/config.json` when that has it. `eos_token_id` may be an id or a list of ids.
    ///
    /// # Errors
    /// Invalid JSON, or an id that is not an integer in i32 range (the message names the file
    /// and the field).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<GenerationConfig> {
        let dir = dir.as_ref();
        let mut result = GenerationConfig::default();
        for name in ["config.json", "generation_config.json"] {
            let path = dir.join(name);
            let Some(json) = read_json(&path)? else { continue };
            // generation_config.json comes second, so its fields win.
            if let Some(ids) = ids_field(&json, "eos_token_id", &path)? {
                result.eos_token_ids = ids;
            }
            if let Some(ids) = ids_field(&json, "bos_token_id", &path)? {
                result.bos_token_id = ids.first().copied();
            }
            if let Some(ids) = ids_field(&json, "pad_token_id", &path)? {
                result.pad_token_id = ids.first().copied();
            }
        }
        Ok(result)
    }
}

/// An id field as a list: `2` → `[2]`, `[128001, 128009]` as is, absent or `null` → `None`.
fn ids_field(json: &Value, field: &str, path: &Path) -> Result<Option<Vec<i32>>> {
    let id = |v: &Value| {
        v.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            message: format!("{field}: expected an integer id or a list of them, got {v}"),
        })
    };
    match json.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list.iter().map(id).collect::<Result<_>>()?)),
        Some(v) => Ok(Some(vec![id(v)?])),
    }
}

/// A JSON file, `None` when it does not exist.
pub(crate) fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let json = serde_json::from_str(&text)
        .map_err(|e| Error::Config { path: path.to_path_buf(), message: format!("invalid JSON: {e}") })?;
    Ok(Some(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn special_tokens_read_as_strings_or_added_token_objects() {
        let path = Path::new("tokenizer_config.json");
        let json = json!({"bos_token": null, "eos_token": {"__type": "AddedToken", "content": "<|im_end|>"},
                          "pad_token": "<pad>", "add_bos_token": false});
        let config = TokenizerConfig::from_json(&json, path).unwrap();
        assert_eq!(config.bos_token, None);
        assert_eq!(config.eos_token.as_deref(), Some("<|im_end|>"));
        assert_eq!(config.pad_token.as_deref(), Some("<pad>"));
        assert_eq!(config.add_bos_token, Some(false));
        let err = TokenizerConfig::from_json(&json!({"eos_token": 3}), path).unwrap_err().to_string();
        assert!(err.contains("tokenizer_config.json") && err.contains("eos_token"), "{err}");
    }

    #[test]
    fn template_list_picks_default_or_names_the_choices() {
        let path = Path::new("tokenizer_config.json");
        let list =
            json!({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]});
        assert_eq!(TokenizerConfig::from_json(&list, path).unwrap().chat_template.as_deref(), Some("D"));
        let two = json!({"chat_template": [{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]});
        let err = TokenizerConfig::from_json(&two, path).unwrap_err().to_string();
        assert!(err.contains("chat_template") && err.contains("\"a\""), "{err}");
    }

    #[test]
    fn eos_ids_from_an_int_or_a_list() {
        let path = Path::new("generation_config.json");
        assert_eq!(ids_field(&json!({"eos_token_id": 2}), "eos_token_id", path).unwrap(), Some(vec![2]));
        let list = ids_field(&json!({"eos_token_id": [128001, 128009]}), "eos_token_id", path).unwrap();
        assert_eq!(list, Some(vec![128001, 128009]));
        let err = ids_field(&json!({"eos_token_id": "x"}), "eos_token_id", path).unwrap_err().to_string();
        assert!(err.contains("generation_config.json") && err.contains("eos_token_id"), "{err}");
    }
}
