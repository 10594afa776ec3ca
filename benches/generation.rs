//! Shared setup of the generation benchmarks: GPT-2 124M with random weights, a fixed 16-token
//! prompt and greedy decoding of 64 new tokens with the KV cache and no end-of-text token, so
//! every run produces all 64 (`compare_generate.py` does the same with transformers).

use deltaw_tensor::Seed;
use deltaw_transformer::{GenerateOptions, Gpt2, Gpt2Config};

/// Prompt length and new tokens per generation.
pub const PROMPT_TOKENS: usize = 16;
pub const NEW_TOKENS: usize = 64;

/// GPT-2 124M: V = 50257, 1024 positions, C = 768, 12 layers, 12 heads, seeded random weights,
/// on [`crate::bench_device`].
pub fn model() -> Gpt2 {
    let config = Gpt2Config::new(50257, 1024, 768, 12, 12).expect("GPT-2 124M config");
    Gpt2::init(config, Seed(0), &crate::bench_device())
}

/// The prompt ids, `(i · 7919 + 11) mod V` as in the fine-tuning benchmark.
pub fn prompt() -> Vec<i32> {
    (0..PROMPT_TOKENS).map(|i| ((i * 7919 + 11) % 50257) as i32).collect()
}

/// Greedy, cached, no end-of-text token: exactly [`NEW_TOKENS`] tokens.
pub fn options() -> GenerateOptions {
    GenerateOptions::greedy(NEW_TOKENS)
}
