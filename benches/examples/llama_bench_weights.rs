//! Random weights at the Qwen2.5-0.5B shape for the Llama-family benches, where there is no
//! torch to run `benches/llama_weights.py`:
//!
//! ```text
//! cargo run --release -p deltaw-benches --example llama_bench_weights -- target/llama-bench
//! ```
//!
//! Writes, unless both are already there, `f32/` (config.json, model.safetensors) and `bf16/`
//! (the same weights rounded to bf16, every tensor as `model.to(torch.bfloat16)` saves it), the
//! two folders `llama_sft_step` and `llama_decode` load. The config is `llama_weights.py`'s
//! (24 layers, C = 896, 14 query and 2 key/value heads, SwiGLU width 4864, V = 151936, tied
//! head, q/k/v bias); the weights are deltaw's own initialisation (`Llama::build` with
//! `FreshInit` seeded 0), which draws from the same distribution as transformers' (matrices
//! N(0, 0.02²), unit norms, zero biases) but not the same values: losses do not match
//! PyTorch's run, timings and memory do. No GGUF files (`compare_llama_decode.sh` needs the
//! Python script for those).

use deltaw_tensor::{DType, Device, Seed};
use deltaw_transformer::{FreshInit, Llama, LlamaConfig, Model};
use serde_json::json;
use std::error::Error;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let Some(out) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: llama_bench_weights DIR");
        std::process::exit(2)
    };
    let (f32_dir, bf16_dir) = (out.join("f32"), out.join("bf16"));
    if f32_dir.join("config.json").exists() && bf16_dir.join("config.json").exists() {
        return Ok(());
    }
    // As transformers' Qwen2Config writes it for llama_weights.py's CONFIG; `torch_dtype` is
    // rewritten by save_dir to the dtype each folder stores.
    let raw = json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1e6, "tie_word_embeddings": true,
        "use_sliding_window": false, "attention_dropout": 0.0, "hidden_act": "silu",
        "initializer_range": 0.02, "torch_dtype": "float32",
    });
    let config = LlamaConfig::from_json(raw, Path::new("llama_bench_weights config"))?;
    let model = Llama::build(config, &mut FreshInit::new(Seed(0), &Device::Cpu))?;
    let parameters = model.parameters();
    model.save_dir(&f32_dir)?;
    // Round in place, one tensor at a time, so the peak stays near the f32 model's size.
    for p in &parameters {
        p.set_value(p.value().to_dtype(DType::BF16)?);
    }
    model.save_dir(&bf16_dir)?;
    let count: usize = parameters.iter().map(|p| p.value().numel()).sum();
    println!("{{\"weights\": \"{}\", \"parameters\": {count}}}", out.display());
    Ok(())
}
