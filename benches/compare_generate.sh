#!/usr/bin/env bash
# GPT-2 124M greedy generation (16-token prompt, 64 new tokens, KV cache, no end-of-text stop),
# deltaw against transformers' generate() and against llama.cpp (llama-cpp-python, 2 threads) in
# the same sitting, each in its own process, all on the same random weights.
#
#   benches/compare_generate.sh [rounds] [python]    # defaults: 3, /work/venv/bin/python
#
# llama.cpp reads target/gpt2-bench/gpt2-f32.gguf, which benches/gpt2_gguf.py writes when absent
# (compare_generate.py's weights in llama.cpp's GPT-2 layout). Runs in rounds, the three back to
# back in each. Prints each run's JSON line, then the median over the rounds of the same-round
# ratio the issue targets: deltaw tokens/s / transformers tokens/s (>= 2.5), then of deltaw
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
gguf="$root/target/gpt2-bench/gpt2-f32.gguf"
[ -f "$gguf" ] || HF_HUB_OFFLINE=1 "$python" benches/gpt2_gguf.py "$gguf"
# Rounds: the three back to back each round, each timing 2 generations after its warm-up; the
# figures are the medians over the rounds of the same-round ratios (see decode_ratios.py).
for round in $(seq "$runs"); do
  echo "round $round, load average: $(cut -d" " -f1-3 /proc/loadavg)" >&2
  "${CARGO_TARGET_DIR:-$root/target}/release/examples/gpt2_generate" 2 | tee -a "$out"
  HF_HUB_OFFLINE=1 "$python" benches/compare_generate.py 2 2>/dev/null | tee -a "$out"
  "$python" benches/compare_llama_decode.py "$gguf" 2 2>/dev/null | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
side = lambda impl: [r for r in runs if r["impl"] == impl]
d, p, c = side("deltaw"), side("pytorch"), side("llama.cpp")
pt = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(d, p)]
cpp = [a["tokens_per_s"] / b["generate_tokens_per_s"] for a, b in zip(d, c)]
show = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
med = lambda rs, key: statistics.median(r[key] for r in rs)
print(f"tokens/s deltaw/transformers: per round {show(pt)}; median {statistics.median(pt):.2f} (floor >= 2.5); "
      f"deltaw {med(d, 'tokens_per_s'):.1f}, transformers {med(p, 'tokens_per_s'):.1f} tokens/s (medians)")
print(f"tokens/s deltaw/llama.cpp f32: per round {show(cpp)}; median {statistics.median(cpp):.2f} (aim >= 1.0; whole "
      f"generation on both sides, llama.cpp {med(c, 'generate_tokens_per_s'):.1f} tokens/s, its decode phase alone "
      f"{med(c, 'decode_tokens_per_s'):.1f})")
PY
rm -f "$out"
