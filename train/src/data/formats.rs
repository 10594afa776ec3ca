//! Reading SFT files: a JSON array or JSONL of Alpaca, ShareGPT or OpenAI-messages records,
//! each turned into a [`Conversation`].
//!
//! - Alpaca: `{"instruction", "input"?, "output", "system"?}`.
//! - ShareGPT: `{"conversations": [{"from", "value"}, ..], "system"?}`.
//! - OpenAI: `{"messages": [{"role", "content"}, ..]}` (read as ShareGPT).
//!
//! Roles: `human`/`user` → user, `gpt`/`assistant`/`model` → assistant, `system` → system.

use super::conversation::{Conversation, Role};
use crate::error::{Error, Location, Result};
use serde_json::{Map, Value};
use std::path::Path;
use std::str::FromStr;

/// Which record layout a file uses. `Auto` decides per record from its keys, so a file may
/// mix layouts; forcing one gives clearer errors on a file that should be uniform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    #[default]
    Auto,
    Alpaca,
    ShareGpt,
}

impl FromStr for DataFormat {
    type Err = Error;

    /// `auto`, `alpaca` or `sharegpt` (as the CLI's `--format` takes it).
    fn from_str(name: &str) -> Result<DataFormat> {
        match name {
            "auto" => Ok(DataFormat::Auto),
            "alpaca" => Ok(DataFormat::Alpaca),
            "sharegpt" => Ok(DataFormat::ShareGpt),
            other => Err(Error::Options(format!("unknown data format '{other}': use auto, alpaca or sharegpt"))),
        }
    }
}

/// One record of a file before it is understood: where it is, and its JSON or why it is not.
pub(crate) struct RawRecord {
    pub location: Location,
    pub json: std::result::Result<Value, String>,
}

/// Splits `text` into records. A file whose first non-blank character is `[` is one JSON array
/// (then invalid JSON fails the whole file, since no record can be told apart); anything else is
/// JSONL, one record per non-blank line, where a broken line is only that record's problem.
pub(crate) fn split_records(text: &str, path: &Path) -> Result<Vec<RawRecord>> {
    let text = text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('[') {
        let items: Vec<Value> =
            serde_json::from_str(text).map_err(|e| Error::Json { path: path.to_path_buf(), message: e.to_string() })?;
        let records = items.into_iter().enumerate();
        return Ok(records.map(|(i, json)| RawRecord { location: Location::Record(i), json: Ok(json) }).collect());
    }
    let lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
    Ok(lines.map(|(i, line)| RawRecord { location: Location::Line(i + 1), json: parse_line(line) }).collect())
}

/// One JSONL line. serde's message ends "at line 1 column N", which would read as the file's
/// line 1; keep the column only.
fn parse_line(line: &str) -> std::result::Result<Value, String> {
    serde_json::from_str(line).map_err(|e| {
        let message = e.to_string();
        let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
        format!("invalid JSON at column {}: {message}", e.column())
    })
}

/// The conversation of one record. `input_separator` joins an Alpaca `input` to its
/// `instruction` (it belongs to the template, see [`super::PromptTemplate::alpaca_input`]).
pub(crate) fn to_conversation(
    json: &Value,
    format: DataFormat,
    input_separator: &str,
) -> std::result::Result<Conversation, String> {
    let object = json.as_object().ok_or_else(|| format!("expected a JSON object, found {}", kind(json)))?;
    let format = match format {
        DataFormat::Auto => detect(object)?,
        forced => forced,
    };
    match format {
        DataFormat::Alpaca => alpaca(object, input_separator),
        _ => sharegpt(object),
    }
}

/// The layout of a record, from the keys only the layout has.
fn detect(object: &Map<String, Value>) -> std::result::Result<DataFormat, String> {
    if object.contains_key("conversations") || object.contains_key("messages") {
        Ok(DataFormat::ShareGpt)
    } else if object.contains_key("instruction") {
        Ok(DataFormat::Alpaca)
    } else {
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        Err(format!(
            "cannot tell the format: expected 'instruction' (Alpaca), 'conversations' (ShareGPT) or 'messages' \
             (OpenAI), found keys [{}]",
            keys.join(", ")
        ))
    }
}

fn alpaca(object: &Map<String, Value>, input_separator: &str) -> std::result::Result<Conversation, String> {
    let mut user = required_string(object, "instruction")?;
    if let Some(input) = optional_string(object, "input")?.filter(|input| !input.is_empty()) {
        user = format!("{user}{input_separator}{input}");
    }
    let output = required_string(object, "output")?;
    Ok(Conversation::single_turn(optional_string(object, "system")?, user, output))
}

fn sharegpt(object: &Map<String, Value>) -> std::result::Result<Conversation, String> {
    let (key, role_key, text_key) = if object.contains_key("conversations") {
        ("conversations", "from", "value")
    } else if object.contains_key("messages") {
        ("messages", "role", "content")
    } else {
        return Err("missing field 'conversations' (ShareGPT) or 'messages' (OpenAI)".into());
    };
    let list = object[key].as_array().ok_or_else(|| format!("'{key}' must be a list, found {}", kind(&object[key])))?;
    let mut messages = Vec::with_capacity(list.len());
    for (i, message) in list.iter().enumerate() {
        let message = message.as_object().ok_or_else(|| format!("{key}[{i}] must be an object"))?;
        let role_name = required_string(message, role_key).map_err(|e| format!("{key}[{i}]: {e}"))?;
        let role = Role::parse(&role_name).ok_or_else(|| {
            format!("{key}[{i}]: unknown role '{role_name}' (use human/user, gpt/assistant/model or system)")
        })?;
        let text = required_string(message, text_key).map_err(|e| format!("{key}[{i}]: {e}"))?;
        messages.push((role, text));
    }
    Conversation::from_messages(optional_string(object, "system")?, messages)
}

fn required_string(object: &Map<String, Value>, key: &str) -> std::result::Result<String, String> {
    optional_string(object, key)?.ok_or_else(|| format!("missing field '{key}'"))
}

/// A string field; absent or `null` is `None`, any other type an error.
fn optional_string(object: &Map<String, Value>, key: &str) -> std::result::Result<Option<String>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("field '{key}' must be a string, found {}", kind(other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alpaca_input_is_joined_to_the_instruction_only_when_non_empty() {
        let record = json!({"instruction": "Do it.", "input": "Now.", "output": "Done.", "system": "Be nice."});
        let c = to_conversation(&record, DataFormat::Auto, " | ").unwrap();
        assert_eq!(c.system.as_deref(), Some("Be nice."));
        assert_eq!(c.turns, vec![(Role::User, "Do it. | Now.".into()), (Role::Assistant, "Done.".into())]);
        let empty_input = json!({"instruction": "Do it.", "input": "", "output": "Done."});
        assert_eq!(to_conversation(&empty_input, DataFormat::Alpaca, " | ").unwrap().turns[0].1, "Do it.");
    }

    #[test]
    fn openai_messages_and_sharegpt_roles_are_read() {
        let record = json!({"messages": [
            {"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "model", "content": "A"}]});
        let c = to_conversation(&record, DataFormat::ShareGpt, "").unwrap();
        assert_eq!(c.system.as_deref(), Some("S"));
        assert_eq!(c.turns[1], (Role::Assistant, "A".into()));
        let unknown = json!({"conversations": [{"from": "robot", "value": "Q"}]});
        assert!(to_conversation(&unknown, DataFormat::Auto, "").unwrap_err().contains("unknown role 'robot'"));
    }

    #[test]
    fn wrong_types_and_unknown_layouts_are_explained() {
        let no_output = json!({"instruction": "Q"});
        assert_eq!(to_conversation(&no_output, DataFormat::Auto, "").unwrap_err(), "missing field 'output'");
        let number = json!({"instruction": "Q", "output": 3});
        assert!(to_conversation(&number, DataFormat::Auto, "").unwrap_err().contains("must be a string"));
        let unknown = json!({"prompt": "Q"});
        assert!(to_conversation(&unknown, DataFormat::Auto, "").unwrap_err().contains("found keys [prompt]"));
        let forced = json!({"instruction": "Q", "output": "A"});
        assert!(to_conversation(&forced, DataFormat::ShareGpt, "").unwrap_err().contains("'conversations'"));
    }

    #[test]
    fn jsonl_lines_are_numbered_from_one_and_blank_lines_skipped() {
        let records = split_records("{\"a\": 1}\n\n{oops\n", Path::new("f.jsonl")).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].location, Location::Line(3));
        assert!(records[1].json.as_ref().unwrap_err().starts_with("invalid JSON at column 2"));
        let array = split_records("  [{\"a\": 1}, {\"b\": 2}]", Path::new("f.json")).unwrap();
        assert_eq!(array[1].location, Location::Record(1));
    }
}
