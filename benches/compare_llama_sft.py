"""PyTorch + PEFT's side of the Llama-family fine-tuning step comparison (see compare_llama_sft.sh).

One LoRA step (forward, backward, AdamW on the adapters) of transformers' Qwen2ForCausalLM at the
Qwen2.5-0.5B shape, f32, with PEFT LoRA r=16 (alpha 32, no dropout) on target_modules="all-linear",
B=2, T=128. The model is `llama_weights.build()` (the same seeded weights as the folder deltaw
loads, built in process rather than loaded, so no mmap'd file pages count in the RSS). One warm-up
step, then `steps` timed one by one. Prints one JSON line with the tokens/s of the median and of
the fastest step, and peak RSS (VmHWM, as deltaw's llama_sft_step).

    /work/venv/bin/python benches/compare_llama_sft.py [steps] [threads]
"""
import json
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model

from llama_weights import build

B, T = 2, 128


def peak_rss_mib():
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kib / 1024


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    model = build()
    v = model.config.vocab_size
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    ids = (torch.arange(B * T) * 7919 + 11).remainder(v).reshape(B, T)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    first_loss = step()
    secs, loss = [], first_loss
    for _ in range(steps):
        start = time.perf_counter()
        loss = step()
        secs.append(time.perf_counter() - start)
    per_step = statistics.median(secs)
    print(json.dumps({
        "impl": "pytorch", "base": "f32", "steps": steps, "threads": torch.get_num_threads(),
        "seconds_per_step": round(per_step, 3), "tokens_per_s": round(B * T / per_step, 1),
        "best_tokens_per_s": round(B * T / min(secs), 1),
        "peak_rss_mib": round(peak_rss_mib()), "first_loss": round(first_loss, 4), "loss": round(loss, 4),
        "trainable": sum(p.numel() for p in params), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
