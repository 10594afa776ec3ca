"""llama.cpp's side of the Llama-family decode comparison (see compare_llama_decode.sh), and of the
GPT-2 generation comparison (compare_generate.sh).

llama-cpp-python loads a GGUF that `llama_weights.py` wrote (the same weights deltaw loads from the
safetensors folder), or GPT-2's from `gpt2_gguf.py`, 2 threads for both decode and batch. The
16-token prompt is evaluated in one batch (the prompt phase); then 63 single-token steps each take
the argmax of the last logits (the decode phase), for 64 new tokens and no end-of-text stop, as
deltaw's llama_decode. The prompt phase is timed as a whole, the decode phase step by step. One
warm-up generation, then `runs` timed. Prints one JSON line with the decode tokens/s of the median
run and of the fastest single step (the least disturbed on a shared machine), the new tokens (for
the cross-check), and generate_tokens_per_s: the 64 new tokens over prompt plus decode phase, over
all timed runs, to compare with benches that time the whole generation (deltaw's gpt2_generate).

    /work/venv/bin/python benches/compare_llama_decode.py target/llama-bench/qwen2-f32.gguf [runs]
    /work/venv/bin/python benches/compare_llama_decode.py target/gpt2-bench/gpt2-f32.gguf [runs]
"""
import json
from pathlib import Path
import statistics
import sys
import time

import llama_cpp
import numpy as np

PROMPT_TOKENS, NEW_TOKENS = 16, 64


def main():
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    llm = llama_cpp.Llama(model_path=path, n_ctx=PROMPT_TOKENS + NEW_TOKENS, n_batch=PROMPT_TOKENS, n_threads=2,
                          n_threads_batch=2, verbose=False)
    v = llm.n_vocab()
    prompt = [(i * 7919 + 11) % v for i in range(PROMPT_TOKENS)]

    def last_argmax():
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(v,))
        return int(logits.argmax())  # the first maximum, as deltaw's argmax

    def generate():
        llm.reset()  # n_tokens = 0: the next eval drops the whole KV cache
        start = time.perf_counter()
        llm.eval(prompt)
        new = [last_argmax()]
        prompt_secs, step_secs = time.perf_counter() - start, []
        while len(new) < NEW_TOKENS:
            start = time.perf_counter()
            llm.eval([new[-1]])
            new.append(last_argmax())
            step_secs.append(time.perf_counter() - start)
        return new, prompt_secs, step_secs

    tokens, _, _ = generate()
    prompt_secs, decode_secs, fastest = [], [], float("inf")
    for _ in range(runs):
        again, p, steps = generate()
        assert again == tokens, "greedy decoding is deterministic"
        prompt_secs.append(p)
        decode_secs.append(sum(steps))
        fastest = min(fastest, *steps)
    print(json.dumps({
        "impl": "llama.cpp", "weights": Path(path).stem.rsplit("-", 1)[-1], "prompt_tokens": PROMPT_TOKENS,
        "new_tokens": NEW_TOKENS, "runs": runs, "prompt_s": round(statistics.median(prompt_secs), 3),
        "decode_tokens_per_s": round((NEW_TOKENS - 1) / statistics.median(decode_secs), 2),
        "best_step_tokens_per_s": round(1 / fastest, 2),
        "generate_tokens_per_s": round(runs * NEW_TOKENS / (sum(prompt_secs) + sum(decode_secs)), 2),
        "llama_cpp_python": llama_cpp.__version__, "tokens": tokens,
    }))


if __name__ == "__main__":
    main()
