#!/usr/bin/env bash
# Greedy decode on the Qwen2.5-0.5B shape (random weights, 16-token prompt, 64 new tokens, KV
# cache, no end-of-text stop, 2 threads), deltaw against llama.cpp (llama-cpp-python) on the same
# weights in the same sitting, each run in its own process: llama.cpp f32 and f16 GGUFs, deltaw
# f32 and bf16 (WeightDtype::Stored). Only the decode phase (the 63 single-token steps after the
# prompt) is timed on both sides.
#
#   benches/compare_llama_decode.sh [rounds] [python] [weights dir]
#       # defaults: 3, /work/venv/bin/python, target/llama-bench (written on first use)
#
# Runs in rounds, each pair once per round with llama.cpp and deltaw back to back
# (decode_ratios.py says why). Prints the load average around each round, each run's JSON line,
# whether the greedy tokens agree, then the median over the rounds of the same-round ratios the
# issue targets:
#   deltaw f32 / llama.cpp f32 decode tokens/s   (target >= 1.0)
#   deltaw bf16 / llama.cpp f16 decode tokens/s  (target >= 1.0)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
python="${2:-/work/venv/bin/python}"
weights="${3:-$root/target/llama-bench}"
cd "$root"
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1
if "$python" -c "import torch" 2>/dev/null; then
  "$python" benches/llama_weights.py "$weights"
else
  # Without torch: deltaw's own initialisation of the same shape, and the GGUFs from numpy + gguf.
  [ -f "$weights/f32/model.safetensors" ] ||
    cargo run --release -q -p deltaw-benches --example llama_bench_weights -- "$weights"
  "$python" benches/llama_gguf.py "$weights" f32 f16
fi
cargo build --release -q -p deltaw-benches --example llama_decode
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/llama_decode"
out=$(mktemp)
load() { echo "load average: $(cut -d" " -f1-3 /proc/loadavg)" >&2; }
# Rounds: each pair once per round, llama.cpp and deltaw back to back (see decode_ratios.py);
# each process times 2 generations after its warm-up.
for round in $(seq "$runs"); do
  load; echo "round $round" >&2
  "$python" benches/compare_llama_decode.py "$weights/qwen2-f32.gguf" 2 2>/dev/null | tee -a "$out"
  "$bin" "$weights" f32 2 | tee -a "$out"
  "$python" benches/compare_llama_decode.py "$weights/qwen2-f16.gguf" 2 2>/dev/null | tee -a "$out"
  "$bin" "$weights" bf16 2 | tee -a "$out"
done
load
python3 benches/decode_ratios.py "$out" f32:f32 bf16:f16
python3 - "$out" <<'PY'
import json, sys
runs = {}
for r in map(json.loads, open(sys.argv[1])):
    runs.setdefault((r["impl"], r["weights"]), r)
d32, d16 = runs["deltaw", "f32"], runs["deltaw", "bf16"]
n = next((i for i, (x, y) in enumerate(zip(d16["tokens"], d32["tokens"])) if x != y), None)
print(f"same tokens, deltaw bf16 vs deltaw f32: {'yes' if n is None else f'no (first difference at new token {n})'} "
      f"(bf16 rounds the weights); deltaw GEMM kernel: {d32['kernel']}")
PY
rm -f "$out"
