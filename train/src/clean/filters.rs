//! The quality filters: each is a named [`Rule`] with its own setting, tried in a fixed order
//! on the normalised, masked record; the first that fires removes the record.

use super::minhash::{hash_bytes, hash_word};
use deltaw_tensor::mix64;

/// Why a record was removed. The names are the keys of the report's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// An answer is empty or only whitespace after normalisation.
    EmptyAnswer,
    /// Shorter than `min_length` (tokens with a tokenizer, characters otherwise).
    TooShort,
    /// Longer than `max_length`.
    TooLong,
    /// Letters and digits are less than `min_alnum` of the non-space characters.
    LowAlnum,
    /// More than `max_repeated_lines` of the non-blank lines repeat an earlier line.
    RepeatedLines,
    /// More than `max_repeated_ngrams` of the word n-grams repeat an earlier one.
    RepeatedNgrams,
    /// The detected language is not one of `languages`.
    Language,
    /// Equal, after normalisation and masking, to an earlier record.
    ExactDuplicate,
    /// Shares an LSH band with an earlier kept record.
    NearDuplicate,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::EmptyAnswer,
        Rule::TooShort,
        Rule::TooLong,
        Rule::LowAlnum,
        Rule::RepeatedLines,
        Rule::RepeatedNgrams,
        Rule::Language,
        Rule::ExactDuplicate,
        Rule::NearDuplicate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::EmptyAnswer => "empty_answer",
            Rule::TooShort => "too_short",
            Rule::TooLong => "too_long",
            Rule::LowAlnum => "low_alnum",
            Rule::RepeatedLines => "repeated_lines",
            Rule::RepeatedNgrams => "repeated_ngrams",
            Rule::Language => "language",
            Rule::ExactDuplicate => "exact_duplicate",
            Rule::NearDuplicate => "near_duplicate",
        }
    }
}

/// The filters' settings. `None` turns a length or language filter off.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FilterOptions {
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// Least share of letters and digits among non-space characters (0 turns it off).
    pub min_alnum: f64,
    /// Largest share of non-blank lines that repeat an earlier line (1 turns it off).
    pub max_repeated_lines: f64,
    /// Largest share of n-grams that repeat an earlier n-gram (1 turns it off).
    pub max_repeated_ngrams: f64,
    /// `n` of those n-grams, over words (a CJK character counts as a word).
    pub ngram_size: usize,
    /// Languages to keep, as whatlang's ISO 639-3 codes (`cmn`, `eng`); empty keeps all.
    pub languages: Vec<String>,
}

impl Default for FilterOptions {
    fn default() -> FilterOptions {
        FilterOptions {
            min_length: Some(1),
            max_length: None,
            min_alnum: 0.25,
            max_repeated_lines: 0.3,
            max_repeated_ngrams: 0.5,
            ngram_size: 3,
            languages: Vec::new(),
        }
    }
}

/// The first rule `text` breaks, in [`Rule::ALL`] order, or `None` when it passes them all.
/// `answers` are the record's answer fields, `length` its length in the filter's unit.
///
/// ```
/// use deltaw_train::clean::{check_filters, FilterOptions, Rule};
/// let options = FilterOptions::default();
/// assert_eq!(check_filters("Q\nA", &["A"], 3, &options), None);
/// assert_eq!(check_filters("Q", &[" "], 1, &options), Some(Rule::EmptyAnswer));
/// assert_eq!(check_filters("?? !! ..", &["?? !! .."], 8, &options), Some(Rule::LowAlnum));
/// ```
pub fn check_filters(text: &str, answers: &[&str], length: usize, options: &FilterOptions) -> Option<Rule> {
    if answers.is_empty() || answers.iter().any(|a| a.trim().is_empty()) {
        return Some(Rule::EmptyAnswer);
    }
    if options.min_length.is_some_and(|min| length < min) {
        return Some(Rule::TooShort);
    }
    if options.max_length.is_some_and(|max| length > max) {
        return Some(Rule::TooLong);
    }
    if alnum_share(text) < options.min_alnum {
        return Some(Rule::LowAlnum);
    }
    if repeated_line_share(text) > options.max_repeated_lines {
        return Some(Rule::RepeatedLines);
    }
    if repeated_ngram_share(text, options.ngram_size) > options.max_repeated_ngrams {
        return Some(Rule::RepeatedNgrams);
    }
    if !options.languages.is_empty() && !language_allowed(text, &options.languages) {
        return Some(Rule::Language);
    }
    None
}

/// Letters and digits (any script) over non-whitespace characters; 1 for a text of spaces.
pub fn alnum_share(text: &str) -> f64 {
    let (mut alnum, mut visible) = (0usize, 0usize);
    if text.is_ascii() {
        // The same counts over bytes: ASCII's Unicode whitespace is \t..=\r and the space.
        for b in text.bytes().filter(|b| !matches!(b, b'\t'..=b'\r' | b' ')) {
            visible += 1;
            alnum += usize::from(b.is_ascii_alphanumeric());
        }
    } else {
        for c in text.chars().filter(|c| !c.is_whitespace()) {
            visible += 1;
            alnum += usize::from(c.is_alphanumeric());
        }
    }
    if visible == 0 {
        1.0
    } else {
        alnum as f64 / visible as f64
    }
}

/// The share of non-blank lines equal (after trimming) to an earlier line of the text.
pub fn repeated_line_share(text: &str) -> f64 {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let hashes = lines.iter().map(|line| hash_bytes(line.as_bytes())).collect();
    repeated_share(&lines, hashes)
}

/// The share of `n`-grams of words equal to an earlier `n`-gram. Words are runs of
/// non-space characters, except that each CJK character is a word of its own.
pub fn repeated_ngram_share(text: &str, n: usize) -> f64 {
    let words = words(text);
    if n == 0 || words.len() < n {
        return 0.0;
    }
    // Each word is hashed once; an n-gram's hash is one finaliser over its words' hashes,
    // each rotated by its position (collisions only cost a comparison).
    let word_hashes: Vec<u64> = words.iter().map(|w| hash_word(w.as_bytes())).collect();
    let hashes = word_hashes
        .windows(n)
        .map(|w| mix64(w.iter().zip(0u32..).fold(0u64, |h, (&x, k)| h.wrapping_add(x.rotate_left(17 * k)))))
        .collect();
    let grams: Vec<&[&str]> = words.windows(n).collect();
    repeated_share(&grams, hashes)
}

/// The share of `items` equal to an earlier item, given a hash of each: items are sorted by
/// hash, and within a run of equal hashes each item is compared with the distinct items of
/// the run met so far, so the count is exact whatever the hashes collide on, and costs a sort
/// of 12-byte pairs instead of a hash set of the items.
fn repeated_share<T: Eq>(items: &[T], hashes: Vec<u64>) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    let mut order: Vec<(u64, u32)> = hashes.into_iter().zip(0u32..).collect();
    order.sort_unstable();
    let mut repeats = 0usize;
    let mut distinct: Vec<usize> = Vec::new();
    for (k, &(hash, i)) in order.iter().enumerate() {
        if k == 0 || order[k - 1].0 != hash {
            distinct.clear();
        }
        let item = &items[i as usize];
        if distinct.iter().any(|&d| items[d] == *item) {
            repeats += 1;
        } else {
            distinct.push(i as usize);
        }
    }
    repeats as f64 / items.len() as f64
}

/// Runs of non-space characters, with each CJK character split off as a word of its own.
pub(crate) fn words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for run in text.split_whitespace() {
        let mut start = 0;
        for (i, c) in run.char_indices() {
            if is_cjk(c) {
                if start < i {
                    words.push(&run[start..i]);
                }
                words.push(&run[i..i + c.len_utf8()]);
                start = i + c.len_utf8();
            }
        }
        if start < run.len() {
            words.push(&run[start..]);
        }
    }
    words
}

/// Han ideographs, kana and Hangul: scripts written without spaces between words.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff)
}

/// True when whatlang detects one of `languages` (ISO 639-3 codes), or detects nothing
/// (too little text to tell: such a record is kept, not guessed away).
fn language_allowed(text: &str, languages: &[String]) -> bool {
    match whatlang::detect_lang(text) {
        Some(lang) => languages.iter().any(|code| code == lang.code()),
        None => true,
    }
}

/// The ISO 639-3 code whatlang uses for a language named by its ISO 639-1 code (`zh`, `en`,
/// ...) or already by its 639-3 code.
///
/// # Errors
/// A code whatlang does not know.
pub fn language_code(name: &str) -> Result<String, String> {
    let name = name.trim().to_ascii_lowercase();
    let three = match name.as_str() {
        "zh" => "cmn",
        "en" => "eng",
        "ja" => "jpn",
        "ko" => "kor",
        "fr" => "fra",
        "de" => "deu",
        "es" => "spa",
        "ru" => "rus",
        "pt" => "por",
        "it" => "ita",
        "ar" => "ara",
        "hi" => "hin",
        "nl" => "nld",
        "tr" => "tur",
        "vi" => "vie",
        other => other,
    };
    whatlang::Lang::from_code(three)
        .map(|lang| lang.code().to_string())
        .ok_or_else(|| format!("unknown language '{name}': use ISO 639-1 (zh, en, ...) or 639-3 (cmn, eng, ...) codes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_fires_on_its_own_case() {
        let options = FilterOptions { max_length: Some(50), languages: vec!["eng".into()], ..Default::default() };
        let long = "x".repeat(60);
        let cases = [
            ("Q\n   ", vec!["   "], Some(Rule::EmptyAnswer)),
            ("Q\nA", vec!["A"], Some(Rule::TooShort)),
            (long.as_str(), vec!["x"], Some(Rule::TooLong)),
            ("#### ---- **** a", vec!["a"], Some(Rule::LowAlnum)),
            ("hello there\nhello there\nhello there", vec!["a"], Some(Rule::RepeatedLines)),
            ("buy now buy now buy now buy now", vec!["a"], Some(Rule::RepeatedNgrams)),
            ("Le chat est assis sur le tapis dans la maison", vec!["a"], Some(Rule::Language)),
            ("The cat sits on the mat in the house", vec!["a"], None),
        ];
        for (text, answers, expected) in cases {
            let length = if text == "Q\nA" { 0 } else { text.chars().count() };
            assert_eq!(check_filters(text, &answers, length, &options), expected, "{text:?}");
        }
    }

    #[test]
    fn repeats_are_counted_exactly_even_when_hashes_collide() {
        let items = ["a", "b", "a", "c", "b", "a"];
        assert_eq!(repeated_share(&items, vec![1; 6]), 0.5, "one shared hash: items still compared");
        assert_eq!(repeated_share(&items, vec![1, 2, 1, 3, 2, 1]), 0.5);
        assert_eq!(repeated_line_share("x\n y \n\ny\nx\nz"), 0.4);
    }

    #[test]
    fn cjk_characters_are_words_of_their_own() {
        assert_eq!(words("我爱 Rust代码!"), ["我", "爱", "Rust", "代", "码", "!"]);
        assert_eq!(alnum_share("中文，"), 2.0 / 3.0);
        assert_eq!((alnum_share("ab\u{b}#\u{1c}"), alnum_share("ab\u{b}#\u{1c}é")), (0.5, 0.6), "ASCII and char paths");
        assert!(repeated_ngram_share("好好好好好好好好", 2) > 0.8);
    }

    #[test]
    fn language_codes_are_read_in_both_iso_forms() {
        assert_eq!(language_code("zh").unwrap(), "cmn");
        assert_eq!(language_code("ENG").unwrap(), "eng");
        assert!(language_code("xx").unwrap_err().contains("unknown language 'xx'"));
    }
}
