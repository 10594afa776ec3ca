//! The word splits the text metrics count over: sacrebleu's `13a` and `zh` tokenizers for
//! BLEU, and rouge-score's default tokenizer (or a character tokenizer for Chinese) for ROUGE.
//!
//! Each reproduces its Python reference to the token, quirks included, because a BLEU that
//! differs from sacrebleu's by a tokenisation detail is not comparable with published numbers.
//! Python's notion of whitespace (`str.split()`, `str.strip()`) is used throughout: it is
//! Rust's `char::is_whitespace` plus the four separators U+001C..U+001F.

use serde::{Deserialize, Serialize};

/// How text is cut into the units BLEU and ROUGE count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Segmentation {
    /// Decide from the references: [`Segmentation::Chinese`] when any holds a Han character,
    /// else [`Segmentation::Words`].
    #[default]
    Auto,
    /// Words: BLEU with sacrebleu's `13a` tokenizer, ROUGE with rouge-score's default one
    /// (lower-cased runs of `[a-z0-9]`, no stemming).
    Words,
    /// Characters for Chinese, which has no spaces: BLEU with sacrebleu's `zh` tokenizer (each
    /// CJK character a token, `13a` for the rest), ROUGE with every Han character a token and
    /// rouge-score's rule for the rest.
    Chinese,
}

impl Segmentation {
    /// `Auto` resolved against `references`; the others are returned as they are.
    pub fn resolve<S: AsRef<str>>(self, references: &[S]) -> Segmentation {
        match self {
            Segmentation::Auto if references.iter().any(|r| r.as_ref().chars().any(is_han)) => Segmentation::Chinese,
            Segmentation::Auto => Segmentation::Words,
            other => other,
        }
    }

    /// BLEU's tokens of one segment (`Auto` counts as `Words`).
    pub fn bleu_tokens(self, text: &str) -> Vec<String> {
        match self {
            Segmentation::Chinese => tokenize_zh(text),
            _ => tokenize_13a(text),
        }
    }

    /// ROUGE's tokens of one segment (`Auto` counts as `Words`).
    pub fn rouge_tokens(self, text: &str) -> Vec<String> {
        rouge_tokens(text, self == Segmentation::Chinese)
    }
}

/// Python's `str.isspace()`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Han ideographs: the CJK Unified Ideographs, extension A, the compatibility ideographs and
/// the supplementary planes' extensions. The unit of Chinese ROUGE.
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// The characters sacrebleu's `zh` tokenizer puts spaces around, as it really behaves. Its
/// table writes two supplementary ranges as `'\u20000'` and `'\u2f800'`, which Python reads
/// as two characters each (`'\u2000' + '0'`); compared as strings they become U+2001..=U+2A6D
/// (general punctuation, arrows, symbols) and U+2F81..=U+2FA1 (inside the Kangxi radicals,
/// already covered). Mapped over every code point with sacrebleu 2.6.0.
fn is_zh_split_char(c: char) -> bool {
    matches!(
        c as u32,
        0x2001..=0x2A6D
            | 0x2E80..=0x2FDF
            | 0x2FF0..=0x303F
            | 0x3100..=0x312F
            | 0x31A0..=0x31EF
            | 0x3200..=0x4DB5
            | 0x4E00..=0x9FBB
            | 0xF900..=0xFA2D
            | 0xFA30..=0xFA6A
            | 0xFA70..=0xFAD9
            | 0xFE10..=0xFE1F
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFFEF
    )
}

/// sacrebleu's `13a` (mteval-v13a) tokenizer, after its `rstrip()`: drop `<skipped>`, join
/// lines (`-\n` glued, `\n` a space), unescape four HTML entities, then the regexp pass.
pub fn tokenize_13a(text: &str) -> Vec<String> {
    let mut line = text.trim_end_matches(is_py_space).replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    regexp_pass(&format!(" {line} "))
}

/// sacrebleu's `zh` tokenizer: strip (sacrebleu's `rstrip()`, then the tokenizer's `strip()`), a space either side of each character of its table
/// (`is_zh_split_char`), then the same regexp pass as `13a`.
pub fn tokenize_zh(text: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(text.len() * 2);
    for c in text.trim_matches(is_py_space).chars() {
        if is_zh_split_char(c) {
            spaced.extend([' ', c, ' ']);
        } else {
            spaced.push(c);
        }
    }
    regexp_pass(&spaced)
}

/// sacrebleu's `TokenizerRegexp`: four `re.sub` passes, then split on whitespace.
///
/// 1. `([\{-\~\[-\` -\&\(-\+\:-\@\/])` → ` \1 `: a space either side of most ASCII
///    punctuation (`{|}~ [\]^_` `` ` `` ` !"#$%& ()*+ :;<=>?@ /`; not `-`, `.`, `,`, `'`);
/// 2. `([^0-9])([\.,])` → `\1 \2 `: period and comma split unless after a digit;
/// 3. `([\.,])([^0-9])` → ` \1 \2`: ... unless before a digit (so `3.14` and `1,000` stay);
/// 4. `([0-9])(-)` → `\1 \2 `: a dash after a digit.
fn regexp_pass(line: &str) -> Vec<String> {
    let mut chars: Vec<char> = Vec::with_capacity(line.len() * 2);
    for c in line.chars() {
        if matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/') {
            chars.extend([' ', c, ' ']);
        } else {
            chars.push(c);
        }
    }
    let digit = |c: char| c.is_ascii_digit();
    let period_comma = |c: char| c == '.' || c == ',';
    let chars = sub_pairs(&chars, |a| !digit(a), period_comma, |a, b| vec![a, ' ', b, ' ']);
    let chars = sub_pairs(&chars, period_comma, |b| !digit(b), |a, b| vec![' ', a, ' ', b]);
    let chars = sub_pairs(&chars, digit, |b| b == '-', |a, b| vec![a, ' ', b, ' ']);
    let text: String = chars.into_iter().collect();
    text.split(is_py_space).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

/// `re.sub` of a two-character pattern `(first)(second)`: matches are found left to right and
/// never overlap, so after a match the scan resumes past both characters.
fn sub_pairs(
    chars: &[char],
    first: impl Fn(char) -> bool,
    second: impl Fn(char) -> bool,
    replace: impl Fn(char, char) -> Vec<char>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 4);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && first(chars[i]) && second(chars[i + 1]) {
            out.extend(replace(chars[i], chars[i + 1]));
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// rouge-score's default tokenizer without stemming: lower-case (Unicode, as Python's
/// `str.lower`), every run of characters outside `[a-z0-9]` is a separator. With `chinese`,
/// each Han character is also a token of its own, in place.
fn rouge_tokens(text: &str, chinese: bool) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if chinese && is_han(c) {
            tokens.push(c.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(tokens: Vec<String>) -> String {
        tokens.join(" ")
    }

    #[test]
    fn thirteen_a_keeps_numbers_and_splits_punctuation() {
        assert_eq!(
            joined(tokenize_13a("Hello, world! It costs $3.50 (1,000 units).")),
            "Hello , world ! It costs $ 3.50 ( 1,000 units ) ."
        );
        assert_eq!(
            joined(tokenize_13a("in 2019-2020 the e-mail's &quot;x&quot;")),
            "in 2019 - 2020 the e-mail's \" x \""
        );
        assert_eq!(joined(tokenize_13a("a..b")), "a . . b");
    }

    #[test]
    fn zh_splits_characters_and_keeps_latin_words() {
        assert_eq!(joined(tokenize_zh(" 我爱北京，GPU 3.5倍。")), "我 爱 北 京 ， GPU 3.5 倍 。");
    }

    #[test]
    fn rouge_tokens_are_lowercase_alphanumeric_runs() {
        assert_eq!(rouge_tokens("The cat's 2nd-best café!", false), ["the", "cat", "s", "2nd", "best", "caf"]);
        assert_eq!(rouge_tokens("我爱GPU们", true), ["我", "爱", "gpu", "们"]);
        assert_eq!(Segmentation::Auto.resolve(&["abc", "中文"]), Segmentation::Chinese);
        assert_eq!(Segmentation::Auto.resolve(&["abc"]), Segmentation::Words);
    }
}
