#!/usr/bin/env bash
# Greedy decode on the Qwen2.5-0.5B shape from block-quantized GGUF files (Q8_0 and Q4_0, every
# matrix quantized, the tied embedding too), deltaw against llama.cpp (llama-cpp-python) on the
# SAME file in the same sitting, each run in its own process: 16-token prompt, 64 new tokens,
# KV cache, 2 threads; only the decode phase (63 single-token steps) is timed on both sides.
#
#   benches/compare_quant_decode.sh [runs] [python] [weights dir] [types] [model]
#       # defaults: 3, /work/venv/bin/python, target/llama-bench, "q8_0 q4_0", qwen2
#
# model gpt2: GPT-2 124M instead (compare_generate.py's random weights), from
# target/gpt2-bench/gpt2-TYPE.gguf, which benches/gpt2_gguf.py writes (torch needed); the
# weights dir is then unused.
#
# The files come from benches/llama_gguf.py (numpy + gguf only) over WEIGHTS/f32, which
# llama_weights.py (torch) or, without torch, the llama_bench_weights example writes. deltaw
# reads a file as `deltaw generate` does (WeightDtype::Stored: the blocks kept, read by
# cpu::qdot); its JSON line names the qdot kernel that ran. Prints the load average around each
# run, each run's JSON line, whether both sides produce the same greedy tokens (they need not:
# llama.cpp and deltaw quantize the activations differently), and per type
#   deltaw decode tokens/s / llama.cpp decode tokens/s    (issue 14's target: >= 1.0)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
weights="${3:-$root/target/llama-bench}"
types="${4:-q8_0 q4_0}"
model="${5:-qwen2}"
cd "$root"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
if [ "$model" = gpt2 ]; then
  for ty in $types; do
    HF_HUB_OFFLINE=1 "$python" benches/gpt2_gguf.py "$root/target/gpt2-bench/gpt2-$ty.gguf"
  done
elif [ ! -f "$weights/f32/model.safetensors" ]; then
  if "$python" -c "import torch" 2>/dev/null; then
    "$python" benches/llama_weights.py "$weights"
  else
    cargo run --release -q -p deltaw-benches --example llama_bench_weights -- "$weights"
  fi
fi
# shellcheck disable=SC2086
[ "$model" = gpt2 ] || "$python" benches/llama_gguf.py "$weights" $types
cargo build --release -q -p deltaw-benches --example llama_decode
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/llama_decode"
out=$(mktemp)
load() { echo "load average: $(cut -d" " -f1-3 /proc/loadavg)" >&2; }
for ty in $types; do
  file="$weights/qwen2-$ty.gguf"
  [ "$model" = gpt2 ] && file="$root/target/gpt2-bench/gpt2-$ty.gguf"
  load; "$python" benches/compare_llama_decode.py "$file" "$runs" 2>/dev/null | tee -a "$out"
  load; "$bin" "$file" "$ty" "$runs" | tee -a "$out"
done
load
python3 - "$out" $types <<'PY'
import json, sys
runs = {}
for r in map(json.loads, open(sys.argv[1])):
    runs[r["impl"], r["weights"]] = r
for ty in sys.argv[2:]:
    c, d = runs["llama.cpp", ty], runs["deltaw", ty]
    n = next((i for i, (x, y) in enumerate(zip(d["tokens"], c["tokens"])) if x != y), None)
    same = "yes" if n is None else f"no (first difference at new token {n})"
    ratio = d["decode_tokens_per_s"] / c["decode_tokens_per_s"]
    best = d["best_step_tokens_per_s"] / c["best_step_tokens_per_s"]
    print(f"{ty}: deltaw {d['decode_tokens_per_s']} vs llama.cpp {c['decode_tokens_per_s']} tokens/s: "
          f"{ratio:.2f} median run, {best:.2f} fastest step (target >= 1.0); qdot {d['qdot']}; same tokens: {same}")
PY
rm -f "$out"
