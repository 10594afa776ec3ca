//! One record being cleaned, kept as its JSON so the output has the input's layout: the text
//! fields are rewritten in place and everything else (ids, metadata) passes through.
//!
//! Layouts, decided per record from its keys as `data::formats` does:
//! - Alpaca: `instruction`, `input`, `output`, `system`; the answer is `output`.
//! - ShareGPT: `system` and each `conversations[i].value`; answers are the `gpt` turns.
//! - OpenAI messages: each `messages[i].content`; answers are the `assistant` turns.
//! - plain text: a paragraph of a text file, written out as `{"text": ...}`; the answer is
//!   the text itself.

use crate::data::formats::{to_conversation, DataFormat};
use crate::data::Role;
use serde_json::{Map, Value};

/// A parsed record and its layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub layout: Layout,
    pub json: Value,
}

/// Which layout a record has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Alpaca,
    ShareGpt,
    Messages,
    Text,
}

/// The Alpaca fields that hold text.
const ALPACA_FIELDS: [&str; 4] = ["system", "instruction", "input", "output"];

impl Record {
    /// A record of a JSON or JSONL file. It must be a valid SFT record (the checks of
    /// `data::formats`, so what `clean` keeps, `sft` accepts); the message says what is wrong.
    pub fn from_json(line: &str) -> Result<Record, String> {
        let json: Value = serde_json::from_str(line).map_err(|e| {
            let message = e.to_string();
            let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m).to_string();
            format!("invalid JSON at column {}: {message}", e.column())
        })?;
        to_conversation(&json, DataFormat::Auto, "\n")?;
        let object = json.as_object().expect("to_conversation accepted an object");
        let layout = if object.contains_key("conversations") {
            Layout::ShareGpt
        } else if object.contains_key("messages") {
            Layout::Messages
        } else {
            Layout::Alpaca
        };
        Ok(Record { layout, json })
    }

    /// A paragraph of a plain text file.
    pub fn from_text(text: &str) -> Record {
        let mut object = Map::new();
        object.insert("text".into(), Value::String(text.to_string()));
        Record { layout: Layout::Text, json: Value::Object(object) }
    }

    /// Applies `f` to every text field, in a fixed order (so anything counted is the same
    /// on every run).
    pub fn map_texts(&mut self, mut f: impl FnMut(&str) -> String) {
        let object = self.json.as_object_mut().expect("records are objects");
        let mut apply = |value: &mut Value| {
            if let Value::String(s) = value {
                *s = f(s);
            }
        };
        match self.layout {
            Layout::Text => object.get_mut("text").into_iter().for_each(apply),
            Layout::Alpaca => {
                for key in ALPACA_FIELDS {
                    object.get_mut(key).into_iter().for_each(&mut apply);
                }
            }
            Layout::ShareGpt | Layout::Messages => {
                object.get_mut("system").into_iter().for_each(&mut apply);
                let (key, _, text_key) = self.layout.turn_keys();
                for message in object.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten() {
                    message.get_mut(text_key).into_iter().for_each(&mut apply);
                }
            }
        }
    }

    /// All non-empty text fields in [`Record::map_texts`]'s order, joined by line breaks:
    /// what is measured, filtered and hashed.
    pub fn text(&self) -> String {
        let object = self.json.as_object().expect("records are objects");
        let mut values: Vec<Option<&Value>> = Vec::new();
        match self.layout {
            Layout::Text => values.push(object.get("text")),
            Layout::Alpaca => values.extend(ALPACA_FIELDS.iter().map(|key| object.get(*key))),
            Layout::ShareGpt | Layout::Messages => {
                values.push(object.get("system"));
                let (key, _, text_key) = self.layout.turn_keys();
                for message in object.get(key).and_then(Value::as_array).into_iter().flatten() {
                    values.push(message.get(text_key));
                }
            }
        }
        let parts: Vec<&str> =
            values.into_iter().filter_map(|v| v.and_then(Value::as_str)).filter(|s| !s.is_empty()).collect();
        parts.join("\n")
    }

    /// The answers: Alpaca's `output`, the assistant turns of a conversation, a text's text.
    pub fn answers(&self) -> Vec<&str> {
        let object = self.json.as_object().expect("records are objects");
        match self.layout {
            Layout::Text => vec![str_of(object.get("text"))],
            Layout::Alpaca => vec![str_of(object.get("output"))],
            Layout::ShareGpt | Layout::Messages => {
                let (key, role_key, text_key) = self.layout.turn_keys();
                let turns = object.get(key).and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                turns
                    .iter()
                    .filter(|m| m.get(role_key).and_then(Value::as_str).and_then(Role::parse) == Some(Role::Assistant))
                    .map(|m| str_of(m.get(text_key)))
                    .collect()
            }
        }
    }

    /// One line of the output JSONL.
    pub fn to_line(&self) -> String {
        serde_json::to_string(&self.json).expect("a JSON value serialises")
    }
}

/// The string a field holds, `""` when absent or not a string.
fn str_of(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or("")
}

impl Layout {
    /// `(list key, role key, text key)` of a conversation layout.
    fn turn_keys(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Layout::Messages => ("messages", "role", "content"),
            _ => ("conversations", "from", "value"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_exposes_its_texts_and_answers() {
        let alpaca = Record::from_json(r#"{"instruction": "Q", "input": "", "output": "A", "id": 7}"#).unwrap();
        assert_eq!((alpaca.layout, alpaca.text(), alpaca.answers()), (Layout::Alpaca, "Q\nA".into(), vec!["A"]));
        let share = r#"{"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}"#;
        let share = Record::from_json(share).unwrap();
        assert_eq!((share.layout, share.answers()), (Layout::ShareGpt, vec!["A"]));
        let messages = r#"{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": " "}]}"#;
        let messages = Record::from_json(messages).unwrap();
        assert_eq!((messages.layout, messages.answers()), (Layout::Messages, vec![" "]));
        assert_eq!(Record::from_text("t").to_line(), r#"{"text":"t"}"#);
    }

    #[test]
    fn map_texts_rewrites_fields_in_place_and_keeps_the_rest() {
        let mut record = Record::from_json(r#"{"instruction": "q", "output": "a", "id": 7}"#).unwrap();
        record.map_texts(|s| s.to_uppercase());
        assert_eq!(record.to_line(), r#"{"id":7,"instruction":"Q","output":"A"}"#);
    }

    #[test]
    fn invalid_records_are_explained() {
        assert!(Record::from_json("{oops").unwrap_err().starts_with("invalid JSON at column 2"));
        assert!(Record::from_json(r#"{"prompt": "x"}"#).unwrap_err().contains("cannot tell the format"));
        assert!(Record::from_json(r#"{"instruction": "x"}"#).unwrap_err().contains("missing field 'output'"));
    }
}
