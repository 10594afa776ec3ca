#!/usr/bin/env bash
# GPT-2 124M greedy generation (16-token prompt, 64 new tokens, KV cache, no end-of-text stop),
# deltaw against transformers' generate() and against llama.cpp (llama-cpp-python, 2 threads) in
# the same sitting, each in its own process, all on the same random weights.
#
#   benches/compare_generate.sh [runs] [python]    # defaults: 3, /work/venv/bin/python
#
# llama.cpp reads target/gpt2-bench/gpt2-f32.gguf, which benches/gpt2_gguf.py writes when absent
# (compare_generate.py's weights in llama.cpp's GPT-2 layout). Prints each run's JSON line, then
# the ratio the issue targets: deltaw tokens/s / transformers tokens/s (>= 1.5), then deltaw
# tokens/s / llama.cpp's (aim >= 1.0). deltaw and transformers time the whole generation, prompt
# included, so the llama.cpp ratio uses compare_llama_decode.py's generate_tokens_per_s (64 new
# tokens over prompt phase plus decode phase), not its decode-only decode_tokens_per_s, which is
# printed beside it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
cd "$root"
cargo build --release -q -p deltaw-benches --example gpt2_generate
out=$(mktemp)
"${CARGO_TARGET_DIR:-$root/target}/release/examples/gpt2_generate" "$runs" | tee -a "$out"
HF_HUB_OFFLINE=1 "$python" benches/compare_generate.py "$runs" 2>/dev/null | tee -a "$out"
gguf="$root/target/gpt2-bench/gpt2-f32.gguf"
[ -f "$gguf" ] || HF_HUB_OFFLINE=1 "$python" benches/gpt2_gguf.py "$gguf"
"$python" benches/compare_llama_decode.py "$gguf" "$runs" 2>/dev/null | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
runs = {r["impl"]: r for r in map(json.loads, open(sys.argv[1]))}
d, p, c = runs["deltaw"], runs["pytorch"], runs["llama.cpp"]
print(f"tokens/s deltaw/transformers: {d['tokens_per_s'] / p['tokens_per_s']:.2f} (floor >= 2.5)")
print(f"decode tokens/s deltaw/llama.cpp f32: {d['tokens_per_s'] / c['generate_tokens_per_s']:.2f} (aim >= 1.0; "
      f"whole generation on both sides, llama.cpp {c['generate_tokens_per_s']} tokens/s, "
      f"its decode phase alone {c['decode_tokens_per_s']})")
PY
rm -f "$out"
