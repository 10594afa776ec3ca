//! One process per measurement, for tokens/s of GPT-2 124M greedy generation with the KV cache:
//!
//! ```text
//! cargo run --release -p deltaw-benches --example gpt2_generate -- 3
//! ```
//!
//! Continues the 16-token prompt by 64 tokens (no end-of-text token) after one warm-up
//! generation, `runs` times, and prints one JSON line with tokens/s (new tokens over the whole
//! call, prompt pass included). `benches/compare_generate.sh` runs it beside transformers.
//! With `DELTAW_PROFILE=1` it also prints the per-op profile of the timed runs
//! (`deltaw_tensor::profile`) and writes its timeline.

use deltaw_benches::generation::{model, options, prompt, NEW_TOKENS, PROMPT_TOKENS};
use deltaw_benches::{profile_finish, profile_start};
use deltaw_transformer::CausalLm;
use std::time::Instant;

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let (model, prompt, options) = (model(), prompt(), options());
    model.generate(&prompt, &options); // warm-up: first-touch allocations, thread pool
    let profiling = profile_start(); // DELTAW_PROFILE=1: the timed part only
    let start = Instant::now();
    for _ in 0..runs {
        let new = model.generate(&prompt, &options);
        assert_eq!(new.len(), NEW_TOKENS, "no end-of-text token, so every token is produced");
    }
    let secs = start.elapsed().as_secs_f64();
    profile_finish(profiling);
    println!(
        "{{\"impl\": \"deltaw\", \"prompt_tokens\": {PROMPT_TOKENS}, \"new_tokens\": {NEW_TOKENS}, \"runs\": {runs}, \"seconds_per_generate\": {:.3}, \"tokens_per_s\": {:.1}, \"kernel\": \"{}\", \"device\": \"{}\"}}",
        secs / runs as f64,
        (runs * NEW_TOKENS) as f64 / secs,
        deltaw_tensor::cpu::gemm::kernel_name(),
        deltaw_benches::bench_device_name()
    );
}
