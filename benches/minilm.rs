//! Shared setup of the sentence-embedding benchmarks: where the real all-MiniLM-L6-v2 folder is,
//! and 256 deterministic texts of 128 tokens that `compare_minilm.py` generates identically.
//!
//! Each text is [`WORDS`] words drawn from [`VOCAB`] by a 64-bit LCG (Knuth's MMIX constants,
//! index = bits 33.. of the state mod 64), joined by spaces and ended by ".". Every word is one
//! WordPiece of BERT's uncased vocabulary, so a text is 125 words + "." + `[CLS]` + `[SEP]` = 128.

use std::path::PathBuf;

/// Texts per run and per forward pass (sentence-transformers' default batch size).
pub const SENTENCES: usize = 256;
pub const BATCH: usize = 32;
/// Words per text.
pub const WORDS: usize = 125;
/// Seed of the LCG; the Python peer uses the same.
pub const SEED: u64 = 42;

/// Common words, each a single token of `bert-base-uncased`'s vocabulary.
pub const VOCAB: [&str; 64] = [
    "the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "with", "as", "by", "at", "from", "city", "river",
    "house", "music", "water", "light", "people", "world", "school", "family", "small", "large", "old", "new", "long",
    "green", "red", "blue", "white", "black", "dog", "cat", "bird", "tree", "road", "car", "train", "book", "song",
    "game", "team", "player", "year", "day", "night", "morning", "summer", "winter", "north", "south", "east", "west",
    "man", "woman", "child", "king", "church", "village", "market",
];

/// The model folder: `$DELTAW_MINILM_DIR`, else `~/.cache/deltaw/all-MiniLM-L6-v2`.
pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DELTAW_MINILM_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/deltaw/all-MiniLM-L6-v2")
}

/// The [`SENTENCES`] benchmark texts, the same on every run and in `compare_minilm.py`.
pub fn texts() -> Vec<String> {
    let mut state = SEED;
    let mut next_word = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        VOCAB[((state >> 33) % VOCAB.len() as u64) as usize]
    };
    (0..SENTENCES).map(|_| (0..WORDS).map(|_| next_word()).collect::<Vec<_>>().join(" ") + ".").collect()
}
