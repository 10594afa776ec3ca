"""transformers' side of the generation comparison (see compare_generate.sh).

GPT-2 124M (GPT2LMHeadModel(GPT2Config()), random weights) continues the same 16-token prompt as
`cargo run --release -p deltaw-benches --example gpt2_generate` by 64 greedy tokens with the KV
cache; `min_new_tokens=64` keeps the end-of-text token from stopping it early, as deltaw runs
without one. One warm-up generation, then `runs` timed. Prints one JSON line with tokens/s.

    HF_HUB_OFFLINE=1 /work/venv/bin/python benches/compare_generate.py [runs]
"""
import json
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

PROMPT_TOKENS, NEW_TOKENS = 16, 64


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    ids = (torch.arange(PROMPT_TOKENS) * 7919 + 11).remainder(50257).reshape(1, PROMPT_TOKENS)
    mask = torch.ones_like(ids)

    def generate():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                             do_sample=False, use_cache=True, pad_token_id=50256)
        assert out.shape[1] == PROMPT_TOKENS + NEW_TOKENS, out.shape

    generate()
    start = time.perf_counter()
    for _ in range(runs):
        generate()
    secs = time.perf_counter() - start
    print(json.dumps({
        "impl": "pytorch", "prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS, "runs": runs,
        "seconds_per_generate": round(secs / runs, 3), "tokens_per_s": round(runs * NEW_TOKENS / secs, 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
