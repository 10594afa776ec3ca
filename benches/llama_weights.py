"""Random weights at the Qwen2.5-0.5B shape for the Llama-family benches, written once.

    /work/venv/bin/python benches/llama_weights.py DIR

DIR receives, unless already there:
  f32/                a Hugging Face folder (config.json, model.safetensors) that transformers'
                      Qwen2ForCausalLM and deltaw's Llama::from_dir both load;
  bf16/               the same weights rounded to bf16 (deltaw loads it with WeightDtype::Stored);
  qwen2-f32.gguf      the same weights for llama.cpp, every tensor f32;
  qwen2-f16.gguf      matrices in f16, vectors (norms, biases) in f32, as convert_hf_to_gguf.py.

The weights are transformers' own initialisation (N(0, 0.02²) matrices, unit norms, zero biases)
after torch.manual_seed(0), so `build()` gives the same model in another process
(compare_llama_sft.py uses it instead of loading the folder, whose mmap would count in its RSS).

GGUF conventions (llama.cpp's qwen2 architecture): tensor names from gguf's TensorNameMap
(`model.layers.0.self_attn.q_proj` → `blk.0.attn_q`); a matrix (out, in) is written as stored and
the writer reverses the dims, so ggml sees ne = (in, out); qwen2 needs no q/k row permutation (it
uses the rotate-half rope, LLM_ARCH_QWEN2 → LLAMA_ROPE_TYPE_NEOX); a tied head means no `output`
tensor (llama.cpp then reads token_embd). llama.cpp needs a vocabulary to load: tokenizer model
"none" with `qwen2.vocab_size` makes it add V dummy tokens, and the benches drive it by token ids.
"""
import json
import sys
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

# Qwen2.5-0.5B: 24 layers, C = 896, 14 query heads and 2 key/value heads of HS = 64, SwiGLU width
# 4864, V = 151936, tied head.
CONFIG = dict(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1e6,
    tie_word_embeddings=True, use_sliding_window=False, attention_dropout=0.0,
)


def build():
    """The benches' model: Qwen2ForCausalLM on CONFIG, f32, seeded."""
    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(**CONFIG))


def write_gguf(model, path, f16):
    """The model as a GGUF file, f32 or with f16 matrices (llama_gguf.write, shared with the
    torch-free path)."""
    import llama_gguf

    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    llama_gguf.write(weights, CONFIG, path, "f16" if f16 else "f32")


def main():
    out = Path(sys.argv[1])
    wanted = [out / "f32" / "config.json", out / "bf16" / "config.json", out / "qwen2-f32.gguf", out / "qwen2-f16.gguf"]
    if all(p.exists() for p in wanted):
        return
    out.mkdir(parents=True, exist_ok=True)
    model = build().eval()
    write_gguf(model, out / "qwen2-f32.gguf", f16=False)
    write_gguf(model, out / "qwen2-f16.gguf", f16=True)
    model.save_pretrained(out / "f32")
    model.to(torch.bfloat16).save_pretrained(out / "bf16")
    print(json.dumps({"weights": str(out), "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
