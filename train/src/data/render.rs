//! A sample drawn as text for `deltaw inspect-data`: every token visible, trained ones marked,
//! readable in any terminal (no colours), so a wrong template or mask is caught by eye.

use super::codec::TextCodec;
use super::dataset::Sample;
use super::template::IGNORE_INDEX;
use std::fmt::Write;

impl Sample {
    /// The tokens as text: trained tokens (label ≠ -100) in `[brackets]`, neighbouring
    /// untrained ones split by `|`, EOS as `<eos>`, and a token that decodes to nothing as
    /// `<id N>`. Newlines, tabs and the marker characters are escaped (`\n`, `\t`, `\|`, `\[`,
    /// `\]`, `\\`); the output still breaks its line after each token that ends in a newline,
    /// so the prompt keeps its shape. A first line gives the counts. For example, with
    /// [`super::ByteCodec`] and the prompt `"Q:\n"` trained on `"ok"`:
    ///
    /// ```text
    /// 6 tokens, 3 trained ([bracketed]; untrained split by |)
    /// Q|:|\n
    /// [o][k][<eos>]
    /// ```
    pub fn render(&self, codec: &dyn TextCodec) -> String {
        let mut out =
            format!("{} tokens, {} trained ([bracketed]; untrained split by |)\n", self.len(), self.trained_tokens());
        // Whether the token just written on this line was untrained: then `|` separates.
        let mut after_untrained = false;
        for (&id, &label) in self.input_ids.iter().zip(&self.labels) {
            let text = if id == codec.eos_id() { None } else { codec.decode(&[id]).ok().filter(|t| !t.is_empty()) };
            let shown = match &text {
                None if id == codec.eos_id() => "<eos>".to_string(),
                None => format!("<id {id}>"),
                Some(text) => escape(text),
            };
            if label != IGNORE_INDEX {
                let _ = write!(out, "[{shown}]");
                after_untrained = false;
            } else {
                if after_untrained {
                    out.push('|');
                }
                out.push_str(&shown);
                after_untrained = true;
            }
            if text.is_some_and(|t| t.ends_with('\n')) {
                out.push('\n');
                after_untrained = false;
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

/// `text` with whitespace other than spaces, control characters and the markers escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' | '|' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ByteCodec;

    #[test]
    fn render_marks_trained_tokens_and_escapes_newlines() {
        let mut sample = Sample::default();
        sample.push(&ByteCodec.encode("Q:\n").unwrap(), false);
        sample.push(&[111, 107, ByteCodec::EOS_ID], true);
        let expected = "6 tokens, 3 trained ([bracketed]; untrained split by |)\nQ|:|\\n\n[o][k][<eos>]\n";
        assert_eq!(sample.render(&ByteCodec), expected);
    }

    #[test]
    fn markers_and_control_characters_are_escaped() {
        assert_eq!(escape("a|[b]\\\t\u{1}"), "a\\|\\[b\\]\\\\\\t\\u{1}");
    }
}
