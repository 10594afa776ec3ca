//! One process per measurement, for sentences/s of all-MiniLM-L6-v2 embeddings:
//!
//! ```text
//! cargo run --release -p deltaw-benches --example minilm_embed -- 3
//! ```
//!
//! Embeds the 256 benchmark texts (128 tokens each, batch 32) after one warm-up batch, `runs`
//! times, and prints one JSON line: sentences/s over all runs, the mean tokens per text, and the
//! first values of the first embedding so the peer's output can be checked against it.
//! `benches/compare_minilm.sh` runs it beside sentence-transformers.

use deltaw_benches::minilm::{model_dir, texts, BATCH, SENTENCES};
use deltaw_benches::{profile_finish, profile_start};
use deltaw_tensor::Device;
use deltaw_transformer::SentenceEmbedder;
use std::time::Instant;

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = model_dir();
    let mut embedder = SentenceEmbedder::from_dir(&dir, &Device::Cpu).unwrap_or_else(|e| {
        eprintln!("minilm_embed: cannot load {} (set DELTAW_MINILM_DIR): {e}", dir.display());
        std::process::exit(2)
    });
    embedder.batch_size = BATCH;
    let texts = texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = texts.iter().map(|t| embedder.tokenizer.encode(t).expect("tokenize").len()).sum();
    embedder.embed(&texts[..BATCH]).expect("warm-up"); // first-touch allocations, thread pool
    let profiling = profile_start(); // DELTAW_PROFILE=1: the timed part only
    let start = Instant::now();
    let mut embeddings = None;
    for _ in 0..runs {
        embeddings = Some(embedder.embed(&texts).expect("embed"));
    }
    let secs = start.elapsed().as_secs_f64();
    profile_finish(profiling);
    let first: Vec<String> =
        embeddings.map(|e| e.to_vec()[..4].iter().map(|x| format!("{x:.5}")).collect()).unwrap_or_default();
    println!(
        "{{\"impl\": \"deltaw\", \"sentences\": {SENTENCES}, \"batch_size\": {BATCH}, \"mean_tokens\": {:.1}, \"runs\": {runs}, \"seconds_per_run\": {:.3}, \"sentences_per_s\": {:.1}, \"first\": [{}], \"kernel\": \"{}\"}}",
        tokens as f64 / SENTENCES as f64,
        secs / runs as f64,
        (runs * SENTENCES) as f64 / secs,
        first.join(", "),
        deltaw_tensor::cpu::gemm::kernel_name()
    );
}
