//! Text normalisation before anything is compared or counted: HTML stripping (optional),
//! removal of control and zero-width characters, Unicode NFKC, whitespace folding.
//!
//! The order matters. Invisible characters go first, because a zero-width joiner between a
//! letter and its combining accent would stop NFKC from composing them. NFKC comes next: it
//! maps full-width forms (`Ａ１`) to ASCII (`A1`), composes `e` + U+0301 into `é`, and turns
//! the ideographic space U+3000 and the no-break space into plain spaces, which the folding
//! then treats like any other space.

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// What [`normalize`] does besides NFKC, control-character removal and whitespace folding,
/// which always happen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NormalizeOptions {
    /// Remove HTML tags (and the contents of `<script>` and `<style>`) and decode entities.
    pub strip_html: bool,
}

/// The normalised form of `text`.
///
/// 1. optional HTML stripping ([`strip_html`]);
/// 2. removal of control characters (Unicode `Cc` except `\n` and `\t`; `\r\n` and `\r`
///    become `\n`) and of invisible format characters (zero-width space / joiners, word
///    joiner, byte-order mark, soft hyphen);
/// 3. NFKC;
/// 4. whitespace folding: every space-like character becomes one ASCII space, runs of spaces
///    collapse to one, spaces at line ends go, three or more line breaks become two (one
///    blank line keeps paragraphs apart), and the whole is trimmed.
///
/// ```
/// use deltaw_train::clean::{normalize, NormalizeOptions};
/// let text = "  Ｈｅｌｌｏ,\u{200b} cafe\u{301}\u{3000}\u{3000}!\r\n\r\n\r\n\r\nbye \t ";
/// assert_eq!(normalize(text, NormalizeOptions::default()), "Hello, café !\n\nbye");
/// ```
pub fn normalize(text: &str, options: NormalizeOptions) -> String {
    let stripped;
    let text = if options.strip_html {
        stripped = strip_html(text);
        stripped.as_str()
    } else {
        text
    };
    if text.is_ascii() {
        return normalize_ascii(text);
    }
    // NFKC leaves ASCII as it is, and unicode-normalization's quick check answers "yes" for
    // most other text already in NFKC (a table lookup per character): either way the full
    // decompose-and-recompose is skipped, its result being its input.
    if is_nfkc_quick(visible_chars(text)) == IsNormalized::Yes {
        return fold_whitespace(visible_chars(text), text.len());
    }
    fold_whitespace(visible_chars(text).nfkc(), text.len())
}

/// [`normalize`] of ASCII text, where NFKC is the identity: the same removals and folding in
/// one pass over bytes (ASCII's control characters are `0..=0x1f` and `0x7f`).
fn normalize_ascii(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let (mut newlines, mut space) = (0usize, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {}
            b'\r' | b'\n' => (newlines, space) = (newlines + 1, false),
            b' ' | b'\t' => space = true,
            0..=0x1f | 0x7f => {}
            _ => {
                if !out.is_empty() && newlines > 0 {
                    out.extend_from_slice(if newlines == 1 { b"\n" } else { b"\n\n" });
                } else if !out.is_empty() && space {
                    out.push(b' ');
                }
                (newlines, space) = (0, false);
                out.push(b);
            }
        }
    }
    String::from_utf8(out).expect("ASCII in, ASCII out")
}

/// The characters of `text` with `\r\n` and `\r` read as `\n` and the characters
/// [`visible_char`] drops removed.
fn visible_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    let mut chars = text.chars().peekable();
    std::iter::from_fn(move || loop {
        let c = chars.next()?;
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue; // the '\n' that follows is the line break
        }
        if let Some(c) = visible_char(c) {
            return Some(c);
        }
    })
}

/// `c` with `\r` read as a line break, or `None` for a character that is dropped.
fn visible_char(c: char) -> Option<char> {
    match c {
        '\r' => Some('\n'),
        '\n' | '\t' => Some(c),
        // Zero-width space, non-joiner, joiner; word joiner; byte-order mark; soft hyphen;
        // left-to-right / right-to-left marks.
        '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{00ad}' | '\u{200e}' | '\u{200f}' => None,
        c if c.is_control() => None,
        c => Some(c),
    }
}

/// Folds runs of whitespace (after NFKC every Unicode space is a space or a line break);
/// `capacity` is a guess of the output's bytes.
fn fold_whitespace(chars: impl Iterator<Item = char>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let mut newlines = 0usize;
    let mut space = false;
    for c in chars {
        if c == '\n' {
            newlines += 1;
            space = false;
        } else if c.is_whitespace() {
            space = true;
        } else {
            if !out.is_empty() {
                if newlines > 0 {
                    out.push_str(if newlines == 1 { "\n" } else { "\n\n" });
                } else if space {
                    out.push(' ');
                }
            }
            newlines = 0;
            space = false;
            out.push(c);
        }
    }
    out
}

/// Text without HTML markup: tags are removed (a block tag such as `<p>`, `<br>`, `<div>`,
/// `<li>` leaves a line break, others nothing), `<script>` and `<style>` lose their contents,
/// comments go, and the common named and numeric entities are decoded. A `<` that does not
/// open a tag (`a < b`) is kept as text.
///
/// ```
/// use deltaw_train::clean::strip_html;
/// assert_eq!(strip_html("<p>a &amp; b</p><script>x()</script>c &lt; d &#20320;"), "\na & b\nc < d 你");
/// ```
pub fn strip_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['<', '&']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with('&') {
            let (decoded, used) = decode_entity(rest);
            out.push_str(&decoded);
            rest = &rest[used..];
        } else if let Some(end) = tag_end(rest) {
            let tag = rest[1..end].trim_start_matches('/').to_ascii_lowercase();
            let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            rest = &rest[end + 1..];
            if (name == "script" || name == "style") && !rest.is_empty() {
                let close = format!("</{name}");
                let lower = rest.to_ascii_lowercase();
                let skip = lower.find(&close).map_or(rest.len(), |i| i + rest[i..].find('>').map_or(0, |j| j + 1));
                rest = &rest[skip..];
            }
            if matches!(name.as_str(), "p" | "br" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6") {
                out.push('\n');
            }
        } else {
            out.push('<');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The index of the `>` closing a tag or comment that starts `text` (which starts with `<`),
/// or `None` when `text` does not start a tag (`<` then a letter, `/`, or `!`).
fn tag_end(text: &str) -> Option<usize> {
    if text.starts_with("<!--") {
        return text.find("-->").map(|i| i + 2);
    }
    let next = text[1..].chars().next()?;
    if !(next.is_ascii_alphabetic() || next == '/' || next == '!') {
        return None;
    }
    text.find('>')
}

/// Decodes the entity at the start of `text` (which starts with `&`): the text it stands for
/// and how many bytes it used; an unknown or unterminated entity is a literal `&`.
fn decode_entity(text: &str) -> (String, usize) {
    let Some(end) = text[..text.len().min(12)].find(';') else {
        return ("&".into(), 1);
    };
    let name = &text[1..end];
    let decoded = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" | "#39" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let number = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                u32::from_str_radix(hex, 16).ok()
            } else {
                name.strip_prefix('#').and_then(|d| d.parse().ok())
            };
            number.and_then(char::from_u32)
        }
    };
    match decoded {
        Some(c) => (c.to_string(), end + 1),
        None => ("&".into(), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        normalize(text, NormalizeOptions::default())
    }

    #[test]
    fn full_width_forms_become_ascii_and_half_width_katakana_full_width() {
        assert_eq!(norm("ＡＢＣ　１２３！？"), "ABC 123!?");
        assert_eq!(norm("ｶﾀｶﾅ"), "カタカナ");
        // Ligatures and compatibility digits are unfolded as NFKC defines.
        assert_eq!(norm("ﬁle ①"), "file 1");
    }

    #[test]
    fn combining_accents_compose_even_across_a_zero_width_joiner() {
        let decomposed = "Cafe\u{301} nai\u{308}ve";
        assert_eq!(norm(decomposed), "Café naïve");
        assert_eq!(norm(decomposed), norm("Café naïve"), "composed and decomposed forms agree");
        assert_eq!(norm("e\u{200d}\u{301}"), "é", "the invisible joiner is removed before composing");
    }

    #[test]
    fn control_and_zero_width_characters_are_removed_but_lines_kept() {
        assert_eq!(norm("a\u{0}b\u{7}c\u{1b}[0m d\u{feff}e\u{ad}f"), "abc[0m def");
        assert_eq!(norm("one\r\ntwo\rthree"), "one\ntwo\nthree");
        assert_eq!(norm("x\t\t y \n\n\n\n z  "), "x y\n\nz");
        assert_eq!(norm(" \u{3000}\u{a0}\n "), "");
    }

    #[test]
    fn the_ascii_path_matches_the_general_one() {
        for text in ["a\r\n\r\n\r\nb", " x\x0b\x0cy \t\n z\r\x00\nw\x7f ", "\r\r\nq", "", " \n "] {
            let general = fold_whitespace(visible_chars(text).nfkc(), 0);
            assert_eq!(normalize_ascii(text), general, "{text:?}");
        }
    }

    #[test]
    fn html_is_stripped_only_on_request_and_plain_less_than_survives() {
        let html = "<div class=\"a\">Hi&nbsp;<b>there</b></div><!-- note --><style>p{}</style>1 < 2";
        assert_eq!(normalize(html, NormalizeOptions { strip_html: true }), "Hi there\n1 < 2");
        assert_eq!(norm("<b>x</b>"), "<b>x</b>");
        assert_eq!(strip_html("AT&T &unknown; &#x4F60;"), "AT&T &unknown; 你");
    }
}
