//! One process per measurement, for tokens/s of greedy decoding on the Qwen2.5-0.5B shape
//! (random weights from `benches/llama_weights.py`) with the KV cache:
//!
//! ```text
//! cargo run --release -p deltaw-benches --example llama_decode -- target/llama-bench f32 3
//! cargo run --release -p deltaw-benches --example llama_decode -- target/llama-bench bf16 3
//! cargo run --release -p deltaw-benches --example llama_decode -- target/llama-bench/qwen2-q8_0.gguf q8_0 3
//! ```
//!
//! The 16-token prompt goes through one `decode_step` (the prompt phase); each of the 63
//! following steps feeds the last token and reads the argmax (the decode phase), for 64 new
//! tokens and no end-of-text stop. Only the decode phase is timed, step by step, as
//! llama.cpp's peer (`compare_llama_decode.py`) does. The loop is checked once against
//! `CausalLm::generate`, then run once to warm up and `runs` times. Prints one JSON line: the
//! decode tokens/s of the median run, that of the fastest single step (on a shared machine the
//! step least disturbed by other processes), the median prompt time, the new tokens (for the
//! cross-check with llama.cpp), peak RSS and the GEMM micro-kernel.

use deltaw_autograd::{eval_mode, no_grad};
use deltaw_benches::llama::{ids, load, median, peak_rss_mib, Base, NEW_TOKENS, PROMPT_TOKENS};
use deltaw_tensor::cpu::gemm::kernel_name;
use deltaw_tensor::cpu::qdot::qdot_path_name;
use deltaw_tensor::{Device, Tensor};
use deltaw_transformer::gguf;
use deltaw_transformer::{CausalLm, DecodeInput, GenerateOptions, KvCache, WeightDtype};
use std::path::PathBuf;
use std::time::Instant;

/// Logits `(1, V)` of the last of `new`, fed at positions `past..past + len` after what
/// `cache` holds, computed on a worker of the CPU pool as `CausalLm::generate` does.
fn step(model: &dyn CausalLm, new: &[i32], cache: &mut KvCache) -> Tensor {
    let past = cache.len() as i32;
    let t = new.len();
    let ids = Tensor::from_vec(new.to_vec(), (1, t), &Device::Cpu).expect("one row");
    let positions = Tensor::from_vec((past..past + t as i32).collect(), (1, t), &Device::Cpu).expect("one row");
    // On a worker of the CPU pool, the others kept awake for a model on the CPU, as
    // `CausalLm::generate` runs its steps (`cpu::on_pool_for`).
    deltaw_tensor::cpu::on_pool_for(&model.device(), || {
        no_grad(|| {
            eval_mode(|| {
                model.decode_step(&DecodeInput { ids: &ids, positions: &positions, key_real: None }, Some(cache))
            })
        })
    })
}

/// Greedy decode of [`NEW_TOKENS`]: the new ids, the prompt phase's seconds and the seconds of
/// each of the decode phase's [`NEW_TOKENS`] − 1 single-token steps.
fn decode(model: &dyn CausalLm, prompt: &[i32]) -> (Vec<i32>, f64, Vec<f64>) {
    no_grad(|| {
        eval_mode(|| {
            let mut cache = KvCache::new(model.num_layers());
            let start = Instant::now();
            let mut next = step(model, prompt, &mut cache).argmax(-1).to_vec_i32()[0];
            let prompt_secs = start.elapsed().as_secs_f64();
            let (mut new, mut step_secs) = (vec![next], Vec::with_capacity(NEW_TOKENS));
            while new.len() < NEW_TOKENS {
                let start = Instant::now();
                next = step(model, &[next], &mut cache).argmax(-1).to_vec_i32()[0];
                step_secs.push(start.elapsed().as_secs_f64());
                new.push(next);
            }
            (new, prompt_secs, step_secs)
        })
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(weights), Some(label)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: llama_decode WEIGHTS_DIR f32|bf16|q4_0|q8_0|.. [runs]\n       llama_decode FILE.gguf LABEL [runs]"
        );
        std::process::exit(2)
    };
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    // A GGUF file is read as `deltaw generate` reads it: every block-quantized matrix (the
    // embedding and tied head too) kept in its blocks.
    let model: Box<dyn CausalLm> = if weights.ends_with(".gguf") {
        gguf::load_causal_lm(weights, &Device::Cpu, WeightDtype::Stored).expect("a GGUF model")
    } else {
        let base = Base::parse(label).unwrap_or_else(|| panic!("unknown base {label}"));
        Box::new(load(&PathBuf::from(weights), base))
    };
    let model = model.as_ref();
    let prompt = ids(PROMPT_TOKENS, model.vocab_size());
    let (tokens, _, _) = decode(model, &prompt); // also the warm-up
    let reference = model.generate(&prompt, &GenerateOptions::greedy(NEW_TOKENS));
    assert_eq!(tokens, reference, "the timed loop must decode what generate() decodes");
    let (mut prompt_secs, mut decode_secs, mut fastest) = (Vec::new(), Vec::new(), f64::INFINITY);
    let profiling = deltaw_benches::profile_start();
    for _ in 0..runs {
        let (again, p, steps) = decode(model, &prompt);
        assert_eq!(again, tokens, "greedy decoding is deterministic");
        prompt_secs.push(p);
        decode_secs.push(steps.iter().sum::<f64>());
        fastest = steps.iter().copied().fold(fastest, f64::min);
    }
    deltaw_benches::profile_finish(profiling);
    let tokens_json: Vec<String> = tokens.iter().map(i32::to_string).collect();
    println!(
        "{{\"impl\": \"deltaw\", \"weights\": \"{}\", \"prompt_tokens\": {PROMPT_TOKENS}, \"new_tokens\": {NEW_TOKENS}, \"runs\": {runs}, \"prompt_s\": {:.3}, \"decode_tokens_per_s\": {:.2}, \"best_step_tokens_per_s\": {:.2}, \"peak_rss_mib\": {:.0}, \"kernel\": \"{}\", \"qdot\": \"{}\", \"tokens\": [{}]}}",
        label,
        median(&prompt_secs),
        (NEW_TOKENS - 1) as f64 / median(&decode_secs),
        1.0 / fastest,
        peak_rss_mib(),
        kernel_name(),
        qdot_path_name(),
        tokens_json.join(", ")
    );
}
