"""PyTorch's side of the fine-tuning step comparison (see compare_sft.sh).

One GPT-2 124M optimizer step (B=4, T=64: forward, backward, AdamW) with transformers'
GPT2LMHeadModel on random weights, full fine-tuning or PEFT LoRA r=8 on c_attn; one warm-up step,
then `steps` timed. Prints one JSON line with tokens/s and peak RSS (ru_maxrss), like
`cargo run --release -p deltaw-benches --example sft_step`.

    /work/venv/bin/python benches/compare_sft.py full 5
"""
import json
import resource
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

B, T = 4, 64


def main():
    mode, steps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.manual_seed(0)
    config = GPT2Config(n_positions=1024, n_embd=768, n_layer=12, n_head=12, vocab_size=50257,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=["c_attn"], fan_in_fan_out=True))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    ids = (torch.arange(B * T) * 7919 + 11).remainder(50257).reshape(B, T)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    secs = time.perf_counter() - start
    print(json.dumps({
        "impl": "pytorch", "mode": mode, "steps": steps, "threads": torch.get_num_threads(),
        "seconds_per_step": round(secs / steps, 3), "tokens_per_s": round(steps * B * T / secs, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "loss": round(loss, 4), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
