//! One process per measurement, for tokens/s and peak RSS of a LoRA fine-tuning step on the
//! Qwen2.5-0.5B shape (random weights from `benches/llama_weights.py`, or without torch from
//! the `llama_bench_weights` example):
//!
//! ```text
//! cargo run --release -p deltaw-benches --example llama_sft_step -- target/llama-bench f32 3
//! cargo run --release -p deltaw-benches --example llama_sft_step -- target/llama-bench bf16 3
//! cargo run --release -p deltaw-benches --example llama_sft_step -- target/llama-bench q4_0 3
//! ```
//!
//! `q4_0`, `q8_0`, `q4_k` (any llama.cpp type name) run QLoRA: the f32 folder loaded with the
//! decoder projections block-quantized as they stream in (`q4_0-bf16`: from the bf16 folder,
//! the embedding kept bf16). A type whose block does not divide a projection's input width
//! leaves that projection f32 (`q4_k`'s 256 does not divide C = 896, so only `down_proj` is
//! quantized at this shape). A last argument `checkpoint` turns on gradient checkpointing.
//!
//! LoRA r = 16 (α = 32, no dropout) on every linear layer but the head (PEFT's `all-linear`),
//! AdamW on the adapters only, B = 2 sequences of T = 128 tokens. One warm-up step, then
//! `steps` timed one by one. Prints one JSON line: the tokens/s of the median step and of the
//! fastest (the least disturbed on a shared machine), the peak RSS (VmHWM, loading included),
//! the peak once loaded (before the first step), the first and last loss, and the GEMM
//! micro-kernel in use.
//! `benches/compare_llama_sft.sh` runs it beside PyTorch + PEFT.

use deltaw_autograd::{AdamW, AdamWConfig};
use deltaw_benches::llama::{ids, load, median, peak_rss_mib, Base, BATCH, SEQ};
use deltaw_lora::{Lora, LoraConfig, TargetModules};
use deltaw_tensor::cpu::gemm::kernel_name;
use deltaw_tensor::{Device, Seed, Tensor};
use deltaw_transformer::{causal_lm_loss, CausalLm};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(weights), Some(base)) = (args.get(1), args.get(2).and_then(|b| Base::parse(b))) else {
        eprintln!("usage: llama_sft_step WEIGHTS_DIR f32|bf16|q4_0|q8_0|q4_k|q4_0-bf16|.. [steps] [checkpoint]");
        std::process::exit(2)
    };
    let steps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let checkpointing = args.get(4).is_some_and(|a| a == "checkpoint");
    let mut model = load(&PathBuf::from(weights), base);
    model.set_gradient_checkpointing(checkpointing);
    let config = LoraConfig {
        r: 16,
        lora_alpha: 32.0,
        lora_dropout: 0.0,
        target_modules: TargetModules::parse("all-linear"),
        use_rslora: false,
    };
    let lora = Lora::inject(&mut model, config, Seed(1)).expect("the model has linear layers");
    let load_rss = peak_rss_mib();
    let mut opt = AdamW::new(lora.parameters(), AdamWConfig { lr: 1e-4, weight_decay: 0.0, ..Default::default() });
    let v = model.config.vocab_size;
    let ids = Tensor::from_vec(ids(BATCH * SEQ, v), (BATCH, SEQ), &Device::Cpu).expect("B·T ids"); // (B, T)
    let mut step = || {
        let loss = causal_lm_loss(&model.forward(&ids, None).logits, &ids);
        let grads = loss.backward().expect("backward");
        opt.step(&grads);
        loss.value().to_vec()[0]
    };
    let first_loss = step(); // warm-up: first-touch allocations, optimizer state
    let mut secs = Vec::with_capacity(steps);
    let mut loss = first_loss;
    for _ in 0..steps {
        let start = Instant::now();
        loss = step();
        secs.push(start.elapsed().as_secs_f64());
    }
    let per_step = median(&secs);
    println!(
        "{{\"impl\": \"deltaw\", \"base\": \"{}\", \"checkpointing\": {checkpointing}, \"steps\": {steps}, \"seconds_per_step\": {per_step:.3}, \"tokens_per_s\": {:.1}, \"best_tokens_per_s\": {:.1}, \"peak_rss_mib\": {:.0}, \"load_rss_mib\": {load_rss:.0}, \"first_loss\": {first_loss:.4}, \"loss\": {loss:.4}, \"kernel\": \"{}\"}}",
        base.name(),
        (BATCH * SEQ) as f64 / per_step,
        (BATCH * SEQ) as f64 / secs.iter().copied().fold(f64::INFINITY, f64::min),
        peak_rss_mib(),
        kernel_name()
    );
}
